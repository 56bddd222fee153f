// The agent's hosts.toml read by containerd's own resolver code (testenv oracles: containerd
// 1.6.20 as its CRI plugin sets it up, 2.2.9 in both its transfer and local CRI pull modes):
// every host containerd will try for a configured registry carries the CA, skip_verify and the
// header the agent meant, there is exactly one such host, and containerd accepts the file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithout } from '../support/go-tools.ts';
import { ContainerdOracle, type ContainerdAnswer } from '../support/oracle-client.ts';
import { b64, cred, MemoryHost, options, TARGETS } from '../support/plan-fixtures.ts';

const HOSTS_DIR = '/etc/containerd/certs.d';
const REGISTRIES = ['reg.example.com', 'reg.example.com:5000', '127.0.0.1:5000', 'localhost:5000', 'docker.io', '10.0.0.7', 'registry.example.com:443', '[fd00::1]:5000', '[fd00::2]'];
const roots: string[] = [];
let ca = '';
let oracles: { name: string; oracle: ContainerdOracle; mode?: 'cri' | 'transfer' | 'local' }[] = [];

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'nrc-ca-'));
  roots.push(dir);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '2', '-subj', '/O=nrc/CN=NRC Test CA'], { stdio: 'ignore' });
  ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const c1 = new ContainerdOracle('containerd1-oracle');
  const c2 = new ContainerdOracle('containerd2-oracle');
  oracles = [
    { name: 'containerd 1.6 (CRI)', oracle: c1, mode: 'cri' },
    { name: 'containerd 2.2 (CRI, transfer service)', oracle: c2, mode: 'transfer' },
    { name: 'containerd 2.2 (CRI, local pull)', oracle: c2, mode: 'local' },
  ];
});
afterAll(() => {
  for (const o of oracles) o.oracle.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function materialize(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'nrc-hosts-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  mkdirSync(join(root, HOSTS_DIR), { recursive: true });
  return root;
}

interface Wanted {
  readonly registry: string;
  readonly ca: boolean;
  readonly skipVerify: boolean;
  readonly header: boolean;
}

function expectMeant(answer: ContainerdAnswer, w: Wanted, where: string): void {
  expect(answer.error, where).toBeNull();
  expect(answer.logs.filter((l) => l.level === 'error'), where).toEqual([]);
  expect(answer.hosts, `${where}: exactly one host`).toHaveLength(1);
  const h = answer.hosts[0]!;
  expect(h.host, where).toBe(w.registry === 'docker.io' ? 'registry-1.docker.io' : w.registry);
  expect(h.scheme, where).toBe('https');
  expect(h.capabilities.filter((c) => c !== 'referrers'), where).toEqual(['pull', 'resolve', 'push']);
  expect(h.caSubjects, where).toEqual(w.ca ? ['CN=NRC Test CA,O=nrc'] : []);
  expect(h.skipVerify, where).toBe(w.skipVerify);
  expect(h.header['Authorization'] ?? [], where).toEqual(w.header ? [`Basic ${b64('user:secret')}`] : []);
}

async function check(wanted: readonly Wanted[], before: Record<string, string> = {}): Promise<void> {
  const host = new MemoryHost(before);
  const p = host.converge({
    credentials: wanted.map((w) => cred(w.registry, 'user', 'secret')),
    hostOptions: wanted.map((w) => options(w.registry, { ...(w.ca ? { ca } : {}), skipVerify: w.skipVerify, authHeader: w.header && w.registry !== 'docker.io' })),
    targets: { ...TARGETS, certsDirs: [] },
  });
  const root = materialize(host.listing());
  const written = wanted.filter((w) => host.text(`${HOSTS_DIR}/${w.registry}/hosts.toml`) !== undefined);
  // Docker Hub never gets a Basic header (it uses Bearer tokens): header-only means no file.
  expect(p.errors).toEqual([]);
  expect(written).toEqual(wanted.filter((w) => w.ca || w.skipVerify || (w.header && w.registry !== 'docker.io')));
  for (const { name, oracle, mode } of oracles) {
    const answers = await oracle.hosts(join(root, HOSTS_DIR), written.map((w) => w.registry), mode);
    for (const w of written) {
      expect(answers[w.registry]!.dir, `${name} ${w.registry}: reads the agent's directory`).toBe(join(root, HOSTS_DIR, w.registry));
      expectMeant(answers[w.registry]!, { ...w, header: w.header && w.registry !== 'docker.io' }, `${name} ${w.registry}`);
    }
  }
}

describe.skipIf(skipWithout(['containerd1-oracle', 'containerd2-oracle']))('containerd reads the hosts.toml the agent meant', () => {
  it('for generated registries and host options (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.record({ registry: fc.constantFrom(...REGISTRIES), ca: fc.boolean(), skipVerify: fc.boolean(), header: fc.boolean() }), { selector: (w) => w.registry, minLength: 1, maxLength: 4 }),
        async (wanted) => {
          await check(wanted.filter((w) => w.ca || w.skipVerify || w.header));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a missing tag on a CA-only registry meets the CA: no second host without it', async () => {
    await check([{ registry: '127.0.0.1:5000', ca: true, skipVerify: false, header: false }]);
  });

  it('containerd 2.2 pulls (transfer service) read no directory of a colon list, which is why the agent warns about one', async () => {
    const host = new MemoryHost();
    host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], hostOptions: [options('reg.example.com', { ca })], targets: { ...TARGETS, certsDirs: [] } });
    const root = materialize(host.listing());
    const list = `${join(root, HOSTS_DIR)}:${join(root, '/etc/docker/certs.d')}`;
    const [transfer, local, v16] = [oracles[1]!, oracles[2]!, oracles[0]!];
    expect((await transfer.oracle.hosts(list, ['reg.example.com'], 'transfer'))['reg.example.com']!.dir).toBeNull();
    expect((await local.oracle.hosts(list, ['reg.example.com'], 'local'))['reg.example.com']!.dir).toBe(join(root, HOSTS_DIR, 'reg.example.com'));
    expect((await v16.oracle.hosts(list, ['reg.example.com'], 'cri'))['reg.example.com']!.dir).toBe(join(root, HOSTS_DIR, 'reg.example.com'));
  });

  it('reports a _default directory that the per-host directory bypasses', async () => {
    const mirror = { [`${HOSTS_DIR}/_default/hosts.toml`]: 'server = "https://mirror.example.com"\n[host."https://mirror.example.com"]\n  capabilities = ["pull", "resolve"]\n' };
    const host = new MemoryHost(mirror);
    const p = host.converge({ credentials: [cred('reg.example.com', 'u', 'p')], hostOptions: [options('reg.example.com', { ca })], targets: { ...TARGETS, certsDirs: [] } });
    expect(p.errors.map((e) => e.code)).toEqual(['NRC_E_CONTAINERD_DEFAULT_BYPASSED']);
    const root = materialize(host.listing());
    // Before the agent, containerd used _default for this registry: the oracle shows the switch.
    for (const { oracle, mode } of oracles) {
      const answers = await oracle.hosts(join(root, HOSTS_DIR), ['reg.example.com', 'other.example.com'], mode);
      expect(answers['reg.example.com']!.dir).toBe(join(root, HOSTS_DIR, 'reg.example.com'));
      expect(answers['other.example.com']!.dir).toBe(join(root, HOSTS_DIR, '_default'));
    }
  });
});
