// "Which file the kubelet reads" has one answer: doctor names it with kubeletReads, and the
// planner seeds the new config.json from that same file (both through model/kubelet-config.ts).
import { describe, expect, it } from 'vitest';
import { readKubeletFile } from '../../src/model/kubelet-config.ts';
import { kubeletReads } from '../../src/plan/kubelet-file.ts';
import { b64, cred, MemoryHost, TARGETS, type HostSpec } from '../support/plan-fixtures.ts';

const entry = (who: string): string => JSON.stringify({ auths: { [`${who}.example.com`]: { auth: b64(`${who}:pw`) } } });

describe('the file the kubelet reads', () => {
  it('is the first of the search path the kubelet can read, skipping garbage and missing files', () => {
    const host = new MemoryHost({ '/config.json': '{', '/.docker/config.json': entry('slash'), '/var/lib/kubelet/.dockercfg': '{"legacy.example.com": {}}' });
    expect(kubeletReads(TARGETS.kubeletFallbacks, (p) => host.stat(p))).toBe('/.docker/config.json');
    expect(kubeletReads(TARGETS.kubeletFallbacks, (p) => new MemoryHost().stat(p))).toBeUndefined();
  });

  const cases: Record<string, HostSpec> = {
    'the first readable fallback': { '/root/.docker/config.json': entry('home'), '/var/lib/kubelet/.dockercfg': JSON.stringify({ 'legacy.example.com': { auth: b64('l:pw') } }) },
    'skipping garbage': { '/config.json': '{', '/.docker/config.json': entry('slash') },
    'a legacy .dockercfg': { '/var/lib/kubelet/.dockercfg': JSON.stringify({ 'legacy.example.com': { auth: b64('l:pw') } }) },
    'none at all': {},
  };
  for (const [name, spec] of Object.entries(cases)) {
    it(`the planner seeds from the file doctor names: ${name}`, () => {
      const host = new MemoryHost(spec);
      const reads = kubeletReads(TARGETS.kubeletFallbacks, (p) => host.stat(p));
      const doc = reads === undefined ? undefined : (readKubeletFile(Buffer.from(host.text(reads)!), reads.endsWith('.dockercfg')).doc as Record<string, Record<string, unknown>>);
      const fromFile = doc === undefined ? [] : Object.keys(reads!.endsWith('.dockercfg') ? doc : (doc['auths'] ?? {})).sort();
      host.converge({ credentials: [cred('ours.example.com', 'u', 'p')] });
      const written = host.json(TARGETS.kubeletConfig) as { auths: Record<string, unknown> };
      expect(Object.keys(written.auths).filter((k) => k !== 'ours.example.com').sort()).toEqual(fromFile);
    });
  }
});
