// Provider mode (--kubelet-credentials provider), decision by decision. What the kubelet does with
// these files and the plugin's answer is checked against its own code, plugin path included, by
// test/oracle/provider-differential.test.ts and credential-provider.test.ts.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeChange } from '../../src/commands/oneshot.ts';
import { DOCKER_HUB_KEY } from '../../src/model/registry-key.ts';
import { PROVIDER_RESPONSE_PATH, RECORD_PATH } from '../../src/model/state-paths.ts';
import { jsonEqual } from '../../src/plan/json.ts';
import { b64, cred, MemoryHost, PROVIDER_TARGETS, TARGETS } from '../support/plan-fixtures.ts';

const KUBELET = '/var/lib/kubelet/config.json';
const ROOT_DOCKER = '/root/.docker/config.json';
const DIGEST = `${PROVIDER_RESPONSE_PATH}.sha256`;
const auths = (host: MemoryHost, path = KUBELET): Record<string, unknown> => (host.json(path) as { auths: Record<string, unknown> }).auths;
const served = (host: MemoryHost): Record<string, unknown> => (host.json(PROVIDER_RESPONSE_PATH) as { auth: Record<string, unknown> }).auth;
const mode = (host: MemoryHost, path: string): number | undefined => {
  const st = host.files.get(path);
  return st?.kind === 'file' ? st.mode : undefined;
};

/** Every file but the record by bytes, the record by meaning (its key order is the agent's own). */
function expectSameHost(a: MemoryHost, b: MemoryHost): void {
  const { [RECORD_PATH]: ra, ...fa } = a.listing();
  const { [RECORD_PATH]: rb, ...fb } = b.listing();
  expect(fa).toEqual(fb);
  expect(jsonEqual(ra && JSON.parse(ra), rb && JSON.parse(rb))).toBe(true);
}

describe('planner, provider mode: the provider serves what config.json would hold', () => {
  it("takes the agent's entries out of config.json and writes them, exactly as the plugin prints them, with their sha256", () => {
    const before = JSON.stringify({ auths: { 'quay.io': { auth: b64('q:q') } } });
    const host = new MemoryHost({ [KUBELET]: before });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p'), cred(DOCKER_HUB_KEY, 'hub', 'h')], targets: PROVIDER_TARGETS });
    expect(auths(host)).toEqual({ 'quay.io': { auth: b64('q:q') } });
    const body = host.text(PROVIDER_RESPONSE_PATH)!;
    expect(body).toBe(
      '{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Global","cacheDuration":"0s",' +
        `"auth":{"${DOCKER_HUB_KEY}":{"username":"hub","password":"h"},"reg.example.com":{"username":"u","password":"p"}}}\n`,
    );
    expect(host.text(DIGEST)).toBe(`${createHash('sha256').update(body).digest('hex')}  response.json\n`);
    expect([mode(host, PROVIDER_RESPONSE_PATH), mode(host, DIGEST)]).toEqual([0o600, 0o600]);
    // The tools on the node keep their docker config.
    expect(Object.keys(auths(host, ROOT_DOCKER)).sort()).toEqual([DOCKER_HUB_KEY, 'reg.example.com']);
    expect(p.errors).toEqual([]);
    expect(p.changes.map(describeChange)).toEqual([
      `create  ${ROOT_DOCKER} (added ${DOCKER_HUB_KEY}, reg.example.com)`,
      `create  ${PROVIDER_RESPONSE_PATH} (added ${DOCKER_HUB_KEY}, reg.example.com)`,
      `create  ${DIGEST}`,
    ]);
    host.converge({ cleanup: true, targets: PROVIDER_TARGETS });
    expect(host.listing()).toEqual({ [KUBELET]: before });
  });

  it('moves to the provider a foreign entry the kubelet tries after the agent\'s, and keeps in config.json one it tries first or never for those images', () => {
    // In one config.json the kubelet tries `*.example.com` after `reg.example.com` (reverse-sorted
    // keys): served by the provider it stays behind it. `reg.example.com:5000` never meets the
    // agent's key; `zz.example.com` sorts first in both modes.
    const before = JSON.stringify({
      auths: { '*.example.com': { auth: b64('w:w') }, 'reg.example.com:5000': { auth: b64('p:p') }, 'quay.io': { username: 'q', password: 'q' } },
    });
    const host = new MemoryHost({ [KUBELET]: before });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: PROVIDER_TARGETS });
    expect(auths(host)).toEqual({ 'reg.example.com:5000': { auth: b64('p:p') }, 'quay.io': { username: 'q', password: 'q' } });
    expect(served(host)).toEqual({ '*.example.com': { username: 'w', password: 'w' }, 'reg.example.com': { username: 'u', password: 'p' } });
    expect(p.errors).toEqual([]);
    expect(p.changes.map(describeChange)[0]).toBe(`update  ${KUBELET} (removed *.example.com)`);
    // Once the agent has nothing for example.com, the entry is back in config.json, in its place.
    host.converge({ credentials: [cred('ghcr.io', 'g', 'g')], targets: PROVIDER_TARGETS });
    expect(Object.keys(auths(host))).toEqual(['*.example.com', 'reg.example.com:5000', 'quay.io']);
    expect(Object.keys(served(host))).toEqual(['ghcr.io']);
  });

  it('moves the whole chain: a foreign entry behind one that moved must follow it too', () => {
    // reg.example.co* covers reg.example.com (the agent's) and sorts after reg.example.co, which
    // the agent's key never meets: in config.json the kubelet tries reg.example.co* first for
    // reg.example.co images, so both go to the provider, in that order.
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { 'reg.example.co': { auth: b64('a:a') }, 'reg.example.co*': { auth: b64('b:b') } } }) });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: PROVIDER_TARGETS });
    expect(auths(host)).toEqual({});
    expect(Object.keys(served(host))).toEqual(['reg.example.co', 'reg.example.co*', 'reg.example.com']);
  });

  it("moves a foreign Docker Hub fallback key once the agent serves a Docker Hub image, and a broader key that would hide the agent's", () => {
    // The kubelet uses index.docker.io only when nothing else in ITS keyring matched: config.json's
    // would come first for docker.io/myorg images, then the agent's.
    const fallback = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('f:f') } } }) });
    fallback.converge({ credentials: [cred('docker.io/myorg', 'u', 'p')], targets: PROVIDER_TARGETS });
    expect(auths(fallback)).toEqual({});
    expect(Object.keys(served(fallback))).toEqual(['docker.io/myorg', 'https://index.docker.io/v1/']);
    // A broader foreign key matching Docker Hub (*.io) would hide the agent's fallback key: as in
    // config-json mode the agent also serves docker.io, and *.io follows it into the provider;
    // quay.io images still get config.json's quay.io first, then *.io, as in one config.json.
    const wide = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { '*.io': { auth: b64('w:w') }, 'quay.io': { auth: b64('q:q') } } }) });
    wide.converge({ credentials: [cred(DOCKER_HUB_KEY, 'hub', 'h')], targets: PROVIDER_TARGETS });
    expect(Object.keys(auths(wide))).toEqual(['quay.io']);
    expect(Object.keys(served(wide))).toEqual(['*.io', 'docker.io', DOCKER_HUB_KEY]);
  });

  it("creates the kubelet's config.json on a new node, so the kubelet never falls back to the tools' file that holds the agent's entries", () => {
    const host = new MemoryHost({ '/var/lib/kubelet': 'dir' });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: PROVIDER_TARGETS });
    expect(host.json(KUBELET)).toEqual({ auths: {} });
    expect(Object.keys(auths(host, ROOT_DOCKER))).toEqual(['reg.example.com']);
    host.converge({ cleanup: true, targets: PROVIDER_TARGETS });
    expect(host.listing()).toEqual({});
  });

  it('serves an empty answer when the agent has no credentials, and keeps config.json untouched', () => {
    const before = JSON.stringify({ auths: { 'quay.io': { auth: b64('q:q') } } });
    const host = new MemoryHost({ [KUBELET]: before });
    host.converge({ credentials: [], targets: PROVIDER_TARGETS });
    expect(host.text(KUBELET)).toBe(before);
    expect(served(host)).toEqual({});
  });

  it('switching modes either way gives the host the other mode gives, byte for byte, and cleanup restores the node', () => {
    const cases: Record<string, string>[] = [
      { [KUBELET]: JSON.stringify({ auths: { 'quay.io': { auth: b64('q:q') }, '*.example.com': { auth: b64('w:w') }, 'reg.example.com': { auth: b64('old:r') } } }, null, 1) },
      { [ROOT_DOCKER]: JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('f:f') }, 'reg.example.com/team': { auth: b64('t:t') } }, credsStore: 'x' }) },
      {},
    ];
    const credentials = [cred('reg.example.com', 'u', 'p'), cred('docker.io', 'hub', 'h')];
    for (const before of cases) {
      const asConfigJson = new MemoryHost(before);
      asConfigJson.converge({ credentials, targets: TARGETS });
      const asProvider = new MemoryHost(before);
      asProvider.converge({ credentials, targets: PROVIDER_TARGETS });

      const toProvider = asConfigJson.clone();
      toProvider.converge({ credentials, targets: PROVIDER_TARGETS });
      expectSameHost(toProvider, asProvider);
      const back = toProvider.clone();
      back.converge({ credentials, targets: TARGETS });
      expectSameHost(back, asConfigJson);
      for (const host of [asProvider, toProvider, back]) {
        host.converge({ cleanup: true, targets: PROVIDER_TARGETS });
        expect(host.listing()).toEqual(before);
      }
    }
  });

  it('rewrites a damaged response (someone else wrote it) and keeps the record of both files', () => {
    const host = new MemoryHost({ '/var/lib/kubelet': 'dir' });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: PROVIDER_TARGETS });
    const good = host.text(PROVIDER_RESPONSE_PATH)!;
    host.files.set(PROVIDER_RESPONSE_PATH, { kind: 'file', bytes: Buffer.from(good.slice(0, 40)), mode: 0o600, uid: 0, gid: 0 });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: PROVIDER_TARGETS });
    expect(p.operations.map((o) => [o.op, o.path])).toEqual([['write', PROVIDER_RESPONSE_PATH]]);
    expect(host.text(PROVIDER_RESPONSE_PATH)).toBe(good);
    expect(Object.keys(host.record.files).sort()).toEqual([PROVIDER_RESPONSE_PATH, DIGEST]);
  });
});
