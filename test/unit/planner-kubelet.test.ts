import { describe, expect, it } from 'vitest';
import { DOCKER_HUB_KEY } from '../../src/model/registry-key.ts';
import { b64, cred, MemoryHost, TARGETS } from '../support/plan-fixtures.ts';

// What the kubelet's keyring does with these files is checked against its own code by
// test/oracle/kubelet-differential.test.ts; these pin the planner's decisions one by one.
const KUBELET = '/var/lib/kubelet/config.json';
const ROOT_DOCKER = '/root/.docker/config.json';
const kubeletOnly = { ...TARGETS, dockerConfig: undefined };
const auths = (host: MemoryHost, path = KUBELET): Record<string, unknown> => (host.json(path) as { auths: Record<string, unknown> }).auths;

describe('planner: what the kubelet reads from its config.json', () => {
  it('rotates Docker Hub even when the node already has a docker.io entry, which the kubelet would match first', () => {
    const before = JSON.stringify({ auths: { 'docker.io': { auth: b64('old:stale') }, 'other.example.org': { auth: b64('o:o') } } });
    const host = new MemoryHost({ [KUBELET]: before });
    const p = host.converge({ credentials: [cred('https://index.docker.io/v1/', 'hub', 'rotated')], targets: kubeletOnly });
    expect(auths(host)).toEqual({ 'other.example.org': { auth: b64('o:o') }, [DOCKER_HUB_KEY]: { auth: b64('hub:rotated') } });
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_FOREIGN_ENTRY_REPLACED']);
    // The entry comes back when the agent's goes, and cleanup restores the file byte for byte.
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: kubeletOnly });
    expect(auths(host)['docker.io']).toEqual({ auth: b64('old:stale') });
    host.converge({ cleanup: true, targets: kubeletOnly });
    expect(host.text(KUBELET)).toBe(before);
  });

  it('moves aside a foreign entry the kubelet cannot decode, so that it does not drop the whole file', () => {
    const before = JSON.stringify({ auths: { 'broken.example.org': { auth: b64('no-colon') }, 'number.example.org': { username: 7 }, 'fine.example.org': { auth: b64('f:f') } } });
    const host = new MemoryHost({ [KUBELET]: before });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: kubeletOnly });
    expect(Object.keys(auths(host)).sort()).toEqual(['fine.example.org', 'reg.example.com']);
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_FOREIGN_ENTRY_INVALID', 'NRC_E_FOREIGN_ENTRY_INVALID']);
    host.converge({ cleanup: true, targets: kubeletOnly });
    expect(host.text(KUBELET)).toBe(before);
  });

  it('replaces another spelling of the same key instead of leaving the kubelet two credentials in random order', () => {
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { 'https://reg.example.com/v2/': { auth: b64('theirs:old') } } }) });
    host.converge({ credentials: [cred('reg.example.com', 'ours', 'new')], targets: kubeletOnly });
    expect(auths(host)).toEqual({ 'reg.example.com': { auth: b64('ours:new') } });
  });

  it('replaces a narrower foreign key that the kubelet would try first, and leaves a broader one', () => {
    const host = new MemoryHost({
      [KUBELET]: JSON.stringify({ auths: { 'reg.example.com/team': { auth: b64('t:t') }, 'reg-*.example.com': { auth: b64('w:w') }, 'reg.example.com:5000': { auth: b64('p:p') } } }),
    });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p'), cred('reg-a.example.com/app', 'a', 'a')], targets: kubeletOnly });
    expect(Object.keys(auths(host)).sort()).toEqual(['reg-*.example.com', 'reg-a.example.com/app', 'reg.example.com', 'reg.example.com:5000']);
    expect(p.errors.map((e) => e.code).sort()).toEqual(['NRC_E_FOREIGN_ENTRY_REPLACED']);
  });

  it('writes Docker Hub as docker.io too when a broader foreign key would hide the fallback key', () => {
    // A wildcard sorts before letters, so a broader key can only get ahead of the Docker Hub
    // fallback, which the kubelet tries after every other match; docker.io sorts after `*.io`.
    const wider = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { '*.io': { auth: b64('w:w') } } }) });
    const q = wider.converge({ credentials: [cred(DOCKER_HUB_KEY, 'u', 'p')], targets: kubeletOnly });
    expect(Object.keys(auths(wider)).sort()).toEqual(['*.io', 'docker.io', DOCKER_HUB_KEY]);
    expect(q.errors).toEqual([]);
    wider.converge({ cleanup: true, targets: kubeletOnly });
    expect(auths(wider)).toEqual({ '*.io': { auth: b64('w:w') } });
  });

  it('reports that docker.io, written over a foreign *.io, is tried before a Secret key covering part of Docker Hub', () => {
    // As an imagePullSecret, *.io/library wins for docker.io/library images; in one file docker.io
    // sorts first. The agent still writes it (else docker.io/other images get only the foreign
    // credential) and says so, naming the keys.
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { '*.io': { auth: b64('f:f') } } }) });
    const p = host.converge({ credentials: [cred('*.io/library', 'lib', 'p'), cred(DOCKER_HUB_KEY, 'hub', 'p')], targets: kubeletOnly });
    expect(Object.keys(auths(host)).sort()).toEqual(['*.io', '*.io/library', 'docker.io', DOCKER_HUB_KEY]);
    expect(p.errors.map((e) => [e.code, e.subject])).toEqual([['NRC_E_HUB_ALIAS_REORDERS', `${KUBELET} "*.io"`]]);
    expect(p.errors[0]?.message).toContain('"*.io/library"');
    // Without a key of ours under docker.io there is nothing to report.
    const plain = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { '*.io': { auth: b64('f:f') } } }) });
    expect(plain.converge({ credentials: [cred('quay.io', 'q', 'p'), cred(DOCKER_HUB_KEY, 'hub', 'p')], targets: kubeletOnly }).errors).toEqual([]);
  });

  it('seeds a new file from the one the kubelet reads today, skipping a file it would refuse', () => {
    const host = new MemoryHost({
      '/config.json': JSON.stringify({ auths: { 'bad.example.org': { auth: 'not base64!' }, 'lost.example.org': { auth: b64('l:l') } } }),
      [ROOT_DOCKER]: JSON.stringify({ Auths: { 'today.example.org': { auth: b64('t:t') } } }),
    });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: kubeletOnly });
    expect(Object.keys(auths(host)).sort()).toEqual(['reg.example.com', 'today.example.org']);
  });

  it('seeds nothing past a readable file without credentials: the kubelet stops its search there too', () => {
    const host = new MemoryHost({ '/config.json': '{}', [ROOT_DOCKER]: JSON.stringify({ auths: { 'later.example.org': { auth: b64('l:l') } } }) });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: kubeletOnly });
    expect(Object.keys(auths(host))).toEqual(['reg.example.com']);
  });

  it('gives tools on the node the docker.io credential under the key the docker CLI looks up', () => {
    const host = new MemoryHost();
    host.converge({ credentials: [cred('docker.io', 'hub', 'tok')] });
    expect(Object.keys(auths(host))).toEqual(['docker.io']);
    expect(Object.keys(auths(host, ROOT_DOCKER))).toEqual([DOCKER_HUB_KEY]);
  });

  it('says so when the rest of the file would still make the kubelet skip it', () => {
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: {}, HttpHeaders: { 'X-Meta': 7 } }) });
    const p = host.plan({ credentials: [cred('reg.example.com', 'u', 'p')], targets: kubeletOnly });
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_KUBELET_CANNOT_READ']);
  });
});
