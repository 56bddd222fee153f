// `npm run cluster`: the tests' real local control plane (etcd + kube-apiserver from testenv/, TLS,
// Node,RBAC, a ServiceAccount issuer, the project's CRD and daemonset/ installed in namespace
// okteto) for people. Builds the Go tools if needed, writes kubeconfigs under .local/cluster/,
// prints what to run, and stops everything on Ctrl-C.
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, ControlPlane, serviceAccountKubeconfig, tokenAnchorPod } from '../test/support/control-plane.ts';
import { REPO_ROOT } from '../test/support/e2e-prereqs.ts';

// `--node`: the same control plane plus a real node with the agent on it (scripts/cluster-node.ts).
if (process.argv.includes('--node')) {
  await import('./cluster-node.ts');
  await new Promise(() => undefined); // that script owns the process from here on
}

const dir = join(REPO_ROOT, '.local', 'cluster');
const say = (l: string): void => void process.stderr.write(`${l}\n`);

say('[cluster] building the Go test tools if needed (bash scripts/build-go-tools.sh; cached)...');
execFileSync('bash', [join(REPO_ROOT, 'scripts', 'build-go-tools.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });

await rm(dir, { recursive: true, force: true });
await mkdir(dir, { recursive: true });
const cp = new ControlPlane({ dir, log: say });
let stopping = false;
const stop = async (code: number): Promise<void> => {
  if (stopping) return;
  stopping = true;
  say('\n[cluster] stopping kube-apiserver and etcd...');
  await cp.stop();
  say('[cluster] stopped (state kept in .local/cluster until the next `npm run cluster`).');
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  const info = await cp.start();
  // Bound to a Pod on node-1, as the kubelet binds the DaemonSet pod's token: the admission policy
  // lets the agent annotate only the Node named in its token.
  const agent = await serviceAccountKubeconfig(info, AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, await tokenAnchorPod(info, 'node-1'));
  const agentKubeconfig = join(dir, 'agent.kubeconfig');
  const hostRoot = '.local/cluster/host';
  execFileSync('cp', [agent.path, agentKubeconfig]);
  const secret = JSON.stringify({ auths: { 'registry.example.com': { username: 'demo', password: 'demo-password' } } });
  process.stdout.write(
    [
      '',
      `A real kube-apiserver (v1.34) and etcd are running on ${info.server} (started in ${(info.startupMs / 1000).toFixed(1)} s).`,
      'The CRD (daemonset/crd) and daemonset/ (ServiceAccount, RBAC, DaemonSet; no controllers run it) are installed in namespace okteto.',
      '',
      'Admin access (in another terminal):',
      `  export KUBECONFIG=${info.adminKubeconfig}`,
      '  kubectl get nodes,secrets,registries -A',
      '',
      'Node node-1 exists (with a Pod of the agent\'s ServiceAccount on it, which its token is bound to). Give the agent a Secret to watch:',
      `  kubectl -n okteto create secret generic okteto-dockerconfig-static --type=kubernetes.io/dockerconfigjson --from-literal=.dockerconfigjson='${secret}'`,
      '',
      'Run the agent as the DaemonSet\'s ServiceAccount (a TokenRequest token bound to that Pod, valid 1 hour; only the RBAC and admission policy of daemonset/):',
      `  mkdir -p ${hostRoot}/var/lib/kubelet && npm start -- run --kubeconfig ${agentKubeconfig} --host-root ${hostRoot} --node-name node-1`,
      `  cat ${hostRoot}/var/lib/kubelet/config.json; kubectl get node node-1 -o jsonpath='{.metadata.annotations}'`,
      '',
      'Ctrl-C stops the control plane.',
      '',
    ].join('\n'),
  );
  process.stdout.write(`export KUBECONFIG=${info.adminKubeconfig}\n`);
} catch (err) {
  say(`[cluster] failed: ${(err as Error).message}`);
  await stop(1);
}
