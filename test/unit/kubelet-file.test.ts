// "Which file the kubelet reads" has one answer: doctor names it with kubeletReads, and the
// planner seeds the new config.json from that same file.
import { describe, expect, it } from 'vitest';
import { kubeletAuths, kubeletReads } from '../../src/plan/kubelet-file.ts';
import { b64, cred, MemoryHost, TARGETS, type HostSpec } from '../support/plan-fixtures.ts';

const entry = (who: string): string => JSON.stringify({ auths: { [`${who}.example.com`]: { auth: b64(`${who}:pw`) } } });

describe('the file the kubelet reads', () => {
  it('takes "auths" from config.json and the whole map from .dockercfg; anything else is not read', () => {
    expect(kubeletAuths('/root/.docker/config.json', Buffer.from('{"auths": {"a": {}}}'))).toEqual({ a: {} });
    expect(kubeletAuths('/var/lib/kubelet/.dockercfg', Buffer.from('{"a": {}}'))).toEqual({ a: {} });
    expect(kubeletAuths('/root/.docker/config.json', Buffer.from('{"credsStore": "x"}'))).toBeUndefined();
    expect(kubeletAuths('/root/.docker/config.json', Buffer.from('{"auths": []}'))).toBeUndefined();
    expect(kubeletAuths('/root/.docker/config.json', Buffer.from('not json'))).toBeUndefined();
  });

  const cases: Record<string, HostSpec> = {
    'the first parseable fallback': { '/root/.docker/config.json': entry('home'), '/var/lib/kubelet/.dockercfg': '{"legacy.example.com": {}}' },
    'skipping one without auths': { '/config.json': '{"credsStore": "x"}', '/root/.docker/config.json': entry('home') },
    'skipping garbage': { '/config.json': '{', '/.docker/config.json': entry('slash') },
    'a legacy .dockercfg': { '/var/lib/kubelet/.dockercfg': JSON.stringify({ 'legacy.example.com': { auth: b64('l:pw') } }) },
    'none at all': {},
  };
  for (const [name, spec] of Object.entries(cases)) {
    it(`the planner seeds from the file doctor names: ${name}`, () => {
      const host = new MemoryHost(spec);
      const reads = kubeletReads(TARGETS.kubeletFallbacks, (p) => host.stat(p));
      const fromFile = reads === undefined ? [] : Object.keys(kubeletAuths(reads, Buffer.from(host.text(reads)!))!).sort();
      host.converge({ credentials: [cred('ours.example.com', 'u', 'p')] });
      const written = host.json(TARGETS.kubeletConfig) as { auths: Record<string, unknown> };
      const seeded = Object.keys(written.auths).filter((k) => k !== 'ours.example.com').sort();
      expect(seeded).toEqual(fromFile);
    });
  }
});
