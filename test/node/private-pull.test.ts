// The product's promise on a real node: the DaemonSet, applied as shipped (kubectl apply -k of
// daemonset/ plus an overlay that only sets the image, the node's local paths and the registry
// config), makes a pod with NO imagePullSecrets pull a private image. A real kubelet reads the
// agent's config.json and passes the credential through CRI; containerd reads the agent's
// hosts.toml for the private CA. One cluster each (NRC_NODE_CLUSTERS), side by side: kubelet 1.34
// on containerd 1.6 and on 2.2, and the newest minor, 1.37 (its own 1.37 control plane and
// controllers), on containerd 2.2. Two modes, one scenario each, on every cluster:
// - provider mode (--kubelet-credentials provider): the node boots as a provider-mode bootstrap
//   starts its kubelet (the shipped plugin and config); install, rotation, an added and a removed
//   registry each count at the next pull, within seconds, with the kubelet never restarted;
// - config.json mode: the kubelet caches its docker config for 5 minutes (pkg/credentialprovider
//   CachingDockerConfigProvider), so rotation and removal wait for that, as an operator's would.
// Nothing restarts a kubelet: each node's kubelet runs from its boot to the end of its scenario.
// docs/e2e.md and docs/kubernetes.md say so.
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane, kubectl as adminKubectl, type KubeMinor, kustomize, NEWEST_KUBE } from '../support/control-plane.ts';
import type { Pki } from '../support/e2e-pki.ts';
import { diffSnapshots } from '../support/e2e-hostroot.ts';
import { startRegistry, type Registry } from '../support/e2e-registry.ts';
import { skipWithout } from '../support/go-tools.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { ANNOTATION_EFFECTIVE, parseEffective } from '../../src/report/node-annotations.ts';
import { agentHostFiles, agentOverlay, checkKubeletRuntime, clusterTools, containerdPulls, Controllers, dockerConfigSecret, eventually, KubeNode, kubeletAuths, nodeSuiteWork, pulledRecords, providerAuths, pullWithPod, type Kubectl, type PullOutcome, removeNodeSuiteWork, routeServiceVip, routeVip, type Runtime } from '../support/node.ts';

const execFileP = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** CachingDockerConfigProvider's lifetime, plus a margin for the kubelet's next read (config.json mode). */
const KUBELET_CACHE_MS = 5 * 60_000 + 15_000;
const NS = 'okteto';
/**
 * NRC_NODE_MUTATE=no-config-json | no-hosts-toml: the agent writes the kubelet's file elsewhere, or
 * no hosts.toml, to show that the install step then fails; =broker-no-aws: the broker keeps AWS's
 * real endpoints (unreachable here), to show that the broker step then fails;
 * =provider-cache-5m: the provider node's plugin answers with cacheDuration "5m" instead of the
 * agent's "0s", to show that the provider scenario's rotation step then fails (docs/e2e.md). Never set in CI.
 */
const MUTATION: Record<string, string> =
  process.env.NRC_NODE_MUTATE === 'no-config-json' ? { NRC_KUBELET_ROOT_DIR: '/var/lib/node-registry-credentials/elsewhere' } : process.env.NRC_NODE_MUTATE === 'no-hosts-toml' ? { NRC_NO_CONTAINERD: 'true' } : {};
/** Where the broker's pods reach the fake AWS (DNAT to its loopback port). */
const AWS_VIP = '10.0.0.2';
const BROKER_SA = 'node-registry-credentials-broker';
/** How the docs tell a Kustomize operator to turn provider mode on (docs/kubernetes.md#credential-provider-mode). */
const PROVIDER_VARIANT = 'daemonset/variants/provider';
const PROVIDER_ANSWER_CACHE = process.env.NRC_NODE_MUTATE === 'provider-cache-5m' ? '5m' : undefined;
/** One cluster: a kubelet minor (its control plane and controllers the same) on a runtime. */
interface Cluster {
  readonly kube: KubeMinor;
  readonly runtime: Runtime;
  /** Distinct per cluster on this machine (kubelet ports, pod bridge, subnet); 3 is helm's, 5–15 new-node's, the bench's and scoped.test.ts's. */
  readonly index: number;
}
const CLUSTER_INDEX: Record<string, number> = { '1.34/containerd-1.6': 1, '1.34/containerd-2.2': 2, [`${NEWEST_KUBE}/containerd-2.2`]: 4 };
/**
 * NRC_NODE_CLUSTERS=<minor>/<runtime>,... (default: all three); NRC_NODE_RUNTIMES=<runtime>,...
 * (older: those runtimes on 1.34 only).
 */
const CLUSTERS: readonly Cluster[] = (
  process.env.NRC_NODE_CLUSTERS ?? (process.env.NRC_NODE_RUNTIMES ? process.env.NRC_NODE_RUNTIMES.split(',').map((r) => `1.34/${r}`).join(',') : `1.34/containerd-2.2,1.34/containerd-1.6,${NEWEST_KUBE}/containerd-2.2`)
).split(',').map((spec) => {
  const [kube, runtime] = spec.split('/') as [KubeMinor, Runtime];
  const index = CLUSTER_INDEX[spec];
  if (index === undefined) throw new Error(`NRC_NODE_CLUSTERS: unknown cluster ${spec} (known: ${Object.keys(CLUSTER_INDEX).join(', ')})`);
  checkKubeletRuntime(kube, runtime);
  return { kube, runtime, index };
});
const clusterName = (c: Cluster): string => `${c.kube} ${c.runtime}`;

let work: string;
let pki: Pki;
let agentArchive: string;
let pauseArchive: string;

function opaqueSecret(name: string, data: Record<string, string>): object {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, type: 'Opaque', stringData: data };
}

function registryResource(name: string, spec: unknown): object {
  return { apiVersion: 'admin.okteto.com/v1', kind: 'Registry', metadata: { name, namespace: NS }, spec };
}

const waitFor = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> => eventually(what, fn, timeoutMs);

/** Deletes the installed agent (`installed`: its manifests), runs the cleanup variant, and checks that the host is back byte for byte. */
async function uninstall(kubectl: Kubectl, node: KubeNode, installed: string, toml: string, before: Awaited<ReturnType<typeof agentHostFiles>>): Promise<void> {
  const records = await pulledRecords(node);
  await kubectl(['delete', '-f', '-', '--wait=true'], installed);
  const cleanup = await agentOverlay(node, toml, 'daemonset/variants/cleanup');
  await kubectl(['apply', '-f', '-'], cleanup);
  await waitFor('cleanup ran on the node', async () => {
    const ready = await kubectl(['-n', NS, 'get', 'ds', 'node-registry-credentials-cleanup', '-o', 'jsonpath={.status.numberReady}']);
    return ready === '1' ? true : undefined;
  }, 180_000);
  await kubectl(['delete', '-f', '-', '--wait=true'], cleanup);
  expect(diffSnapshots(before, await agentHostFiles(node))).toEqual([]);
  // The kubelet's own pull records (1.35+) are not the agent's to remove.
  expect(await pulledRecords(node)).toEqual(records);
}

/**
 * What the kubelet recorded for an image the agent's credential pulled (KEP-2535
 * KubeletEnsureSecretPulledImages, beta and on from 1.35): the agent's credentials, config.json
 * or provider plugin (no service-account token), are the node's own, open to every pod
 * (docs/reference.md). 1.34 keeps no records (alpha, off).
 */
async function expectNodeWideRecord(node: KubeNode, image: string): Promise<void> {
  const records = await pulledRecords(node);
  if (node.kube === '1.34') expect(records, 'kubelet 1.34 keeps no pull records').toBeUndefined();
  else expect(records?.[image.replace(/:[^:/]+$/, '')], `kubelet ${node.kubeletVersion}: the pull record of ${image}`).toEqual({ nodePodsAccessible: true });
}

/** The kubelet's view of the agent's file: what holds the registry's key. */
async function kubeletFileHas(node: KubeNode, key: string, user: string | undefined): Promise<boolean> {
  const auth = (await kubeletAuths(node))[key];
  if (user === undefined) return auth === undefined;
  return auth !== undefined && auth.startsWith(`${user}:`);
}

describe.skipIf(skipWithout([...new Set(CLUSTERS.flatMap((c) => clusterTools(c.kube)))]))('a real node pulls a private image with no imagePullSecrets', () => {
  beforeAll(async () => {
    ({ work, pki, agentArchive, pauseArchive } = await nodeSuiteWork('nrc-node-e2e-'));
  }, 1_200_000);

  afterAll(() => removeNodeSuiteWork(work), 120_000);

  /**
   * Provider mode on a node booted with the plugin (KubeNode's credentialProvider: the shipped
   * executable and config, as a bootstrap installs them). One cluster per runtime, side by side.
   * Each change is followed by ONE new pod once the agent wrote its state: that very pull must
   * have the new outcome (no retry, no wait for a cache), and the kubelet must have asked the plugin.
   */
  const providerScenario = async ({ kube, runtime, index }: Cluster): Promise<void> => {
    const dir = join(work, `provider-${index}`);
    const log = (m: string): void => void process.stderr.write(`[node ${kube} ${runtime} provider] ${m}\n`);
    const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false, kube });
    const controllers = new Controllers();
    const registry: Registry = await startRegistry(join(dir, 'registry'), pki, { alice: 'first-password' });
    await cp.start();
    const kubectl = (args: readonly string[], input?: string): Promise<string> => adminKubectl(cp.info, args, input);
    const registryPort = Number(registry.host.split(':')[1]);
    const node = new KubeNode(cp.info, {
      name: `node-${index}`, runtime, kube, dir, images: [pauseArchive, agentArchive], podSubnet: `10.244.${index}.0/24`, index,
      credentialProvider: { ports: [registryPort], answerCacheDuration: PROVIDER_ANSWER_CACHE },
    });
    let unroute: (() => Promise<void>) | undefined;
    const asked = async (): Promise<number> => (await stat(node.providerAskedPath).catch(() => undefined))?.mtimeMs ?? 0;
    /** From a change (`changedAt`, the Secret's apply) to the next pull: the agent's state first, then one pod. */
    const nextPull = async (step: string, changedAt: number, stateSays: (auths: Record<string, string>) => boolean, image: string, want: PullOutcome['phase']): Promise<PullOutcome> => {
      await waitFor(`${step}: the agent writes its provider state`, async () => (stateSays((await providerAuths(node)) ?? {}) ? true : undefined), 180_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await node.diagnostics()}`);
      });
      const writtenMs = Date.now() - changedAt;
      const askedBefore = await asked();
      const outcome = await pullWithPod(kubectl, node, image);
      const ms = Date.now() - changedAt;
      log(`${step}: state written ${(writtenMs / 1000).toFixed(1)} s, next pull ${outcome.phase} ${(ms / 1000).toFixed(1)} s after the Secret change`);
      expect(outcome.phase, `${step}: the first pull after the agent's write: ${outcome.events}`).toBe(want);
      expect(await asked(), `${step}: the kubelet ran the plugin (NRC_PROVIDER_ASKED touched)`).toBeGreaterThan(askedBefore);
      return outcome;
    };
    try {
      await kubectl(['apply', '-f', '-'], [`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n`, await kustomize('daemonset/crd')].join('\n---\n'));
      await controllers.start(cp.info);
      unroute = await routeServiceVip(cp.info, index);
      await execFileP('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', registry.caDir, '--dest-creds', 'alice:first-password', `docker-archive:${pauseArchive}`, `docker://${registry.host}/private/app:v1`]);
      const image = `${registry.host}/private/app:v1`;
      // The same registry under a second name (its certificate is also for localhost): the added one.
      const added = `localhost:${registryPort}`;
      const addedImage = `${added}/private/app:v1`;
      log('node boot: the kubelet starts with --image-credential-provider-config/-bin-dir (the shipped plugin and config)');
      await node.start();
      const bootPid = node.kubeletPid;
      const before = await agentHostFiles(node);

      log('negative control: without the agent the pod cannot pull, although the kubelet asks the plugin');
      const denied = await pullWithPod(kubectl, node, image);
      expect(denied.phase).toBe('Failed');
      // 1.6 without a hosts.toml speaks plain HTTP to a loopback registry (400); 2.2 gets a 401.
      expect(denied.events).toMatch(/Failed to pull image .*(401 Unauthorized|400 Bad Request|no basic auth credentials)/);
      expect(await asked(), 'the kubelet ran the plugin (an empty answer: no state yet)').toBeGreaterThan(0);

      log('install: daemonset/variants/provider as shipped (NRC_KUBELET_CREDENTIALS=provider), and the Secret');
      const toml = `[registry."${registry.host}"]\nca = """${pki.caPem}"""\n[registry."${added}"]\nca = """${pki.caPem}"""\n`;
      await kubectl(['apply', '-f', '-'], await agentOverlay(node, toml, PROVIDER_VARIANT, MUTATION));
      let changedAt = Date.now();
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'alice', password: 'first-password' } }));
      const pulled = await nextPull('install', changedAt, (a) => a[registry.host] === 'alice:first-password', image, 'Running');
      expect(pulled.events).toMatch(/Successfully pulled image/);
      await expectNodeWideRecord(node, image);
      expect(await readFile(join(node.hostsDir, registry.host, 'hosts.toml'), 'utf8')).toContain(`server = "https://${registry.host}"`);
      // Provider mode: config.json holds none of the agent's entries (the kubelet would try them first).
      expect(await kubeletAuths(node)).toEqual({});

      log('rotation: the registry accepts only the new password, the Secret carries it');
      await registry.setUsers({ bob: 'second-password' });
      changedAt = Date.now();
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'bob', password: 'second-password' } }));
      await nextPull('rotation', changedAt, (a) => a[registry.host] === 'bob:second-password', image, 'Running');

      log("an image a pod pulled with its imagePullSecret, then a pod without it (IfNotPresent)");
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [added]: { username: 'bob', password: 'second-password' } }, 'default', 'app-pull'));
      const withSecret = await pullWithPod(kubectl, node, addedImage, 60_000, 1000, { policy: 'IfNotPresent', pullSecret: 'app-pull' });
      expect(withSecret.phase, withSecret.events).toBe('Running');
      const pullsBefore = (await containerdPulls(node, addedImage)).length;
      const reused = await pullWithPod(kubectl, node, addedImage, 60_000, 1000, { policy: 'IfNotPresent' });
      if (node.kube === '1.34') {
        expect(reused.phase, `kubelet 1.34 runs it from the image store: ${reused.events}`).toBe('Running');
        expect((await containerdPulls(node, addedImage)).length, 'kubelet 1.34: no new pull').toBe(pullsBefore);
      } else {
        // KEP-2535: recorded as pulled with that Secret, so the kubelet pulls again with what this
        // pod has: the node's credentials, which do not name the registry yet (docs/reference.md).
        expect(reused.phase, `kubelet ${node.kubeletVersion} re-verifies the pull: ${reused.events}`).toBe('Failed');
        expect(reused.events).toMatch(/Failed to pull image .*(401 Unauthorized|no basic auth credentials)/);
      }

      log('a registry added: before, its image does not pull; then the Secret names it');
      const notYet = await pullWithPod(kubectl, node, addedImage);
      expect(notYet.phase, notYet.events).toBe('Failed');
      changedAt = Date.now();
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'bob', password: 'second-password' }, [added]: { username: 'bob', password: 'second-password' } }));
      await nextPull('registry added', changedAt, (a) => a[added] === 'bob:second-password', addedImage, 'Running');

      log('a registry removed: the Secret no longer names it');
      changedAt = Date.now();
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [added]: { username: 'bob', password: 'second-password' } }));
      const removed = await nextPull('registry removed', changedAt, (a) => a[registry.host] === undefined && a[added] !== undefined, image, 'Failed');
      expect(removed.events).toMatch(/Failed to pull image .*(401 Unauthorized|no basic auth credentials)/);
      expect(node.kubeletPid, 'the kubelet ran from boot on, never restarted').toBe(bootPid);

      log('uninstall: delete the agent, run the cleanup variant');
      await uninstall(kubectl, node, await agentOverlay(node, toml, PROVIDER_VARIANT, MUTATION), toml, before);
      // The state the plugin served is gone too: the plugin answers empty again.
      expect(await providerAuths(node)).toBeUndefined();
      expect(node.kubeletPid, 'the kubelet ran from boot to the end, never restarted').toBe(bootPid);
    } finally {
      await node.stop();
      await unroute?.();
      await controllers.stop();
      await cp.stop();
      await registry.stop();
    }
  };

  /** One cluster per runtime (its own control plane, controllers and node), so both run side by side. */
  const scenario = async ({ kube, runtime, index }: Cluster): Promise<void> => {
    const dir = join(work, `node-${index}`);
    const log = (m: string): void => void process.stderr.write(`[node ${kube} ${runtime} config.json] ${m}\n`);
    // Not the default install: its DaemonSet would mount this machine's own /etc and /root.
    const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false, kube });
    const controllers = new Controllers();
    const registry: Registry = await startRegistry(join(dir, 'registry'), pki, { alice: 'first-password' });
    await cp.start();
    const kubectl = (args: readonly string[], input?: string): Promise<string> => adminKubectl(cp.info, args, input);
    const node = new KubeNode(cp.info, { name: `node-${index}`, runtime, kube, dir, images: [pauseArchive, agentArchive], podSubnet: `10.244.${index}.0/24`, index });
    // The broker's AWS: ECR and STS, checking every SigV4 signature; the role trusts only the broker's own account.
    const audience = 'okteto.example.com/us-east-2';
    const aws = new FakeAws({
      region: 'us-east-2',
      acceptWebIdentity: (token) => {
        const c = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { aud?: string[]; sub?: string };
        return c.sub === `system:serviceaccount:${NS}:${BROKER_SA}` && (c.aud ?? []).includes(audience);
      },
    });
    const awsPort = Number(new URL(await aws.start()).port);
    let unroute: (() => Promise<void>) | undefined;
    let unrouteAws: (() => Promise<void>) | undefined;
    try {
      await kubectl(['apply', '-f', '-'], [`apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n`, await kustomize('daemonset/crd')].join('\n---\n'));
      await controllers.start(cp.info);
      // No kube-proxy here: the `kubernetes` Service VIP leads to this cluster's API server.
      unroute = await routeServiceVip(cp.info, index);
      unrouteAws = await routeVip(AWS_VIP, 80, awsPort, index);
      const brokerEnv: Record<string, string> = process.env.NRC_NODE_MUTATE === 'broker-no-aws' ? { NRC_LOG_LEVEL: 'info' } : { AWS_ENDPOINT_URL_ECR: `http://${AWS_VIP}`, AWS_ENDPOINT_URL_STS: `http://${AWS_VIP}` };
      await execFileP('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', registry.caDir, '--dest-creds', 'alice:first-password', `docker-archive:${pauseArchive}`, `docker://${registry.host}/private/app:v1`]);
      const image = `${registry.host}/private/app:v1`;
      await node.start();
      const bootPid = node.kubeletPid;
      // What the agent may touch on this node, as it was before install.
      const before = await agentHostFiles(node);

      // No negative control here: a pull before install would make the kubelet cache its empty
      // docker config for 5 minutes, and the install step would wait that out too (or the kubelet
      // would have to be restarted, which no operator does). The provider scenario has the negative
      // control, on the same runtimes; here the kubelet's first read of config.json is at install.

      log('install: the DaemonSet as shipped, and the Secret');
      // The same registry under a second name (its certificate is also for localhost): the one the broker serves.
      const registryPort = Number(registry.host.split(':')[1]);
      const brokerHost = `localhost:${registryPort}`;
      const toml = `[registry."${registry.host}"]\nca = """${pki.caPem}"""\n[registry."${brokerHost}"]\nca = """${pki.caPem}"""\n`;
      await kubectl(['apply', '-f', '-'], await agentOverlay(node, toml, 'daemonset', MUTATION, brokerEnv));
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'alice', password: 'first-password' } }));
      await waitFor('the agent writes the kubelet config.json', async () => ((await kubeletFileHas(node, registry.host, 'alice')) ? true : undefined), 180_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await node.diagnostics()}`);
      });
      const pulled = await pullWithPod(kubectl, node, image);
      expect(pulled.phase, pulled.events).toBe('Running');
      expect(pulled.events).toMatch(/Successfully pulled image/);
      await expectNodeWideRecord(node, image);
      // containerd trusted the registry's private CA through the agent's hosts.toml.
      expect(await readFile(join(node.hostsDir, registry.host, 'hosts.toml'), 'utf8')).toContain(`server = "https://${registry.host}"`);
      const firstPullAt = Date.now();
      // That pull was the kubelet's first lookup since the agent wrote: it read config.json, and the
      // agent tells so by the file's access time (issue 22), well before the 5-minute fallback.
      const effective = await waitFor('the agent sees that the kubelet read config.json', async () => {
        const node_ = JSON.parse(await kubectl(['get', 'node', node.o.name, '-o', 'json'])) as { metadata?: { annotations?: Record<string, string> } };
        const e = parseEffective(node_.metadata?.annotations?.[ANNOTATION_EFFECTIVE]);
        return e?.state === 'effective' && e.how === 'kubelet-read' ? e : undefined;
      }, 30_000);
      log(`effective by the kubelet's read ${((firstPullAt - effective.at.getTime()) / 1000).toFixed(1)} s before the pod was seen Running`);

      log('rotation: a new password on the registry and in the Secret');
      await registry.setUsers({ alice: 'first-password', bob: 'second-password' });
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'bob', password: 'second-password' } }));
      await waitFor('the agent writes the rotated credential', async () => ((await kubeletFileHas(node, registry.host, 'bob')) ? true : undefined));

      // While the kubelet's cache runs out: the broker (the Deployment as shipped, in this cluster)
      // resolves Registry resources of all three kinds, and the node gets every credential.
      log('broker: Registry resources of all three kinds (static, awsIamUser, awsIamRole)');
      expect(await kubeletAuths(node)).not.toHaveProperty(brokerHost);
      const userHost = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
      const roleHost = '210987654321.dkr.ecr.us-east-2.amazonaws.com';
      await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
        opaqueSecret('static-creds', { username: 'bob', password: 'second-password' }),
        registryResource('localhost', { static: { port: registryPort, userSecretRef: { name: 'static-creds', key: 'username' }, passwordSecretRef: { name: 'static-creds', key: 'password' } } }),
        opaqueSecret('ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY }),
        registryResource(userHost, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } }),
        registryResource(roleHost, { awsIamRole: { audience, roleARN: 'arn:aws:iam::210987654321:role/pull' } }),
      ] }));
      const auths = await waitFor('the node holds every Registry credential', async () => {
        const a = await kubeletAuths(node);
        return [brokerHost, userHost, roleHost].every((h) => a[h] !== undefined) ? a : undefined;
      }, 180_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await kubectl(['-n', NS, 'get', 'pods', '-o', 'wide'])}\n${await kubectl(['get', 'events', '-A', '--field-selector', 'reason=FailedScheduling', '-o', 'custom-columns=MSG:.message', '--no-headers']).catch(() => '')}\n${await kubectl(['-n', NS, 'logs', '-l', 'app.kubernetes.io/component=broker', '--tail', '40']).catch(() => '')}`);
      });
      expect(auths[brokerHost]).toBe('bob:second-password');
      // The ECR tokens the fake AWS issued, one per AWS registry: keys for one, the web identity for the other.
      const issued = aws.issued.map((t) => `AWS:${t.password}`);
      expect(issued).toContain(auths[userHost]);
      expect(issued).toContain(auths[roleHost]);
      expect(aws.calls.filter((c) => c.service === 'sts').map((c) => c.status)).toContain(200);
      expect(aws.calls.filter((c) => c.status !== 200)).toEqual([]);
      // Old and new both work until the kubelet has re-read its file; then the old one goes.
      await sleep(Math.max(0, firstPullAt + KUBELET_CACHE_MS - Date.now()));
      await registry.setUsers({ bob: 'second-password' });
      const rotated = await pullWithPod(kubectl, node, image);
      expect(rotated.phase, rotated.events).toBe('Running');
      const rotatedAt = Date.now();
      // The kubelet has re-read its file: the broker's static credential pulls through the CRI.
      const viaBroker = await pullWithPod(kubectl, node, `${brokerHost}/private/app:v1`);
      expect(viaBroker.phase, viaBroker.events).toBe('Running');

      log('removal: the registry leaves the Secret');
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({}));
      await kubectl(['-n', NS, 'delete', 'registries', '--all']);
      await waitFor('the agent removes the entry', async () => ((await kubeletFileHas(node, registry.host, undefined)) ? true : undefined));
      await waitFor('the broker drops the Registry credentials', async () => (Object.keys(await kubeletAuths(node)).length === 0 ? true : undefined));
      await sleep(Math.max(0, rotatedAt + KUBELET_CACHE_MS - Date.now()));
      const removed = await pullWithPod(kubectl, node, image);
      expect(removed.phase).toBe('Failed');
      expect(removed.events).toMatch(/Failed to pull image .*(401 Unauthorized|no basic auth credentials)/);

      log('uninstall: delete the agent, run the cleanup variant');
      await uninstall(kubectl, node, await agentOverlay(node, toml), toml, before);
      expect(node.kubeletPid, 'the kubelet ran from boot to the end, never restarted').toBe(bootPid);
    } finally {
      await node.stop();
      await unroute?.();
      await unrouteAws?.();
      await aws.stop();
      await controllers.stop();
      await cp.stop();
      await registry.stop();
    }
  };

  /** Every cluster's outcome; the first failure is thrown, named by its cluster, after all have ended. */
  const onEveryCluster = async (run: (c: Cluster) => Promise<void>): Promise<void> => {
    const results = await Promise.allSettled(CLUSTERS.map(run));
    for (const [i, r] of results.entries()) {
      if (r.status === 'rejected') {
        const e = r.reason as Error;
        e.message = `[${clusterName(CLUSTERS[i]!)}] ${e.message}`;
        throw e;
      }
    }
  };

  it(`provider mode: install, rotation, an added and a removed registry each count at the next pull, no kubelet restart (${CLUSTERS.map(clusterName).join(', ')})`, async () => {
    await onEveryCluster(providerScenario);
  }, 900_000);

  it(`config.json mode: waits out the kubelet's 5-minute cache, through install, rotation, the broker, removal and uninstall (${CLUSTERS.map(clusterName).join(', ')})`, async () => {
    // Side by side: each waits out the kubelet's 5-minute cache twice (rotation, removal).
    await onEveryCluster(scenario);
  }, 1_500_000);
});
