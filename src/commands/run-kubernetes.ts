// The Kubernetes side of `run`: the Registry and Secret sources, the HTTP server
// (/healthz, /readyz, /metrics) and node status. run.ts calls this with its flags.
import type { KubeConfig } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Source } from '../model/credential.ts';
import type { ApplyReport } from '../reconcile/reconciler.ts';
import type { NodeStatusReporter } from '../reconcile/node-status.ts';
import { createAgentMetrics, createMetricsRegistry, recordApply, recordWatchState, type AgentMetrics } from '../server/metrics.ts';
import { startAgentServer, type AgentServer } from '../server/server.ts';
import type { EcrSource } from '../sources/ecr/index.ts';
import { createCheckMetrics, recordCheckResults, type CheckMetrics } from '../check/metrics.ts';
import type { CheckResult } from '../check/credential-check.ts';
import { FileSource } from '../sources/file-source.ts';
import type { WatchStateEvent } from '../sources/kubernetes/list-watch.ts';
import { DEFAULT_SECRET_NAME, DEFAULT_SECRET_NAMESPACE } from '../sources/kubernetes/defaults.ts';
import { str, type Flags, type FlagSpec } from './options.ts';

export const KUBERNETES_RUN_FLAGS: readonly FlagSpec[] = [
  { name: 'kubeconfig', type: 'string', help: 'Kubeconfig file; default: in-cluster config when running in a pod.' },
  { name: 'no-kubernetes', type: 'boolean', help: 'Do not talk to Kubernetes even in a pod (file sources only).' },
  { name: 'secret-namespace', type: 'string', default: DEFAULT_SECRET_NAMESPACE, help: 'Namespace of the docker-config Secret and of the Registry resources.' },
  { name: 'secret-name', type: 'string', default: DEFAULT_SECRET_NAME, help: "The docker-config Secret to watch; '' disables the watch." },
  { name: 'secret-dir', type: 'string', help: 'Read that Secret from a mounted volume directory instead of watching it (no Secret RBAC needed).' },
  { name: 'no-registries', type: 'boolean', help: 'Do not watch Registry resources (admin.okteto.com/v1).' },
  { name: 'node-name', type: 'string', help: 'This node (Downward API spec.nodeName): annotations and Events go to it.' },
  { name: 'listen-address', type: 'string', help: 'Serve /healthz, /readyz and /metrics on host:port (e.g. 0.0.0.0:8080).' },
  { name: 'ecr-service-account', type: 'string', default: 'okteto/okteto', help: 'NAMESPACE/NAME of the service account whose tokens awsIamRole registries exchange with STS.' },
  { name: 'ecr-default-chain', type: 'string', help: "Comma-separated ECR hosts without a Registry resource that use the node's own AWS identity (SDK default chain)." },
  { name: 'ecr-fleet-size', type: 'string', default: '100', help: 'About how many nodes run the agent: spreads their first ECR calls to stay under the AWS quota.' },
];

export interface KubernetesRuntime {
  /** In precedence order: Registry resources, then the Secret (watch or mounted), before run's own file source. */
  readonly sources: Source[];
  readonly metrics: AgentMetrics;
  /** Feed every apply report here. */
  onApplied(r: ApplyReport): void;
  /** Feed credential check results here (metrics). */
  onCheckResults(results: readonly CheckResult[]): void;
  stop(): Promise<void>;
}

async function loadKubernetes(): Promise<{
  KubeConfig: typeof KubeConfig;
  KubernetesRegistrySource: typeof import('../sources/kubernetes/registry-source.ts').KubernetesRegistrySource;
  KubernetesSecretSource: typeof import('../sources/kubernetes/secret-source.ts').KubernetesSecretSource;
  NodeStatusReporter: typeof NodeStatusReporter;
}> {
  const [client, registry, secret, status] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../sources/kubernetes/registry-source.ts'),
    import('../sources/kubernetes/secret-source.ts'),
    import('../reconcile/node-status.ts'),
  ]);
  return { KubeConfig: client.KubeConfig, KubernetesRegistrySource: registry.KubernetesRegistrySource, KubernetesSecretSource: secret.KubernetesSecretSource, NodeStatusReporter: status.NodeStatusReporter };
}

function inCluster(): boolean {
  return Boolean(process.env['KUBERNETES_SERVICE_HOST']);
}

/** A node that joined minutes ago gets its first ECR token at once: joining nodes arrive slowly. */
const NEW_NODE_MS = 10 * 60_000;

async function isNewNode(kc: KubeConfig, nodeName: string | undefined, log: Logger): Promise<boolean> {
  if (!nodeName) return false;
  try {
    const { CoreV1Api } = await import('@kubernetes/client-node');
    const node = await kc.makeApiClient(CoreV1Api).readNode({ name: nodeName });
    const created = node.metadata?.creationTimestamp;
    return created !== undefined && Date.now() - new Date(created).getTime() < NEW_NODE_MS;
  } catch (err) {
    // Unknown age: keep the fleet-wide spread, the safe side for the AWS quota.
    log.debug({ error: (err as Error).name }, 'could not read this node; treating it as part of a starting fleet');
    return false;
  }
}

/** The ECR source, when Registry resources or --ecr-default-chain can yield ECR registries. */
async function startEcr(f: Flags, kc: KubeConfig | undefined, watchRegistries: boolean, metrics: AgentMetrics, log: Logger): Promise<EcrSource | undefined> {
  const defaultChainHosts = (str(f, 'ecr-default-chain') ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  if (!watchRegistries && defaultChainHosts.length === 0) return undefined;
  const ecrModule = await import('../sources/ecr/index.ts');
  const [saNamespace = 'okteto', saName = 'okteto'] = (str(f, 'ecr-service-account') ?? 'okteto/okteto').split('/');
  const newNode = kc ? await isNewNode(kc, str(f, 'node-name'), log) : false;
  return new ecrModule.EcrSource({
    hostRoot: str(f, 'host-root') ?? '/',
    aws: kc ? { serviceAccountTokens: new ecrModule.KubernetesServiceAccountTokenProvider({ kubeConfig: kc, namespace: saNamespace, serviceAccount: saName }) } : {},
    defaultChainHosts,
    fleetSize: Math.max(1, Number(str(f, 'ecr-fleet-size') ?? 100) || 1),
    waitForRegistries: watchRegistries,
    newNode,
    logger: log.child({ component: 'ecr' }),
    metrics: metrics.registry,
  });
}

/** Builds the Kubernetes sources and starts the server; the caller starts the reconciler. */
export async function startKubernetesRuntime(f: Flags, logger: Logger): Promise<KubernetesRuntime> {
  const metrics = createAgentMetrics(createMetricsRegistry());
  const log = logger.child({ component: 'kubernetes' });
  const onState = (e: WatchStateEvent): void => {
    recordWatchState(metrics, e);
    const fields = { watch: e.watch, state: e.state, failures: e.failures, retryInMs: e.retryInMs, code: e.error?.code, error: e.error?.message };
    if (e.state === 'forbidden' || e.state === 'gave-up') log.error(fields, 'watch');
    else if (e.state === 'disconnected' || e.state === 'stalled') log.warn(fields, 'watch');
    else log.debug(fields, 'watch');
  };

  const sources: Source[] = [];
  const kubeconfigPath = str(f, 'kubeconfig');
  const useKube = f['no-kubernetes'] !== true && (kubeconfigPath !== undefined || inCluster());
  // The Kubernetes client costs about 80 MiB of RSS: load it only when a Kubernetes source is in use.
  const k8s = useKube ? await loadKubernetes() : undefined;
  let kc: KubeConfig | undefined;
  if (k8s) {
    kc = new k8s.KubeConfig();
    if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
    else kc.loadFromCluster();
  }
  const namespace = str(f, 'secret-namespace') ?? DEFAULT_SECRET_NAMESPACE;
  const watchRegistries = Boolean(k8s && kc && f['no-registries'] !== true);
  const ecr = await startEcr(f, kc, watchRegistries, metrics, log);
  if (k8s && kc && watchRegistries) {
    sources.push(new k8s.KubernetesRegistrySource({ kubeConfig: kc, namespace, onState, ...(ecr ? { onEcrRegistries: (specs) => ecr.setRegistries(specs) } : {}) }));
  }
  // ECR tokens come from Registry resources too: they share the top precedence.
  if (ecr) sources.push(ecr);
  const secretDir = str(f, 'secret-dir');
  const secretName = str(f, 'secret-name') ?? DEFAULT_SECRET_NAME;
  if (secretDir) sources.push(new FileSource(secretDir));
  else if (k8s && kc && secretName !== '') sources.push(new k8s.KubernetesSecretSource({ kubeConfig: kc, namespace, name: secretName, onState }));

  const nodeName = str(f, 'node-name');
  const status: NodeStatusReporter | undefined =
    k8s && kc && nodeName
      ? new k8s.NodeStatusReporter({ kubeConfig: kc, nodeName, onError: (e) => log.warn({ code: e.code, error: e.message }, 'node status') })
      : undefined;

  const listen = str(f, 'listen-address');
  let server: AgentServer | undefined;
  if (listen) {
    server = await startAgentServer({ listenAddress: listen, registry: metrics.registry });
    log.info({ address: server.address }, 'serving /healthz, /readyz, /metrics');
  }

  let checkMetrics: CheckMetrics | undefined;
  return {
    sources,
    metrics,
    onCheckResults(results: readonly CheckResult[]): void {
      checkMetrics ??= createCheckMetrics(metrics.registry);
      recordCheckResults(checkMetrics, results);
    },
    onApplied(r: ApplyReport): void {
      recordApply(metrics, { at: r.at, errors: r.errors, registries: r.registries, ok: r.hostOk });
      if (r.hostOk) server?.setReady(true);
      void status?.reportApply({ hash: r.hash, at: r.at, expiries: r.expiries, errors: r.errors.map((e: AgentError) => ({ code: e.code, ...(e.subject ? { subject: e.subject } : {}) })) });
    },
    async stop(): Promise<void> {
      await server?.close();
    },
  };
}
