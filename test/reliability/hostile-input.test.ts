// Hostile input: a fixed corpus of attacks and garbage, and property-based tests (fast-check).
// Each bad entry gets a coded error for that entry only, the rest applies, nothing is ever
// planned outside the managed paths, every hosts.toml parses to exactly the expected structure,
// and huge inputs stay within a loose memory bound.
import * as fs from 'node:fs';
import { posix } from 'node:path';
import fc from 'fast-check';
import { parse as parseToml } from 'smol-toml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyCommand, renderCommand, type Io } from '../../src/commands/oneshot.ts';
import { COMMON_FLAGS, INPUT_FLAGS, parseFlags } from '../../src/commands/options.ts';
import type { FileState } from '../../src/model/host-state.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { validateRegistryHost } from '../../src/model/registry-key.ts';
import { EMPTY_RECORD } from '../../src/plan/ownership.ts';
import { plan } from '../../src/plan/planner.ts';
import type { Targets } from '../../src/model/targets.ts';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import type { HostOptions } from '../../src/model/host-options.ts';
import { parseDockerConfig } from '../../src/sources/dockerconfig.ts';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';
import {
  expectNoSecrets,
  FOREIGN_AUTHS,
  makeSampleHost,
  registryToml,
  TEST_CA,
  tryReadJson,
  type SampleHost,
} from '../support/reliability-host.ts';

const GOOD = { key: 'good.example.com', auth: encodeAuth('good-user', 'good-pw-Rr5t') };
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const ok = { auth: b64('hostile-user:hostile-pw-Jj2k') };

/** Each hostile key or entry, next to one good entry, and the code it must get. */
const CORPUS: readonly { name: string; key: string; entry?: unknown; raw?: string; code: string }[] = [
  { name: 'path traversal', key: '../../etc/passwd', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'traversal in the repository path', key: 'reg.example.com/../../../etc', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'encoded traversal', key: 'reg.example.com/%2e%2e/x', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'absolute path', key: '/etc/shadow', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'absolute path after a scheme', key: 'https:///etc/containerd', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'backslashes', key: 'reg.example.com\\..\\..\\x', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'NUL byte', key: 'reg.example.com\u0000.evil', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'newline', key: 'reg.example.com\n[host]', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'escape sequence', key: 'reg\u001b[31m.example.com', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'Cyrillic look-alike', key: 'r\u0435g.example.com', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'fullwidth look-alike', key: '\uff52\uff45\uff47.example.com', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'zero-width space', key: 'reg\u200b.example.com', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'right-to-left override', key: 'reg.\u202emoc.example', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'IPv6 without brackets', key: 'fd00::1:5000', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'IPv6 without closing bracket', key: '[fd00::1:5000', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'IPv6 with a zone', key: '[fe80::1%eth0]:5000', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'port out of range', key: 'reg.example.com:99999', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'port zero', key: 'reg.example.com:0', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'two ports', key: 'reg.example.com:1:2', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'other scheme', key: 'file://reg.example.com', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'empty key', key: '', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'wildcard in the path', key: 'reg.example.com/*', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'upper-case scheme (the kubelet would read it as part of the host)', key: 'HTTPS://reg.example.com', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'very long key', key: `${'a'.repeat(63)}.`.repeat(20), code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'TOML injection in the key', key: 'reg.example.com"]\n[host."https://evil', code: 'NRC_E_REGISTRY_HOST_INVALID' },
  { name: 'invalid base64', key: 'bad64.example.com', entry: { auth: '!!not*base64' }, code: 'NRC_E_AUTH_BASE64' },
  { name: 'base64 of invalid UTF-8', key: 'badutf.example.com', entry: { auth: Buffer.from([0xff, 0x3a, 0xfe]).toString('base64') }, code: 'NRC_E_AUTH_BASE64' },
  { name: 'auth without a colon', key: 'nocolon.example.com', entry: { auth: b64('justausername') }, code: 'NRC_E_AUTH_NO_COLON' },
  { name: 'NUL in the password', key: 'nul.example.com', entry: { username: 'u', password: 'p\u0000w' }, code: 'NRC_E_CONTROL_CHARACTERS' },
  { name: 'newline in the decoded auth', key: 'nl.example.com', entry: { auth: b64('u:p\nAuthorization: x') }, code: 'NRC_E_CONTROL_CHARACTERS' },
  { name: 'entry not an object', key: 'str.example.com', entry: 'user:pass', code: 'NRC_E_ENTRY_NOT_OBJECT' },
  { name: 'entry an array', key: 'arr.example.com', entry: [ok], code: 'NRC_E_ENTRY_NOT_OBJECT' },
  { name: 'field of the wrong type', key: 'num.example.com', entry: { username: 42, password: 'x' }, code: 'NRC_E_FIELD_TYPE' },
  { name: 'deeply nested field', key: 'deep.example.com', raw: `{"auth": ${'['.repeat(5000)}${']'.repeat(5000)}}`, code: 'NRC_E_FIELD_TYPE' },
  { name: 'no credentials', key: 'empty.example.com', entry: {}, code: 'NRC_E_AUTH_MISSING' },
  { name: 'oversized field', key: 'big.example.com', entry: { username: 'u', password: 'x'.repeat(70_000) }, code: 'NRC_E_FIELD_TOO_LARGE' },
];

const TARGETS: Targets = {
  kubeletConfig: '/var/lib/kubelet/config.json',
  kubeletFallbacks: ['/config.json', '/root/.docker/config.json', '/.docker/config.json'],
  dockerConfig: '/root/.docker/config.json',
  containerdHostsDir: '/etc/containerd/certs.d',
  certsDirs: ['/etc/docker/certs.d', '/etc/containers/certs.d'],
};
const MANAGED_FILES = [TARGETS.kubeletConfig, TARGETS.dockerConfig!, '/var/lib/node-registry-credentials/ownership.json'];
const MANAGED_DIRS = [TARGETS.containerdHostsDir!, ...TARGETS.certsDirs];

/** Every path a plan may touch: the target files, one registry directory level under each certs dir, and their ancestors. */
function expectUnderManagedPaths(path: string, op: string): void {
  expect(path.includes('\0') || posix.normalize(path) !== path || !path.startsWith('/'), `${op} ${JSON.stringify(path)} is not a clean absolute path`).toBe(false);
  if (MANAGED_FILES.includes(path)) return;
  if ([...MANAGED_FILES, ...MANAGED_DIRS].some((f) => f.startsWith(`${path}/`)) && op === 'mkdir') return;
  const dir = MANAGED_DIRS.find((d) => path.startsWith(`${d}/`));
  if (dir === undefined) expect.fail(`${op} ${JSON.stringify(path)} is outside the managed paths`);
  const rest = path.slice(dir.length + 1).split('/');
  const host = rest[0]!;
  expect(validateRegistryHost(host), `${op} ${path}: registry directory is not a valid host`).toBe(host);
  if (rest.length === 1) expect(['mkdir', 'rmdir']).toContain(op);
  else expect(rest.length === 2 && ['hosts.toml', 'ca.crt'].includes(rest[1]!), `${op} ${path}`).toBe(true);
}

/** A host where every target directory exists and the kubelet config.json has a foreign entry. */
function hostSnapshot(): Map<string, FileState> {
  const m = new Map<string, FileState>();
  for (const d of ['/var', '/var/lib', '/var/lib/kubelet', '/root', '/etc', '/etc/containerd', ...MANAGED_DIRS]) m.set(d, { kind: 'directory' });
  m.set(TARGETS.kubeletConfig, { kind: 'file', bytes: Buffer.from(JSON.stringify({ auths: FOREIGN_AUTHS })), mode: 0o600, uid: 0, gid: 0 });
  return m;
}

function planFor(credentials: readonly RegistryCredential[], hostOptions: ReadonlyMap<string, HostOptions>): ReturnType<typeof plan> {
  return plan({ credentials, hostOptions, targets: TARGETS, snapshot: hostSnapshot(), record: EMPTY_RECORD });
}

/** Checks one hosts.toml the planner wrote: exactly server + one host table with known keys. */
function expectHostsTomlStructure(path: string, bytes: Uint8Array, options: HostOptions, credential: RegistryCredential | undefined): void {
  const doc = parseToml(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  const host = posix.basename(posix.dirname(path));
  expect(host).toBe(options.host);
  const url = options.host === 'docker.io' ? 'https://registry-1.docker.io' : `https://${options.host}`;
  // One host: the top-level server; the empty host table only satisfies containerd 1.6.
  const want: Record<string, unknown> = { server: url, host: {} };
  if (options.ca !== undefined) want['ca'] = 'ca.crt';
  if (options.skipVerify) want['skip_verify'] = true;
  if (options.authHeader && credential) want['header'] = { Authorization: [`Basic ${encodeAuth(credential.username, credential.password)}`] };
  expect(doc).toEqual(want);
}

describe('hostile input: fixed corpus', () => {
  it.each(CORPUS)('$name: $code for that entry only, the good entry still applies', ({ key, entry, raw, code }) => {
    const text = raw !== undefined
      ? `{"auths": {${JSON.stringify(key)}: ${raw}, ${JSON.stringify(GOOD.key)}: {"auth": "${GOOD.auth}"}}}`
      : JSON.stringify({ auths: { [key]: entry ?? ok, [GOOD.key]: { auth: GOOD.auth } } });
    const snap = parseDockerConfig(text, 'corpus');
    expect(snap.ok).toBe(true);
    expect(snap.errors.map((e) => e.code)).toEqual([code]);
    expect(snap.credentials.map((c) => c.key)).toEqual([GOOD.key]);
    // The message quotes the key bounded and escaped (no raw control characters), never the secret.
    const message = snap.errors[0]!.message;
    // eslint-disable-next-line no-control-regex
    expect(message).not.toMatch(/[\u0000-\u001f\u007f\u202e]/);
    expectNoSecrets(message, ['hostile-pw-Jj2k', ok.auth, 'justausername', 'p\u0000w', 'x'.repeat(100)], 'an error message');
    for (const op of planFor(snap.credentials, new Map()).operations) expectUnderManagedPaths(op.path, op.op);
  });

  it('accepts IPv6 literals with and without a port and upper case: keys as the kubelet matches them, hosts normalized', () => {
    const snap = parseDockerConfig(JSON.stringify({ auths: { '[FD00::1]:5000': ok, '[fd00:0:0::2]': ok, 'https://REG.Example.COM:443/v2/': ok } }), 'ipv6');
    expect(snap.errors).toEqual([]);
    expect(snap.credentials.map((c) => c.key).sort()).toEqual(['REG.Example.COM:443', '[FD00::1]:5000', '[fd00:0:0::2]']);
    expect(snap.credentials.map((c) => c.host).sort()).toEqual(['[fd00::1]:5000', '[fd00::2]', 'reg.example.com:443']);
  });

  it('reports duplicate keys that are one key to the kubelet, keeping one', () => {
    const snap = parseDockerConfig(JSON.stringify({ auths: { 'reg.example.com': ok, 'https://reg.example.com/v1/': { auth: b64('other:pw') }, 'http://reg.example.com/': ok } }), 'dup');
    expect(snap.credentials.map((c) => c.key)).toEqual(['reg.example.com']);
    expect(snap.errors.map((e) => e.code)).toEqual(['NRC_E_DUPLICATE_REGISTRY']);
  });

  it('refuses a registry config whose keys or values try TOML injection or traversal', () => {
    const text = [
      '[registry."reg.example.com\\"]\\n[host.\\"https://evil"]\nskip_verify = true',
      '[registry."../../etc"]\nskip_verify = true',
      `[registry."ok.example.com:5000"]\nca = """${TEST_CA}\\"\\"\\"\\n[host.evil]\\n"""\nauth_header = true`,
      '[registry."x.example.com"]\nca_file = "/etc/shadow"',
    ].join('\n');
    const cfg = parseRegistryConfig(text, () => 'root:$6$hash:19000:0:99999:7:::\n');
    expect(cfg.errors.map((e) => e.code)).toEqual(['NRC_E_REGISTRY_HOST_INVALID', 'NRC_E_REGISTRY_HOST_INVALID', 'NRC_E_CA_INVALID']);
    expect([...cfg.hosts.keys()]).toEqual(['ok.example.com:5000']);
    // The CA file holds the certificate block only, whatever else the value carried.
    expect(cfg.hosts.get('ok.example.com:5000')!.ca).toBe(TEST_CA);
    const cred: RegistryCredential = { key: 'ok.example.com:5000', host: 'ok.example.com:5000', username: 'a"b\\c\n', password: '"""\n[x]', source: 't' };
    const p = planFor([cred], cfg.hosts);
    const hostsToml = p.operations.find((o) => o.op === 'write' && o.path.endsWith('hosts.toml'));
    if (hostsToml?.op !== 'write') expect.fail('no hosts.toml planned');
    expectHostsTomlStructure(hostsToml.path, hostsToml.bytes, cfg.hosts.get('ok.example.com:5000')!, cred);
  });

  it('a foreign config.json nested deeper than any docker config is refused, not a crash', () => {
    const deep = `{"auths": {}, "x": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    const snapshot = hostSnapshot();
    snapshot.set(TARGETS.kubeletConfig, { kind: 'file', bytes: Buffer.from(deep), mode: 0o600, uid: 0, gid: 0 });
    const creds = parseDockerConfig(JSON.stringify({ auths: { [GOOD.key]: { auth: GOOD.auth } } }), 't').credentials;
    const p = plan({ credentials: creds, hostOptions: new Map(), targets: TARGETS, snapshot, record: EMPTY_RECORD });
    expect(p.errors.map((e) => `${e.code} ${e.subject}`)).toEqual([`NRC_E_FOREIGN_FILE_UNPARSEABLE ${TARGETS.kubeletConfig}`]);
    expect(p.operations.some((o) => o.path === TARGETS.kubeletConfig)).toBe(false);
    expect(p.operations.some((o) => o.path === TARGETS.dockerConfig)).toBe(true);
  });

  it('deeply nested JSON as the whole input is a coded error, not a crash', () => {
    for (const text of [`${'['.repeat(200_000)}${']'.repeat(200_000)}`, `{"auths": ${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`]) {
      const snap = parseDockerConfig(text, 'deep');
      expect(snap.credentials).toEqual([]);
      expect(snap.errors.length).toBeGreaterThan(0);
      expect(snap.errors.every((e) => e.code.startsWith('NRC_E_'))).toBe(true);
    }
  });
});

describe('hostile input: properties', () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
  const validHost = fc.oneof(
    fc.tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([ls, port]) => `${ls.join('.')}${port ? `:${port}` : ''}`),
    fc.tuple(fc.ipV6(), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([ip, port]) => `[${ip}]${port ? `:${port}` : ''}`),
    fc.ipV4(),
  );
  const nasty = fc.constantFrom('..', '.', '/', '\\', '\0', '\n', '"', "'", ']', '[', '%2e', '\u0435', '\u200b', '\u202e', ':', '*', ' ', '#', '=', '${x}', 'C:\\');
  const hostileKey = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.tuple(fc.constantFrom('', 'https://', 'http://', '/', '../', 'file://'), validHost, fc.array(fc.oneof(nasty, label), { maxLength: 6 })).map(([a, h, parts]) => `${a}${h}${parts.join('')}`),
    fc.array(fc.oneof(nasty, label), { minLength: 1, maxLength: 8 }).map((p) => p.join('')),
    validHost.map((h) => h.toUpperCase()),
    validHost,
  );
  const anyText = fc.string({ unit: 'grapheme', maxLength: 30 });

  it('never plans a path outside the managed paths, whatever the keys and registry options', () => {
    fc.assert(
      fc.property(fc.uniqueArray(hostileKey, { maxLength: 12 }), fc.array(hostileKey, { maxLength: 4 }), (keys, optionHosts) => {
        const auths: Record<string, unknown> = {};
        for (const k of keys) auths[k] = { auth: b64(`u:${k.length}`) };
        const snap = parseDockerConfig(JSON.stringify({ auths }), 'prop');
        expect(snap.credentials.length + snap.errors.length).toBeLessThanOrEqual(keys.length);
        for (const c of snap.credentials) expect(validateRegistryHost(c.host)).toBe(c.host);
        const toml = optionHosts.map((h) => `[registry.${JSON.stringify(h)}]\nskip_verify = true\nauth_header = true\nca = """${TEST_CA}"""\n`).join('\n');
        const cfg = parseRegistryConfig(toml);
        const hostOptions = cfg.readable ? cfg.hosts : new Map<string, HostOptions>();
        const p = planFor(snap.credentials, hostOptions);
        for (const op of p.operations) expectUnderManagedPaths(op.path, op.op);
      }),
      { numRuns: 400 },
    );
  });

  it('every hosts.toml the planner writes parses to exactly the expected structure, whatever the credential', () => {
    fc.assert(
      fc.property(validHost, anyText, anyText, fc.boolean(), fc.boolean(), fc.boolean(), (rawHost, username, password, withCa, skipVerify, authHeader) => {
        const host = validateRegistryHost(rawHost);
        if (typeof host !== 'string' || host.includes('*')) return;
        const options: HostOptions = { host, ...(withCa ? { ca: TEST_CA } : {}), skipVerify, authHeader };
        const cred: RegistryCredential = { key: host, host, username, password: password || 'x', source: 'prop' };
        const p = planFor([cred], new Map([[host, options]]));
        const written = p.operations.filter((o) => o.op === 'write' && o.path.endsWith('/hosts.toml'));
        expect(written.length).toBe(withCa || skipVerify || authHeader ? 1 : 0);
        for (const op of written) if (op.op === 'write') expectHostsTomlStructure(op.path, op.bytes, options, cred);
        for (const op of p.operations) expectUnderManagedPaths(op.path, op.op);
      }),
      { numRuns: 400 },
    );
  });

  it('the parser never throws and codes every rejected entry, for arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.dictionary(hostileKey, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 8 }), (auths) => {
        const snap = parseDockerConfig(JSON.stringify({ auths }), 'json');
        expect(snap.ok).toBe(true);
        for (const e of snap.errors) expect(e.code).toMatch(/^NRC_E_/);
        // Every key is accounted for: a credential, an error, or a silent duplicate of an equal credential.
        expect(snap.credentials.length + snap.errors.length).toBeLessThanOrEqual(Object.keys(auths).length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('hostile input: size', () => {
  let host: SampleHost;
  beforeEach(() => {
    host = makeSampleHost();
  });
  afterEach(() => host.remove());

  async function run(command: typeof applyCommand | typeof renderCommand, file: string): Promise<{ code: number; out: string }> {
    const chunks: string[] = [];
    const io: Io = { out: (t) => chunks.push(t), err: (t) => chunks.push(t) };
    const code = await command(parseFlags(['--host-root', host.root, '--dockerconfig', file], [...COMMON_FLAGS, ...INPUT_FLAGS], {}), io);
    return { code, out: chunks.join('') };
  }

  const heapMb = (): number => process.memoryUsage().heapUsed / 2 ** 20;

  it('a 10 MB Secret: the oversized entry is rejected, the rest applies, memory stays bounded', async () => {
    const file = `${host.inputs}/big.json`;
    const huge = 'A'.repeat(10 * 2 ** 20);
    fs.writeFileSync(file, JSON.stringify({ auths: { 'huge.example.com': { username: 'u', password: huge }, [GOOD.key]: { auth: GOOD.auth } } }));
    const before = heapMb();
    const r = await run(applyCommand, file);
    expect(r.code).toBe(2);
    expect(r.out).toContain('NRC_E_FIELD_TOO_LARGE [huge.example.com]');
    expect(r.out.length).toBeLessThan(10_000);
    expect((tryReadJson(host.real('/var/lib/kubelet/config.json')) as { auths: object }).auths).toHaveProperty([GOOD.key]);
    expect(heapMb() - before).toBeLessThan(300);
  });

  it('a Secret over the 16 MiB limit is refused whole and nothing is written', async () => {
    const file = `${host.inputs}/huge.json`;
    fs.writeFileSync(file, JSON.stringify({ auths: { [GOOD.key]: { auth: GOOD.auth }, pad: { password: 'x'.repeat(17 * 2 ** 20) } } }));
    const r = await run(applyCommand, file);
    expect(r.code).toBe(1);
    expect(r.out).toContain('NRC_E_INPUT_TOO_LARGE');
    expect(fs.existsSync(host.real('/var/lib/node-registry-credentials'))).toBe(false);
  });

  it('100,000 entries apply, render masks them all, and memory stays bounded', async () => {
    const file = `${host.inputs}/many.json`;
    const auths: Record<string, { auth: string }> = {};
    for (let i = 0; i < 100_000; i++) auths[`r${i}.example.com`] = { auth: b64(`u:many-pw-${i}-Xx`) };
    fs.writeFileSync(file, JSON.stringify({ auths }));
    const before = heapMb();
    const rendered = await run(renderCommand, file);
    expect(rendered.code).toBe(0);
    expect(rendered.out).not.toContain('many-pw-');
    expect(rendered.out).not.toContain(b64('u:many-pw-99999-Xx'));
    const r = await run(applyCommand, file);
    expect(r.code).toBe(0);
    const written = tryReadJson(host.real('/var/lib/kubelet/config.json')) as { auths: Record<string, unknown> };
    expect(Object.keys(written.auths).length).toBe(100_000 + Object.keys(FOREIGN_AUTHS).length);
    // Loose: a few copies of a ~6 MB document, not a leak per entry.
    expect(heapMb() - before).toBeLessThan(1024);
  });

  it('registry config options for many hosts stay under the managed directories', () => {
    const hosts = Array.from({ length: 200 }, (_, i) => `h${i}.example.com:${1000 + i}`);
    const cfg = parseRegistryConfig(registryToml(hosts));
    expect(cfg.errors).toEqual([]);
    const creds = hosts.map((h): RegistryCredential => ({ key: h, host: h, username: 'u', password: 'p', source: 't' }));
    const p = planFor(creds, cfg.hosts);
    for (const op of p.operations) expectUnderManagedPaths(op.path, op.op);
    expect(p.operations.filter((o) => o.op === 'write' && o.path.endsWith('hosts.toml')).length).toBe(200);
  });
});
