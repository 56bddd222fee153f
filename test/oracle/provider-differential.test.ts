// Provider mode against config-json mode, both read by the kubelet's own code (kubelet-oracle on
// k8s.io/kubernetes v1.34.4): config.json through its keyring, and in provider mode the
// credential provider plugin through its plugin path (the shipped CredentialProviderConfig
// registered as the kubelet does at start, the shipped executable exec'd per lookup, config.json
// tried first, the plugin's answer after it). Over generated Secrets and foreign node files, for
// every image: the credentials the kubelet tries in provider mode are exactly, in order, those it
// tries in config-json mode; config.json holds none of the agent's; the plugin never fails.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDockerConfig } from '../../src/sources/dockerconfig.ts';
import { skipWithout } from '../support/go-tools.ts';
import { b64, creds, entries, HostRoots, HOSTS, IMAGES } from '../support/kubelet-corpus.ts';
import { KubeletOracle } from '../support/oracle-client.ts';
import { MemoryHost, PROVIDER_TARGETS, TARGETS } from '../support/plan-fixtures.ts';
import { InstalledPlugin } from '../support/provider-plugin.ts';

const KUBELET = '/var/lib/kubelet/config.json';
const HOME_DOCKER = '/root/.docker/config.json';
// Keys only the provider's rules have to get right: reg.example.co* covers the agent's
// reg.example.com AND reg.example.co, and sorts after the latter (a chain of moves).
const PROVIDER_HOSTS = [...HOSTS, 'reg.example.co', 'reg.example.co*'];
const PROVIDER_IMAGES = [...IMAGES, 'reg.example.co/app'];

let oracle: KubeletOracle;
let plugin: InstalledPlugin;
const roots = new HostRoots();
let cases = 0;
let pluginExecs = 0;
beforeAll(() => {
  oracle = new KubeletOracle();
  plugin = new InstalledPlugin();
});
afterAll(() => {
  oracle?.close();
  plugin?.cleanup();
  roots.cleanup();
  if (cases > 0) console.log(`provider differential: ${cases} cases, ${cases * PROVIDER_IMAGES.length} images, ${pluginExecs} plugin executions`);
});

async function check(secret: Record<string, unknown>, before: Record<string, string>): Promise<void> {
  const snap = parseDockerConfig(JSON.stringify({ auths: secret }), 'secret', 'config.json');
  const credentials = [...snap.credentials];
  const asConfigJson = new MemoryHost({ '/var/lib/kubelet': 'dir', ...before });
  asConfigJson.converge({ credentials, targets: TARGETS });
  const asProvider = new MemoryHost({ '/var/lib/kubelet': 'dir', ...before });
  asProvider.converge({ credentials, targets: PROVIDER_TARGETS });
  plugin.serve(asProvider.listing());
  const providerRoot = roots.materialize(InstalledPlugin.withoutState(asProvider.listing()));

  const [want, fromConfigJson, got] = await Promise.all([
    oracle.node(roots.materialize(asConfigJson.listing()), PROVIDER_IMAGES),
    oracle.node(providerRoot, PROVIDER_IMAGES),
    oracle.provider(providerRoot, PROVIDER_IMAGES, plugin),
  ]);
  cases++;
  pluginExecs += got.provider.execs;
  // Every image is one the shipped matchImages cover: the kubelet asked the plugin each time,
  // and took its answer (no failed exec, nothing logged about a bad response).
  expect(got.provider).toEqual({ registerError: null, execs: PROVIDER_IMAGES.length - Object.keys(got.imageErrors).length, errors: 0, log: [] });
  if (credentials.length > 0) expect(got.file, "the kubelet reads its own config.json, not the tools' file").toBe(KUBELET);
  for (const image of PROVIDER_IMAGES) {
    expect(creds(got.images[image] ?? []), `${image}: what the kubelet tries in provider mode`).toEqual(creds(want.images[image] ?? []));
    // The Secret's users are s0, s1, ...; the node's f0, f1, ...
    expect(creds(fromConfigJson.images[image] ?? []).filter((c) => c.startsWith('s')), `${image}: none of the agent's credentials in config.json`).toEqual([]);
  }
}

describe.skipIf(skipWithout(['kubelet-oracle']))('provider mode: the kubelet tries what config-json mode gives it (kubelet 1.34 plugin path)', () => {
  it('for generated Secrets over a node with foreign entries (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(entries('s', PROVIDER_HOSTS), entries('f', PROVIDER_HOSTS), fc.nat(2), async (secret, foreign, where) => {
        const before = where === 2 ? {} : { [where === 0 ? KUBELET : HOME_DOCKER]: JSON.stringify({ auths: foreign }) };
        await check(secret, before);
      }),
      { numRuns: Number(process.env['NRC_PROVIDER_RUNS'] ?? 150) },
    );
  });

  it.each([
    ['a foreign wildcard the kubelet tries after the agent\'s key', { 'reg.example.com': { auth: b64('s0:p') } }, { '*.example.com': { auth: b64('f0:w') }, 'quay.io': { auth: b64('f1:q') } }],
    ['a chain: reg.example.co* follows the agent, reg.example.co follows it', { 'reg.example.com': { auth: b64('s0:p') } }, { 'reg.example.co': { auth: b64('f0:a') }, 'reg.example.co*': { auth: b64('f1:b') } }],
    ['a foreign Docker Hub fallback key and an agent key under docker.io', { 'docker.io/myorg': { auth: b64('s0:p') } }, { 'https://index.docker.io/v1/': { auth: b64('f0:h') } }],
    ['a foreign *.io hiding the agent\'s fallback key', { 'https://index.docker.io/v1/': { auth: b64('s0:h') } }, { '*.io': { auth: b64('f0:w') }, 'quay.io': { auth: b64('f1:q') } }],
    ['a foreign key the kubelet tries before the agent\'s in both modes', { '*.example.com': { auth: b64('s0:w') } }, { 'reg.example.com': { auth: b64('f0:r') } }],
    ['the same key on both sides', { 'reg.example.com:5000': { auth: b64('s0:new') } }, { 'https://reg.example.com:5000/v2/': { auth: b64('f0:old') } }],
  ])('%s', async (_name, secret, foreign) => {
    await check(secret, { [KUBELET]: JSON.stringify({ auths: foreign }) });
  });
});
