// How the agent finds its cluster, for `run` and `status` alike. The client is loaded on demand:
// it costs about 80 MiB of RSS that `run` without Kubernetes sources must not carry (issue 7).
import type { KubeConfig } from '@kubernetes/client-node';

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
