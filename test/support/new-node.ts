// A brand-new node joining a cluster where the agent is installed (issue 22), for the node suite
// (test/node/new-node.test.ts) and bench section 9: the node's kubelet pulls the agent's own image
// from the cluster's private mirror (the DaemonSet's imagePullSecret) before the agent has written
// anything, so it has looked up its docker config and cached what it found (nothing) for 5
// minutes. A workload pod is created through the scheduler the moment the node is Ready. The node
// boots once (kubelet and containerd started once): the scenario is that boot.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ANNOTATION_EFFECTIVE, DEFAULT_STARTUP_TAINT } from '../../src/report/node-annotations.ts';
import { ControlPlane, kubectl as adminKubectl, type KubeMinor, kustomize } from './control-plane.ts';
import type { Pki } from './e2e-pki.ts';
import { startRegistry, type Registry } from './e2e-registry.ts';
import { agentOverlay, containerdPulls, Controllers, dockerConfigSecret, KubeNode, routeServiceVip, type Kubectl, type Runtime } from './node.ts';

const execFileP = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const NS = 'okteto';
const PROVIDER_VARIANT = 'daemonset/variants/provider';
const MIRROR_SECRET = 'mirror-pull';

export type NewNodeMode = 'provider' | 'config.json';

export interface NewNodeOptions {
  /** The suite's work dir, PKI and image archives (nodeSuiteWork). */
  readonly work: string;
  readonly pki: Pki;
  readonly agentArchive: string;
  readonly pauseArchive: string;
  readonly runtime: Runtime;
  /** The cluster's Kubernetes minor: control plane, controllers and kubelet (default 1.34). */
  readonly kube?: KubeMinor;
  /** Distinct per cluster on one machine (kubelet ports, pod bridge, subnet). */
  readonly index: number;
  readonly mode: NewNodeMode;
  /** The node pool registers the node with the startup taint. */
  readonly taint: boolean;
  /** How long to wait for the pod to run (default 12 minutes: the kubelet's cache and its image backoff). */
  readonly timeoutMs?: number;
  readonly log: (line: string) => void;
}

export interface NewNodeOutcome {
  /** From the node Ready to the workload pod seen Running (polled every second). */
  readonly readyToRunningS: number | undefined;
  /** From the node Ready to containerd's first successful pull of the workload image (its log). */
  readonly readyToPulledS: number | undefined;
  /** The kubelet's "Failed to pull image" events for the pod, with their counts. */
  readonly failedPulls: number;
  /** From the node Ready to the startup taint seen gone (undefined: still there, or never there). */
  readonly taintLiftedS: number | undefined;
  /** The Node's effective annotation at the end. */
  readonly effective: string | undefined;
  readonly kubeletRestarted: boolean;
  /** Pod, events and agent logs when the pod never ran. */
  readonly diagnostics?: string;
}

async function failedPulls(kubectl: Kubectl, pod: string): Promise<number> {
  const out = JSON.parse(await kubectl(['-n', 'default', 'get', 'events', '--field-selector', `involvedObject.name=${pod},reason=Failed`, '-o', 'json'])) as { items: { message?: string; count?: number }[] };
  return out.items.filter((e) => /Failed to pull image/.test(e.message ?? '')).reduce((n, e) => n + (e.count ?? 1), 0);
}

export async function bootNewNode(o: NewNodeOptions): Promise<NewNodeOutcome> {
  const { pki, runtime, index, mode } = o;
  const dir = join(o.work, `new-${index}`);
  const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false, ...(o.kube ? { kube: o.kube } : {}) });
  const controllers = new Controllers();
  // The cluster's private mirror (the agent's image) and the workload's private registry.
  const mirror: Registry = await startRegistry(join(dir, 'mirror'), pki, { puller: 'mirror-password' });
  const registry: Registry = await startRegistry(join(dir, 'registry'), pki, { alice: 'app-password' });
  let node: KubeNode | undefined;
  let unroute: (() => Promise<void>) | undefined;
  try {
    const agentImage = `${mirror.host}/nrc/node-registry-credentials:e2e`;
    const appImage = `${registry.host}/private/app:v1`;
    await execFileP('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', mirror.caDir, '--dest-creds', 'puller:mirror-password', `docker-archive:${o.agentArchive}`, `docker://${agentImage}`]);
    await execFileP('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', registry.caDir, '--dest-creds', 'alice:app-password', `docker-archive:${o.pauseArchive}`, `docker://${appImage}`]);
    await cp.start();
    const kubectl: Kubectl = (args, input) => adminKubectl(cp.info, args, input);
    await kubectl(['apply', '-f', '-'], ['apiVersion: v1\nkind: Namespace\nmetadata: {name: okteto}\n', await kustomize('daemonset/crd')].join('\n---\n'));
    await controllers.start(cp.info);
    unroute = await routeServiceVip(cp.info, index);
    const n = new KubeNode(cp.info, {
      name: `node-${index}`, runtime, dir, images: [o.pauseArchive], podSubnet: `10.244.${index}.0/24`, index, ...(o.kube ? { kube: o.kube } : {}),
      ...(mode === 'provider' ? { credentialProvider: { ports: [Number(registry.host.split(':')[1])] } } : {}),
      ...(o.taint ? { registerWithTaints: [{ key: DEFAULT_STARTUP_TAINT, effect: 'NoSchedule' }] } : {}),
    });
    node = n;
    // The node image's own trust of the mirror (its bootstrap's hosts.toml): the agent manages only
    // its registries' directories and leaves this one alone.
    const mirrorDir = join(n.hostsDir, mirror.host);
    await mkdir(mirrorDir, { recursive: true });
    await writeFile(join(mirrorDir, 'ca.crt'), pki.caPem);
    await writeFile(join(mirrorDir, 'hosts.toml'), `server = "https://${mirror.host}"\n[host."https://${mirror.host}"]\n  ca = "${join(mirrorDir, 'ca.crt')}"\n`);

    // The cluster before the node joins: the agent installed, its Secret, the mirror's pull Secret.
    const toml = `[registry."${registry.host}"]\nca = """${pki.caPem}"""\n`;
    await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [mirror.host]: { username: 'puller', password: 'mirror-password' } }, NS, MIRROR_SECRET));
    await kubectl(['apply', '-f', '-'], dockerConfigSecret({ [registry.host]: { username: 'alice', password: 'app-password' } }));
    await kubectl(['apply', '-f', '-'], await agentOverlay(n, toml, mode === 'provider' ? PROVIDER_VARIANT : 'daemonset', {}, {}, { image: agentImage, imagePullSecret: MIRROR_SECRET }));

    o.log('the node boots and joins');
    await n.start();
    const readyAt = Date.now();
    const bootPid = n.kubeletPid;
    const pod = `app-${index}`;
    // The moment the node is Ready: a workload's pod, placed by the scheduler.
    await kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: 'default' },
      spec: { nodeSelector: { 'kubernetes.io/hostname': n.o.name }, terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: appImage }] },
    }));
    let taintLiftedS: number | undefined;
    let runningS: number | undefined;
    const until = readyAt + (o.timeoutMs ?? 12 * 60_000);
    while (runningS === undefined && Date.now() < until) {
      const taints = (JSON.parse(await kubectl(['get', 'node', n.o.name, '-o', 'json'])) as { spec?: { taints?: { key: string }[] } }).spec?.taints ?? [];
      if (o.taint && taintLiftedS === undefined && !taints.some((t) => t.key === DEFAULT_STARTUP_TAINT)) taintLiftedS = (Date.now() - readyAt) / 1000;
      if ((await kubectl(['-n', 'default', 'get', 'pod', pod, '-o', 'jsonpath={.status.phase}'])) === 'Running') runningS = (Date.now() - readyAt) / 1000;
      else await sleep(1000);
    }
    const pulled = (await containerdPulls(n, appImage)).find((p) => p.ok && p.at >= readyAt);
    const failed = await failedPulls(kubectl, pod);
    const effective = (JSON.parse(await kubectl(['get', 'node', n.o.name, '-o', 'json'])) as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations?.[ANNOTATION_EFFECTIVE];
    const outcome: NewNodeOutcome = {
      readyToRunningS: runningS,
      readyToPulledS: pulled === undefined ? undefined : (pulled.at - readyAt) / 1000,
      failedPulls: failed,
      taintLiftedS,
      effective,
      kubeletRestarted: n.kubeletPid !== bootPid,
      ...(runningS === undefined ? { diagnostics: await n.diagnostics() } : {}),
    };
    o.log(`pod Running ${runningS?.toFixed(1) ?? 'never'} s after the node was Ready (pulled at ${outcome.readyToPulledS?.toFixed(1) ?? '—'} s); ${failed} failed pulls; startup taint ${o.taint ? `lifted at ${taintLiftedS?.toFixed(1) ?? '—'} s` : 'not used'}; effective: ${effective ?? '—'}`);
    return outcome;
  } finally {
    await node?.stop().catch(() => undefined);
    await unroute?.();
    await controllers.stop();
    await cp.stop().catch(() => undefined);
    await mirror.stop().catch(() => undefined);
    await registry.stop().catch(() => undefined);
  }
}
