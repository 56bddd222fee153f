// The shipped credential provider plugin (examples/credential-provider) as the kubelet runs it:
// registered from the shipped CredentialProviderConfig and exec'd by the kubelet's own plugin code
// (kubelet-oracle "provider" op, k8s.io/kubernetes v1.34.4), and run by hand. What a user notices:
// a new, rotated or removed credential counts at the next pull; a node with no state yet, a
// damaged state file or a bad request gets a valid empty answer that nothing caches, with one
// coded line on stderr and no secret in it; config.json keeps working meanwhile.
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli.ts';
import { ERROR_CODES } from '../../src/errors.ts';
import { PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { renderProviderDigest } from '../../src/plan/provider.ts';
import { parseFlags } from '../../src/commands/options.ts';
import { skipWithout } from '../support/go-tools.ts';
import { b64, creds, HostRoots } from '../support/kubelet-corpus.ts';
import { KubeletOracle, type ProviderAnswer } from '../support/oracle-client.ts';
import { cred, MemoryHost, PROVIDER_TARGETS } from '../support/plan-fixtures.ts';
import { InstalledPlugin, kubeletRequest, runShim } from '../support/provider-plugin.ts';
import { makeSampleHost, snapshotTree } from '../support/reliability-host.ts';

const KUBELET = '/var/lib/kubelet/config.json';
const SECRET = 'sekret-Pa55word';
const FOREIGN = { [KUBELET]: JSON.stringify({ auths: { 'quay.io': { auth: b64('f0:quay') } } }) };
const IMAGES = ['reg.example.com/app', 'quay.io/org/app'];

let oracle: KubeletOracle;
const roots = new HostRoots();
const plugins: InstalledPlugin[] = [];
const install = (o?: ConstructorParameters<typeof InstalledPlugin>[0]): InstalledPlugin => {
  const p = new InstalledPlugin(o);
  plugins.push(p);
  return p;
};
beforeAll(() => {
  oracle = new KubeletOracle();
});
afterAll(() => {
  oracle?.close();
  for (const p of plugins) p.cleanup();
  roots.cleanup();
});

/** The agent's provider-mode host for these credentials, over a node with a foreign quay.io entry. */
function agentHost(credentials: ReturnType<typeof cred>[]): MemoryHost {
  const host = new MemoryHost(FOREIGN);
  host.converge({ credentials, targets: PROVIDER_TARGETS });
  return host;
}

async function pull(plugin: InstalledPlugin, host: MemoryHost | undefined, images = IMAGES): Promise<ProviderAnswer> {
  const root = roots.materialize(host ? InstalledPlugin.withoutState(host.listing()) : FOREIGN);
  const answer = await oracle.provider(root, images, plugin);
  expect(answer.provider.registerError).toBeNull();
  return answer;
}

const tried = (a: ProviderAnswer): Record<string, string[]> => Object.fromEntries(Object.entries(a.images).map(([img, list]) => [img, creds(list)]));

/** The plugin's answer when it has nothing to serve, and the one line it says why. */
function expectEmptyAnswer(run: ReturnType<typeof runShim>, code: keyof typeof ERROR_CODES): void {
  expect(run.status).toBe(0);
  expect(JSON.parse(run.stdout)).toEqual({ kind: 'CredentialProviderResponse', apiVersion: 'credentialprovider.kubelet.k8s.io/v1', cacheKeyType: 'Global', cacheDuration: '0s', auth: {} });
  const lines = run.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^node-registry-credentials-provider: ${code}: `));
  expect(run.stderr).not.toContain(SECRET);
}

describe.skipIf(skipWithout(['kubelet-oracle']))('the credential provider plugin, run by the kubelet 1.34 plugin code', () => {
  it('a new node with no state yet: config.json still works, the empty answer is not cached, and the first state counts at the next pull', async () => {
    const plugin = install();
    plugin.serve({});
    const first = await pull(plugin, undefined);
    expect(tried(first)).toEqual({ 'reg.example.com/app': [], 'quay.io/org/app': ['f0:quay'] });
    // Asked at every pull, answered validly (nothing logged by the kubelet), no failure counted.
    expect(first.provider).toMatchObject({ execs: 2, errors: 0, log: [] });
    expect((await pull(plugin, undefined)).provider.execs).toBe(2);
    expectEmptyAnswer(runShim(kubeletRequest('reg.example.com/app'), { NRC_PROVIDER_STATE: plugin.state }), 'NRC_E_PROVIDER_STATE_MISSING');

    const host = agentHost([cred('reg.example.com', 'u', SECRET)]);
    plugin.serve(host.listing());
    expect(tried(await pull(plugin, host))).toEqual({ 'reg.example.com/app': [`u:${SECRET}`], 'quay.io/org/app': ['f0:quay'] });
  });

  it('a rotated, a new and a removed credential count at the next pull', async () => {
    const plugin = install();
    const host = new MemoryHost(FOREIGN);
    const step = async (credentials: ReturnType<typeof cred>[]): Promise<Record<string, string[]>> => {
      host.converge({ credentials, targets: PROVIDER_TARGETS });
      plugin.serve(host.listing());
      return tried(await pull(plugin, host, ['reg.example.com/app', 'ghcr.io/org/app']));
    };
    expect(await step([cred('reg.example.com', 'u', 'old')])).toEqual({ 'reg.example.com/app': ['u:old'], 'ghcr.io/org/app': [] });
    expect(await step([cred('reg.example.com', 'u', 'new'), cred('ghcr.io', 'g', 'g')])).toEqual({ 'reg.example.com/app': ['u:new'], 'ghcr.io/org/app': ['g:g'] });
    expect(await step([cred('ghcr.io', 'g', 'g')])).toEqual({ 'reg.example.com/app': [], 'ghcr.io/org/app': ['g:g'] });
  });

  it('(the oracle caches as the kubelet does: an answer with a cacheDuration hides the rotation, so "0s" is what makes it count)', async () => {
    const plugin = install();
    const serveCached = (host: MemoryHost): void => {
      const body = Buffer.from(host.text(PROVIDER_RESPONSE_PATH)!.replace('"cacheDuration":"0s"', '"cacheDuration":"5m"'));
      writeFileSync(plugin.state, body);
      writeFileSync(plugin.digest, renderProviderDigest(plugin.state, body));
    };
    const old = agentHost([cred('reg.example.com', 'u', 'old')]);
    serveCached(old);
    expect(tried(await pull(plugin, old))['reg.example.com/app']).toEqual(['u:old']);
    serveCached(agentHost([cred('reg.example.com', 'u', 'new')]));
    const later = await pull(plugin, old);
    expect(tried(later)['reg.example.com/app']).toEqual(['u:old']);
    expect(later.provider.execs).toBe(0);
  });

  it.each([
    ['truncated', 'NRC_E_PROVIDER_STATE_CORRUPT', (p: InstalledPlugin) => writeFileSync(p.state, readFileSync(p.state).subarray(0, 60))],
    ['its digest missing', 'NRC_E_PROVIDER_STATE_MISSING', (p: InstalledPlugin) => rmSync(p.digest)],
    ['a symlink to a valid answer', 'NRC_E_PROVIDER_STATE_UNSAFE', (p: InstalledPlugin) => {
      writeFileSync(`${p.state}.elsewhere`, readFileSync(p.state));
      rmSync(p.state);
      symlinkSync(`${p.state}.elsewhere`, p.state);
    }],
    ['a directory', 'NRC_E_PROVIDER_STATE_UNSAFE', (p: InstalledPlugin) => {
      rmSync(p.state);
      mkdirSync(p.state);
    }],
  ] as const)('a state file %s: a valid empty answer, one coded line, and config.json still served', async (_what, code, damage) => {
    const plugin = install();
    const host = agentHost([cred('reg.example.com', 'u', SECRET)]);
    plugin.serve(host.listing());
    damage(plugin);
    const answer = await pull(plugin, host);
    expect(tried(answer)).toEqual({ 'reg.example.com/app': [], 'quay.io/org/app': ['f0:quay'] });
    expect(answer.provider).toMatchObject({ execs: 2, errors: 0, log: [] });
    expectEmptyAnswer(runShim(kubeletRequest('reg.example.com/app'), { NRC_PROVIDER_STATE: plugin.state }), code);
    // The agent's next apply (drift watch or resync) puts it right: served again at the next pull.
    plugin.serve(host.listing());
    expect(tried(await pull(plugin, host))['reg.example.com/app']).toEqual([`u:${SECRET}`]);
  });

  it('a state file its reader may not read (a kubelet not running as root): a valid empty answer and one coded line', () => {
    const plugin = install();
    plugin.serve(agentHost([cred('reg.example.com', 'u', SECRET)]).listing());
    chmodSync(plugin.dir, 0o755);
    chmodSync(join(plugin.dir, 'state'), 0o755);
    expectEmptyAnswer(runShim(kubeletRequest('reg.example.com/app'), { NRC_PROVIDER_STATE: plugin.state }, 65534), 'NRC_E_PROVIDER_STATE_UNREADABLE');
  });

  it.each([
    ['another apiVersion', kubeletRequest('reg.example.com/app', 'credentialprovider.kubelet.k8s.io/v1beta1')],
    ['another kind', JSON.stringify({ kind: 'CredentialProviderResponse', apiVersion: 'credentialprovider.kubelet.k8s.io/v1', image: 'x' })],
    ['malformed JSON', kubeletRequest('reg.example.com/app').slice(0, -1)],
    ['nothing', ''],
  ])('a request with %s: a valid empty answer and one coded line', (_what, request) => {
    const plugin = install();
    plugin.serve(agentHost([cred('reg.example.com', 'u', SECRET)]).listing());
    expectEmptyAnswer(runShim(request, { NRC_PROVIDER_STATE: plugin.state }), 'NRC_E_PROVIDER_REQUEST_INVALID');
  });

  it('prints exactly the state file for a request as the kubelet writes it (also pretty-printed), and nothing on stderr', () => {
    const plugin = install();
    plugin.serve(agentHost([cred('reg.example.com', 'u', SECRET)]).listing());
    for (const request of [kubeletRequest('reg.example.com/app'), JSON.stringify(JSON.parse(kubeletRequest('nginx')), null, 2)]) {
      const run = runShim(request, { NRC_PROVIDER_STATE: plugin.state });
      expect([run.status, run.stderr]).toEqual([0, '']);
      expect(run.stdout).toBe(readFileSync(plugin.state, 'utf8'));
    }
  });

  it('a CredentialProviderConfig with apiVersion v1beta1: the kubelet refuses the v1 answer, nothing is cached', async () => {
    const plugin = install({ edit: (p) => (p['apiVersion'] = 'credentialprovider.kubelet.k8s.io/v1beta1') });
    const host = agentHost([cred('reg.example.com', 'u', SECRET)]);
    plugin.serve(host.listing());
    const answer = await pull(plugin, host, ['reg.example.com/app']);
    expect(tried(answer)['reg.example.com/app']).toEqual([]);
    expect(answer.provider.log.join('\n')).toContain('apiVersion from credential plugin response did not match');
    expect(answer.provider.log.join('\n')).not.toContain(SECRET);
  });

  it('the kubelet does not start when the executable is missing from its bin dir', async () => {
    const plugin = install();
    rmSync(join(plugin.binDir, 'node-registry-credentials-provider'));
    const answer = await oracle.provider(roots.materialize(FOREIGN), IMAGES, plugin);
    expect(answer.provider.registerError).toMatch(/plugin binary executable .*did not exist/);
  });

  it('the shipped matchImages cover hosts of 1 to 6 labels on the default port and on :5000, and no other port', async () => {
    const plugin = install();
    plugin.serve(agentHost([cred('reg.example.com', 'u', 'p')]).listing());
    const hosts = ['localhost', 'quay.io', 'reg.example.com', '10.0.0.7', 'a.privatelink.azurecr.io', '123456789012.dkr.ecr.us-east-1.amazonaws.com', '[fd00::1]'];
    const covered = [...hosts.map((h) => `${h}/app`), ...hosts.map((h) => `${h}:5000/app`), 'nginx'];
    expect((await pull(plugin, undefined, covered)).provider).toMatchObject({ execs: covered.length, errors: 0 });
    expect((await pull(plugin, undefined, ['reg.example.com:8443/app', 'a.b.c.d.e.f.g/app'])).provider.execs).toBe(0);
  });
});

describe.skipIf(skipWithout(['kubelet-oracle']))('apply --kubelet-credentials provider on a real host root', () => {
  it('writes what the plugin serves (mode 0600) through NRC_KUBELET_CREDENTIALS, switches back, and cleanup restores the node byte for byte', async () => {
    const node = makeSampleHost();
    try {
      const before = snapshotTree(node.root);
      const secret = join(node.inputs, 'dockerconfig.json');
      writeFileSync(secret, JSON.stringify({ auths: { 'reg.example.com': { auth: b64(`u:${SECRET}`) } } }));
      const io = { out: (): void => {}, err: (t: string): void => void errors.push(t) };
      const errors: string[] = [];
      const run = async (command: 'apply' | 'cleanup', env: Record<string, string> = {}): Promise<number> =>
        COMMANDS[command]!.run(parseFlags(['--host-root', node.root, ...(command === 'apply' ? ['--dockerconfig', secret] : [])], COMMANDS[command]!.flags, env), io);

      expect(await run('apply', { NRC_KUBELET_CREDENTIALS: 'provider' })).toBe(0);
      const state = node.real(PROVIDER_RESPONSE_PATH);
      const tree = snapshotTree(node.root);
      expect([tree[PROVIDER_RESPONSE_PATH.slice(1)]?.mode, tree[`${PROVIDER_RESPONSE_PATH.slice(1)}.sha256`]?.mode]).toEqual([0o600, 0o600]);
      const run1 = runShim(kubeletRequest('reg.example.com/app'), { NRC_PROVIDER_STATE: state });
      expect([run1.stderr, run1.stdout]).toEqual(['', readFileSync(state, 'utf8')]);
      const plugin = install({ state });
      const answer = await oracle.provider(node.root, ['reg.example.com/app', 'foreign.example.com/x'], plugin);
      expect(tried(answer)).toEqual({ 'reg.example.com/app': [`u:${SECRET}`], 'foreign.example.com/x': ['someone:else'] });
      expect(readFileSync(node.real(KUBELET), 'utf8')).not.toContain(b64(`u:${SECRET}`));

      expect(await run('apply')).toBe(0);
      expect(snapshotTree(node.root)[PROVIDER_RESPONSE_PATH.slice(1)]).toBeUndefined();
      expect(await run('cleanup')).toBe(0);
      expect(snapshotTree(node.root)).toEqual(before);
      expect(errors).toEqual([]);
    } finally {
      node.remove();
    }
  });
});
