// `npm run cluster -- --node [--runtime 1.6|2.2]`: the control plane of `npm run cluster` plus a real
// node (kube-controller-manager, kube-scheduler, a kubelet and containerd, all from testenv/ or
// Debian), with the agent installed by the shipped manifests onto it — the node the `node` test
// suite uses, for a person to try the agent on. Stops everything on Ctrl-C.
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlPlane, kubectl, kustomize } from '../test/support/control-plane.ts';
import { buildAgentImage } from '../test/support/e2e-images.ts';
import { REPO_ROOT } from '../test/support/e2e-prereqs.ts';
import { agentOverlay, Controllers, dockerArchive, KubeNode, pauseImageArchive, routeServiceVip } from '../test/support/node.ts';

const say = (l: string): void => void process.stderr.write(`${l}\n`);
const runtime = process.argv.includes('1.6') ? 'containerd-1.6' : 'containerd-2.2';
const dir = join(REPO_ROOT, '.local', 'cluster-node');

say('[cluster] building the Go test tools if needed (bash scripts/build-go-tools.sh; cached)...');
execFileSync('bash', [join(REPO_ROOT, 'scripts', 'build-go-tools.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
await rm(dir, { recursive: true, force: true });
await mkdir(join(dir, 'images'), { recursive: true });

// Not the default install: its DaemonSet would mount this machine's own /etc and /root.
const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false, log: say });
const controllers = new Controllers();
let node: KubeNode | undefined;
let unroute: (() => Promise<void>) | undefined;
let stopping = false;
const stop = async (code: number): Promise<void> => {
  if (stopping) return;
  stopping = true;
  say('\n[cluster] stopping the node, the controllers and the control plane...');
  await node?.stop();
  await unroute?.();
  await controllers.stop();
  await cp.stop();
  say('[cluster] stopped.');
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  const images = [await pauseImageArchive(join(dir, 'images')), await dockerArchive(await buildAgentImage(), join(dir, 'images'))];
  const info = await cp.start();
  await kubectl(info, ['apply', '-f', '-'], ['apiVersion: v1\nkind: Namespace\nmetadata: {name: okteto}\n', await kustomize('daemonset/crd')].join('\n---\n'));
  await controllers.start(info);
  unroute = await routeServiceVip(info);
  node = new KubeNode(info, { name: 'node-1', runtime, dir: join(dir, 'node-1'), images, podSubnet: '10.244.1.0/24', index: 1 });
  await node.start();
  await kubectl(info, ['apply', '-f', '-'], await agentOverlay(node, '# per-registry CA, skip_verify, auth_header (docs/reference.md)\n'));
  process.stdout.write(
    [
      '',
      `A one-node cluster is running: kube-apiserver ${info.server}, node node-1 on ${runtime}, the agent's DaemonSet installed as shipped.`,
      `The node's files: ${node.root} (kubelet root dir ${node.kubeletRootDir}, containerd hosts directory ${node.hostsDir}).`,
      '',
      `  export KUBECONFIG=${info.adminKubeconfig}`,
      '  kubectl -n okteto get pods -o wide',
      "  kubectl -n okteto create secret docker-registry okteto-dockerconfig-static --docker-server=registry.example.com --docker-username=demo --docker-password=demo-password",
      `  cat ${join(node.kubeletRootDir, 'config.json')}`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
} catch (err) {
  say(`[cluster] failed: ${(err as Error).message}`);
  await stop(1);
}
