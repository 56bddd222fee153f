// Namespace-scoped registries on the newest Kubernetes (issue 26): one node shared by two tenants.
// A Registry limited to namespace team-a (annotation), resolved by the broker, served by the
// plugin's service-account mode (examples/credential-provider/credential-provider-config-serviceaccount.yaml,
// daemonset/variants/provider-scoped as shipped): a team-a pod pulls it; a team-b pod is refused,
// also when the image is already on the node and its policy is IfNotPresent (KEP-2535, on by
// default since 1.35); the unscoped registry pulls in both; widening and narrowing count at the
// next pull. No file of the node holds the scoped credential outside the per-namespace answers.
// Nothing restarts the kubelet.
// Negative controls, run by hand (never in CI; docs/e2e.md): NRC_NODE_MUTATE=scoping-off (the
// Registry without its scope annotation: node-wide) and =kep2535-off (the kubelet's
// KubeletEnsureSecretPulledImages gate off): each makes the team-b pod run the present image, and
// the test fails at that step.
import { execFile } from 'node:child_process';
import { readdir, readFile, lstat, writeFile, mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane, kubectl as adminKubectl, kustomize, NEWEST_KUBE } from '../support/control-plane.ts';
import type { Pki } from '../support/e2e-pki.ts';
import { startRegistry, type Registry } from '../support/e2e-registry.ts';
import { skipWithout } from '../support/go-tools.ts';
import { agentOverlay, clusterTools, Controllers, dockerConfigSecret, eventually, KubeNode, nodeSuiteWork, PAUSE_IMAGE, PROVIDER_EXAMPLE_DIR, pullWithPod, removeNodeSuiteWork, routeServiceVip, type Kubectl } from '../support/node.ts';
import { NAMESPACES_ANNOTATION } from '../../src/model/scope.ts';

const execFileP = promisify(execFile);
const NS = 'okteto';
const INDEX = 12;
const MUTATE = process.env.NRC_NODE_MUTATE;
const SCOPED_PASSWORD = 'team-a-only-password';

let work: string;
let pki: Pki;
let agentArchive: string;
let pauseArchive: string;

/** A small image of its own (not the preloaded pause image's id), pushed to the registry, never preloaded: the kubelet pulls it. */
async function pushImage(registry: Registry, repo: string, label: string): Promise<void> {
  const dir = join(work, 'images', label);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), `FROM ${PAUSE_IMAGE}\nLABEL nrc.test=${label}\n`);
  const tag = `nrc.local/scoped-${label}:1`;
  await execFileP('docker', ['build', '-q', '-t', tag, dir]);
  await execFileP('docker', ['save', tag, '-o', join(dir, 'image.tar')]);
  await execFileP('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', registry.caDir, '--dest-creds', 'team:team-a-only-password', `docker-archive:${join(dir, 'image.tar')}`, `docker://${registry.host}/${repo}`]);
}

/** Every regular file under the node's host root whose bytes hold `needle` (a grep of the node). */
async function filesHolding(root: string, needles: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, entry);
      const st = await lstat(path).catch(() => undefined);
      if (st?.isDirectory()) await walk(path);
      else if (st?.isFile() && st.size < 4 << 20) {
        const bytes = await readFile(path).catch(() => undefined);
        if (bytes && needles.some((n) => bytes.includes(n))) out.push(`/${relative(root, path)}`);
      }
    }
  };
  await walk(root);
  return out.sort();
}

/** The answer the plugin gives a namespace's pods (its file, or undefined when the agent wrote none). */
async function namespaceAnswer(node: KubeNode, namespace: string): Promise<Record<string, string> | undefined> {
  const text = await readFile(join(node.providerStatePath, '..', 'namespaces', `${namespace}.json`), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const auth = (JSON.parse(text) as { auth: Record<string, { username: string }> }).auth;
  return Object.fromEntries(Object.entries(auth).map(([k, v]) => [k, v.username]));
}

describe.skipIf(skipWithout(clusterTools(NEWEST_KUBE)))(`namespace-scoped registries on a real kubelet ${NEWEST_KUBE} (containerd 2.2)`, () => {
  beforeAll(async () => {
    ({ work, pki, agentArchive, pauseArchive } = await nodeSuiteWork('nrc-node-scoped-'));
  }, 1_200_000);

  afterAll(() => removeNodeSuiteWork(work), 120_000);

  it('a team-a pod pulls the team-a registry; a team-b pod is refused, even for the image on the node; the shared registry pulls in both; widening and narrowing count at the next pull', async () => {
    const dir = join(work, 'scoped');
    const log = (m: string): void => void process.stderr.write(`[node ${NEWEST_KUBE} scoped] ${m}\n`);
    const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false, kube: NEWEST_KUBE });
    const controllers = new Controllers();
    const registry = await startRegistry(join(dir, 'registry'), pki, { team: SCOPED_PASSWORD, shared: 'shared-password' });
    await cp.start();
    const kubectl: Kubectl = (args, input) => adminKubectl(cp.info, args, input);
    const port = Number(registry.host.split(':')[1]);
    // One registry server under two names: `localhost:<port>` is the team-a Registry, registry.host the shared one.
    const teamHost = `localhost:${port}`;
    const node = new KubeNode(cp.info, {
      name: `node-${INDEX}`, runtime: 'containerd-2.2', kube: NEWEST_KUBE, dir, images: [pauseArchive, agentArchive], podSubnet: `10.244.${INDEX}.0/24`, index: INDEX,
      credentialProvider: { ports: [port], configFile: join(PROVIDER_EXAMPLE_DIR, 'credential-provider-config-serviceaccount.yaml') },
      ...(MUTATE === 'kep2535-off' ? { featureGates: { KubeletEnsureSecretPulledImages: false } } : {}),
    });
    let unroute: (() => Promise<void>) | undefined;
    const scope = (namespaces: string): Record<string, string> => (MUTATE === 'scoping-off' ? {} : { [NAMESPACES_ANNOTATION]: namespaces });
    const teamRegistry = (namespaces: string): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'team-creds', namespace: NS }, type: 'Opaque', stringData: { username: 'team', password: SCOPED_PASSWORD } },
      { apiVersion: 'admin.okteto.com/v1', kind: 'Registry', metadata: { name: 'localhost', namespace: NS, annotations: scope(namespaces) },
        spec: { static: { port, userSecretRef: { name: 'team-creds', key: 'username' }, passwordSecretRef: { name: 'team-creds', key: 'password' } } } },
    ] });
    const teamImage = (tag: string): string => `${teamHost}/team/app:${tag}`;
    const sharedImage = `${registry.host}/shared/app:v1`;
    try {
      await kubectl(['apply', '-f', '-'], [NS, 'team-a', 'team-b'].map((n) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${n}}\n`).concat(await kustomize('daemonset/crd')).join('\n---\n'));
      await controllers.start(cp.info);
      unroute = await routeServiceVip(cp.info, INDEX);
      await pushImage(registry, 'team/app:v1', 'team-v1');
      await pushImage(registry, 'team/app:v2', 'team-v2');
      await pushImage(registry, 'shared/app:v1', 'shared-v1');
      log('node boot: kubelet with the service-account CredentialProviderConfig (tokenAttributes)');
      await node.start();
      const bootPid = node.kubeletPid;

      log('install: daemonset/variants/provider-scoped as shipped (the nodes may request the audience), the shared Secret, the team-a Registry');
      const toml = `[registry."${registry.host}"]\nca = """${pki.caPem}"""\n[registry."${teamHost}"]\nca = """${pki.caPem}"""\n`;
      await kubectl(['apply', '-f', '-'], await agentOverlay(node, toml, 'daemonset/variants/provider-scoped'));
      await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'shared', password: 'shared-password' } }));
      const installedAt = Date.now();
      await kubectl(['apply', '-f', '-'], teamRegistry('team-a'));
      const written = (ns: string, has: boolean) => async (): Promise<true | undefined> => (((await namespaceAnswer(node, ns))?.[teamHost] !== undefined) === has ? true : undefined);
      if (MUTATE !== 'scoping-off') {
        await eventually('the agent writes the team-a answer', written('team-a', true), 180_000).catch(async (e: Error) => {
          throw new Error(`${e.message}\n${await node.diagnostics()}\n${await kubectl(['-n', NS, 'logs', '-l', 'app.kubernetes.io/component=broker', '--tail', '30']).catch(() => '')}`);
        });
        log(`team-a answer written ${((Date.now() - installedAt) / 1000).toFixed(1)} s after the Registry`);
      } else {
        await eventually('the agent serves the (unscoped) team registry', async () => ((await readFile(node.providerStatePath, 'utf8').catch(() => '')).includes(teamHost) ? true : undefined), 180_000);
      }

      const a1 = await pullWithPod(kubectl, node, teamImage('v1'), 90_000, 500, { namespace: 'team-a', policy: 'IfNotPresent' });
      expect(a1.phase, `team-a pulls its registry: ${a1.events}`).toBe('Running');
      expect(a1.events).toMatch(/Successfully pulled image/);
      log('team-a pulled team/app:v1 (now on the node)');

      const b1 = await pullWithPod(kubectl, node, teamImage('v1'), 90_000, 500, { namespace: 'team-b', policy: 'IfNotPresent' });
      expect(b1.phase, `team-b, IfNotPresent, the image on the node: refused (KEP-2535 re-verifies with team-b's credentials): ${b1.events}`).toBe('Failed');
      expect(b1.events).toMatch(/401 Unauthorized|authorization failed|no basic auth credentials/);
      const b2 = await pullWithPod(kubectl, node, teamImage('v2'), 90_000, 500, { namespace: 'team-b', policy: 'Always' });
      expect(b2.phase, `team-b, an image not on the node: refused: ${b2.events}`).toBe('Failed');
      log('team-b refused team/app:v1 (on the node, IfNotPresent) and team/app:v2');

      for (const ns of ['team-a', 'team-b']) {
        const shared = await pullWithPod(kubectl, node, sharedImage, 90_000, 500, { namespace: ns, policy: 'Always' });
        expect(shared.phase, `${ns} pulls the unscoped registry: ${shared.events}`).toBe('Running');
      }

      const holding = await filesHolding(node.root, [SCOPED_PASSWORD, Buffer.from(`team:${SCOPED_PASSWORD}`).toString('base64')]);
      expect(holding, 'only the per-namespace answer holds the scoped credential (no config.json, hosts.toml, response.json...)').toEqual(['/var/lib/node-registry-credentials/provider/namespaces/team-a.json']);

      log('widen: the Registry names team-a and team-b');
      let changedAt = Date.now();
      await kubectl(['apply', '-f', '-'], teamRegistry('team-a,team-b'));
      await eventually('the agent writes the team-b answer', written('team-b', true), 120_000);
      const widenedMs = Date.now() - changedAt;
      const bw = await pullWithPod(kubectl, node, teamImage('v1'), 90_000, 500, { namespace: 'team-b', policy: 'IfNotPresent' });
      expect(bw.phase, `the first team-b pull after widening: ${bw.events}`).toBe('Running');
      log(`widened: answer written ${(widenedMs / 1000).toFixed(1)} s, team-b pod Running ${((Date.now() - changedAt) / 1000).toFixed(1)} s after the change`);

      log('narrow: back to team-a only');
      changedAt = Date.now();
      await kubectl(['apply', '-f', '-'], teamRegistry('team-a'));
      await eventually('the agent removes the team-b answer', written('team-b', false), 120_000);
      const narrowedMs = Date.now() - changedAt;
      const bn = await pullWithPod(kubectl, node, teamImage('v2'), 90_000, 500, { namespace: 'team-b', policy: 'Always' });
      expect(bn.phase, `the first team-b pull after narrowing: ${bn.events}`).toBe('Failed');
      const an = await pullWithPod(kubectl, node, teamImage('v2'), 90_000, 500, { namespace: 'team-a', policy: 'Always' });
      expect(an.phase, `team-a still pulls: ${an.events}`).toBe('Running');
      log(`narrowed: answer removed ${(narrowedMs / 1000).toFixed(1)} s, team-b refused at its next pull ${((Date.now() - changedAt) / 1000).toFixed(1)} s after the change`);

      expect(node.kubeletPid, 'the kubelet ran from boot to the end, never restarted').toBe(bootPid);
    } finally {
      await node.stop();
      await unroute?.();
      await controllers.stop();
      await cp.stop();
      await registry.stop();
    }
  }, 1_200_000);
});
