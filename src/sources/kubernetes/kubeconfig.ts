// How the agent finds its cluster. `run` uses the small client of client.ts; `status` and the
// broker load @kubernetes/client-node on demand (about 80 MiB of RSS, issue 7).
import type { KubeConfig } from '@kubernetes/client-node';
import { inClusterClient, KubeClient, kubeconfigClient } from '../kube-client.ts';

/** True in a pod, where the in-cluster config (service account token, API address) is there. */
export function inCluster(): boolean {
  return Boolean(process.env['KUBERNETES_SERVICE_HOST']);
}

/** --kubeconfig FILE; else the in-cluster config in a pod; else $KUBECONFIG or ~/.kube/config. */
export async function loadKubeConfig(file: string | undefined): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (inCluster()) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** The node agent's client: --kubeconfig FILE, else the in-cluster ServiceAccount; client-node only for what client.ts does not do. */
export async function loadKubeClient(file: string | undefined): Promise<KubeClient> {
  if (file) return (await kubeconfigClient(file)) ?? KubeClient.fromKubeConfig(await loadKubeConfig(file));
  if (inCluster()) return inClusterClient();
  return KubeClient.fromKubeConfig(await loadKubeConfig(undefined));
}
