import { describe, expect, it } from 'vitest';
import { parse as parseToml } from 'smol-toml';
import { HOSTS_TOML_HEADER } from '../../src/plan/containerd-hosts.ts';
import { b64, cred, dockerJson, MemoryHost, options, TARGETS } from '../support/plan-fixtures.ts';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const KUBELET = '/var/lib/kubelet/config.json';
const ROOT_DOCKER = '/root/.docker/config.json';

describe('planner: kubelet and docker config.json', () => {
  it('creates both config files on a fresh node with exactly the agent entries, mode 0600', () => {
    const host = new MemoryHost({ '/var/lib/kubelet': 'dir' });
    const p = host.converge({ credentials: [cred('reg.example.com:5000', 'u', 'p'), cred('https://index.docker.io/v1/', 'hub', 'tok')] });
    const expected = dockerJson({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:tok') }, 'reg.example.com:5000': { auth: b64('u:p') } } });
    expect(host.listing()).toEqual({ [KUBELET]: expected, [ROOT_DOCKER]: expected });
    expect(p.operations.filter((o) => o.op === 'write').map((o) => o.op === 'write' && o.mode)).toEqual([0o600, 0o600]);
    expect(p.operations.filter((o) => o.op === 'mkdir').map((o) => o.path)).toEqual(['/root', '/root/.docker', '/var/lib/node-registry-credentials']);
    expect(p.errors).toEqual([]);
  });

  it('keeps foreign entries, other fields, owner and mode when merging into an existing file', () => {
    const foreign = { auths: { 'other.example.org': { auth: b64('x:y') } }, HttpHeaders: { 'User-Agent': 'x' }, credsStore: 'pass' };
    const host = new MemoryHost({ [KUBELET]: { text: JSON.stringify(foreign), mode: 0o640, uid: 1000 } });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], targets: { ...TARGETS, dockerConfig: undefined } });
    expect(host.json(KUBELET)).toEqual({ ...foreign, auths: { 'other.example.org': { auth: b64('x:y') }, 'reg.example.com': { auth: b64('u:p') } } });
    expect(p.operations.find((o) => o.op === 'write')).toMatchObject({ path: KUBELET, mode: 0o640, uid: 1000 });
  });

  it('seeds a new kubelet config.json from the file the kubelet reads today, so no credential is lost', () => {
    const today = { auths: { 'legacy.example.org': { auth: b64('old:cred') } }, credsStore: 'desktop' };
    const host = new MemoryHost({ [ROOT_DOCKER]: JSON.stringify(today) });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')] });
    // Only "auths" is carried over: the kubelet ignores credsStore.
    expect(host.json(KUBELET)).toEqual({ auths: { 'legacy.example.org': { auth: b64('old:cred') }, 'reg.example.com': { auth: b64('u:p') } } });
  });

  it('seeds from a legacy .dockercfg when that is what the kubelet reads', () => {
    const host = new MemoryHost({ '/var/lib/kubelet/.dockercfg': JSON.stringify({ 'legacy.example.org': { auth: b64('a:b') } }) });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')] });
    expect(Object.keys((host.json(KUBELET) as { auths: object }).auths)).toEqual(['legacy.example.org', 'reg.example.com']);
  });

  it('removes one registry and leaves the others and the foreign entries alone', () => {
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { 'mine-not.example.org': { auth: b64('f:f') } } }) });
    host.converge({ credentials: [cred('a.example.com', 'a', '1'), cred('b.example.com', 'b', '2')] });
    const p = host.converge({ credentials: [cred('a.example.com', 'a', '1')] });
    expect(host.json(KUBELET)).toEqual({ auths: { 'mine-not.example.org': { auth: b64('f:f') }, 'a.example.com': { auth: b64('a:1') } } });
    expect(p.changes.find((c) => c.path === KUBELET)).toMatchObject({ change: 'update', removed: ['b.example.com'], added: [] });
  });

  it('restores a foreign entry it had replaced when its own entry goes away', () => {
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: { 'reg.example.com': { auth: b64('theirs:old') } } }) });
    host.converge({ credentials: [cred('reg.example.com', 'ours', 'new')] });
    expect(host.json(KUBELET)).toEqual({ auths: { 'reg.example.com': { auth: b64('ours:new') } } });
    host.converge({ credentials: [cred('other.example.com', 'o', 'o')] });
    expect((host.json(KUBELET) as { auths: Record<string, unknown> }).auths['reg.example.com']).toEqual({ auth: b64('theirs:old') });
  });

  it('writes nothing when the host already matches', () => {
    const host = new MemoryHost();
    const input = { credentials: [cred('reg.example.com', 'u', 'p')], hostOptions: [options('reg.example.com', { ca: CA })] };
    host.converge(input);
    expect(host.plan(input).operations).toEqual([]);
  });

  it('rotates a password in place', () => {
    const host = new MemoryHost();
    host.converge({ credentials: [cred('reg.example.com', 'u', 'old')] });
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'new')] });
    expect(p.changes.find((c) => c.path === KUBELET)).toMatchObject({ updated: ['reg.example.com'] });
    expect(JSON.stringify(host.listing())).not.toContain(b64('u:old'));
  });

  it('refuses a target that is a symlink or a directory, and still plans the other files', () => {
    for (const kind of ['symlink', 'dir'] as const) {
      const host = new MemoryHost({ [KUBELET]: kind });
      const p = host.plan({ credentials: [cred('reg.example.com', 'u', 'p')] });
      expect(p.errors.map((e) => e.code)).toEqual([kind === 'symlink' ? 'NRC_E_UNSAFE_PATH' : 'NRC_E_TARGET_NOT_FILE']);
      expect(p.operations.some((o) => o.path === KUBELET)).toBe(false);
      expect(p.operations.some((o) => o.path === ROOT_DOCKER)).toBe(true);
    }
  });

  it('refuses to write below a symlinked directory', () => {
    const host = new MemoryHost({ '/root/.docker': 'symlink' });
    const p = host.plan({ credentials: [cred('reg.example.com', 'u', 'p')] });
    expect(p.errors.map((e) => [e.code, e.subject])).toEqual([['NRC_E_UNSAFE_PATH', '/root/.docker']]);
    expect(p.operations.some((o) => o.path.startsWith('/root/.docker'))).toBe(false);
  });

  it('leaves a foreign config.json it cannot parse untouched', () => {
    const host = new MemoryHost({ [KUBELET]: '{ not json' });
    const p = host.plan({ credentials: [cred('reg.example.com', 'u', 'p')] });
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_FOREIGN_FILE_UNPARSEABLE']);
    expect(p.operations.some((o) => o.path === KUBELET)).toBe(false);
  });

  it('restores a pre-existing file byte for byte on cleanup, formatting and mode included', () => {
    const original = '{"auths":{"x.example.org":{"auth":"eDp5"}},   "proxies": {}}\n';
    const host = new MemoryHost({ [KUBELET]: { text: original, mode: 0o644, uid: 0 }, '/etc/containerd/config.toml': 'version = 2\n' });
    const before = host.listing();
    host.converge({ credentials: [cred('reg.example.com:5000', 'u', 'p')], hostOptions: [options('reg.example.com:5000', { ca: CA, authHeader: true })] });
    expect(host.text(KUBELET)).not.toBe(original);
    const p = host.converge({ cleanup: true });
    expect(host.listing()).toEqual(before);
    expect(p.record).toBeUndefined();
    expect([...host.files.keys()].filter((k) => k.startsWith('/etc/containerd/certs.d') || k.startsWith('/root'))).toEqual([]);
  });

  it('removes the cached ECR tokens on cleanup, leaving no credential and no state directory behind', () => {
    const host = new MemoryHost();
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')] });
    host.files.set('/var/lib/node-registry-credentials/ecr-tokens.json', { kind: 'file', bytes: Buffer.from('{"version":1,"tokens":{}}'), mode: 0o600, uid: 0, gid: 0 });
    host.converge({ cleanup: true });
    expect(host.listing()).toEqual({});
    expect(host.files.has('/var/lib/node-registry-credentials')).toBe(false);
  });

  it('keeps another writer\'s later changes when handing a file back', () => {
    const host = new MemoryHost({ [KUBELET]: JSON.stringify({ auths: {} }) });
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')] });
    const doc = host.json(KUBELET) as { auths: Record<string, unknown> };
    doc.auths['late.example.org'] = { auth: b64('l:l') };
    host.files.set(KUBELET, { kind: 'file', bytes: Buffer.from(JSON.stringify(doc)), mode: 0o600, uid: 0, gid: 0 });
    host.converge({ cleanup: true });
    expect(host.json(KUBELET)).toEqual({ auths: { 'late.example.org': { auth: b64('l:l') } } });
  });
});

describe('planner: containerd hosts.toml and certs.d', () => {
  it('writes hosts.toml with a relative CA and a Basic header for a registry on a custom port', () => {
    const host = new MemoryHost({ '/etc/docker': 'dir' });
    host.converge({ credentials: [cred('reg.example.com:5000', 'u', 'p')], hostOptions: [options('reg.example.com:5000', { ca: CA, authHeader: true })] });
    const dir = '/etc/containerd/certs.d/reg.example.com:5000';
    const toml = host.text(`${dir}/hosts.toml`)!;
    expect(toml.startsWith(HOSTS_TOML_HEADER)).toBe(true);
    expect(parseToml(toml)).toEqual({
      // One host only: containerd adds the top-level server as a host of its own (see renderHostsToml).
      server: 'https://reg.example.com:5000',
      ca: 'ca.crt',
      header: { Authorization: [`Basic ${b64('u:p')}`] },
      host: {},
    });
    expect(host.files.get(`${dir}/hosts.toml`)).toMatchObject({ mode: 0o600 });
    expect(host.text(`${dir}/ca.crt`)).toBe(CA);
    expect(host.text('/etc/docker/certs.d/reg.example.com:5000/ca.crt')).toBe(CA);
  });

  it('writes no hosts.toml for a registry that only has credentials', () => {
    const host = new MemoryHost();
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')] });
    expect(Object.keys(host.listing()).some((p) => p.includes('certs.d'))).toBe(false);
  });

  it('never writes into a registry directory someone else created, nor shadows a host_port_ one', () => {
    const host = new MemoryHost({ '/etc/containerd/certs.d/reg.example.com/hosts.toml': 'server = "x"\n', '/etc/containerd/certs.d/other.example.com_5000_': 'dir' });
    const p = host.plan({
      credentials: [],
      hostOptions: [options('reg.example.com', { ca: CA }), options('other.example.com:5000', { ca: CA }), options('fine.example.com', { skipVerify: true })],
    });
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_FOREIGN_DIRECTORY', 'NRC_E_FOREIGN_DIRECTORY']);
    const written = p.operations.filter((o) => o.op === 'write').map((o) => o.path);
    // Other runtimes' certs.d directories are separate decisions: theirs are not foreign here.
    expect(written).toEqual(['/etc/containerd/certs.d/fine.example.com/hosts.toml', '/etc/docker/certs.d/other.example.com:5000/ca.crt', '/etc/docker/certs.d/reg.example.com/ca.crt']);
  });

  it('refuses host options that cannot work: wildcards, and a Basic header for Docker Hub', () => {
    const host = new MemoryHost();
    const p = host.plan({
      credentials: [cred('docker.io', 'u', 'p')],
      hostOptions: [options('*.example.com', { ca: CA }), options('docker.io', { authHeader: true })],
    });
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_HOST_OPTIONS_UNSUPPORTED', 'NRC_E_HOST_OPTIONS_UNSUPPORTED']);
    expect(p.operations.some((o) => o.path.includes('certs.d'))).toBe(false);
  });

  it('removes its hosts.toml directory when the registry goes, but never _default or foreign ones', () => {
    const host = new MemoryHost({ '/etc/containerd/certs.d/_default/hosts.toml': 'x', '/etc/containerd/certs.d/theirs/hosts.toml': 'y' });
    host.converge({ credentials: [], hostOptions: [options('reg.example.com', { skipVerify: true })] });
    expect(host.files.has('/etc/containerd/certs.d/reg.example.com/hosts.toml')).toBe(true);
    host.converge({ credentials: [] });
    expect(host.files.has('/etc/containerd/certs.d/reg.example.com')).toBe(false);
    expect(host.text('/etc/containerd/certs.d/_default/hosts.toml')).toBe('x');
    expect(host.text('/etc/containerd/certs.d/theirs/hosts.toml')).toBe('y');
  });

  it('uses registry-1.docker.io as the server for Docker Hub', () => {
    const host = new MemoryHost();
    host.converge({ credentials: [], hostOptions: [options('docker.io', { ca: CA })] });
    expect(host.text('/etc/containerd/certs.d/docker.io/hosts.toml')).toContain('server = "https://registry-1.docker.io"');
  });

  it('writes nothing for containerd when it has no config_path', () => {
    const host = new MemoryHost();
    const p = host.plan({ credentials: [], hostOptions: [options('reg.example.com', { ca: CA })], targets: { ...TARGETS, containerdHostsDir: undefined, certsDirs: [] } });
    expect(p.operations).toEqual([]);
  });
});
