// The Kubernetes side of `run`: the Registry and Secret sources, the HTTP server
// (/healthz, /readyz, /metrics) and node status. run.ts calls this with its KubernetesConfig.
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Source } from '../model/credential.ts';
import type { ApplyReport } from '../model/apply-report.ts';
import type { NodeStatusReporter } from '../report/node-status.ts';
import { createAgentMetrics, createMetricsRegistry, createProviderMetrics, recordApply, recordEffective, recordProviderAsked, recordWatchState, type AgentMetrics } from '../report/metrics.ts';
import type { ProviderAskedObservation } from '../report/provider-asked.ts';
import type { EffectiveState } from '../report/node-annotations.ts';
import type { Gauge } from '../metrics.ts';
import { startAgentServer, type AgentServer } from '../server/server.ts';
import type { EcrSource } from '../sources/ecr/index.ts';
import { createCheckMetrics, recordCheckResults, type CheckMetrics } from '../report/check-metrics.ts';
import type { CheckResult } from '../check/credential-check.ts';
import { FileSource } from '../sources/file-source.ts';
import type { WatchStateEvent } from '../sources/kubernetes/list-watch.ts';
import type { KubeClient } from '../sources/kube-client.ts';
import { inCluster, loadKubeClient } from '../sources/kubernetes/kubeconfig.ts';
import type { KubernetesConfig } from './config.ts';

export interface KubernetesRuntime {
  /** In precedence order: the broker's Secret, Registry resources (per-node variant), then the Secret (watch or mounted), before run's own file source. */
  readonly sources: Source[];
  readonly metrics: AgentMetrics;
  /** Feed every apply report here, with (provider mode) whether the kubelet asks the plugin, and whether it is effective. */
  onApplied(r: ApplyReport, providerAsked?: ProviderAskedObservation, effective?: EffectiveState): void;
  /** The effective state changed between passes. */
  onEffective(e: EffectiveState): void;
  /** Feed credential check results here (metrics). */
  onCheckResults(results: readonly CheckResult[]): void;
  /**
   * One read of this Node's status.nodeInfo.kubeletVersion (namespace scoping): the Node's answer
   * (its version may be absent), or undefined when the API server could not be asked.
   */
  kubeletVersion(): Promise<{ readonly version: string | undefined } | undefined>;
  stop(): Promise<void>;
}

async function loadKubernetes(): Promise<{
  KubernetesRegistrySource: typeof import('../sources/kubernetes/registry-source.ts').KubernetesRegistrySource;
  KubernetesSecretSource: typeof import('../sources/kubernetes/secret-source.ts').KubernetesSecretSource;
  NodeStatusReporter: typeof NodeStatusReporter;
}> {
  const [registry, secret, status] = await Promise.all([
    import('../sources/kubernetes/registry-source.ts'),
    import('../sources/kubernetes/secret-source.ts'),
    import('../report/node-status.ts'),
  ]);
  return { KubernetesRegistrySource: registry.KubernetesRegistrySource, KubernetesSecretSource: secret.KubernetesSecretSource, NodeStatusReporter: status.NodeStatusReporter };
}

/** A node that joined minutes ago gets its first ECR token at once: joining nodes arrive slowly. */
const NEW_NODE_MS = 10 * 60_000;

async function isNewNode(kc: KubeClient, nodeName: string | undefined, log: Logger): Promise<boolean> {
  if (!nodeName) return false;
  try {
    const node = await kc.request<{ metadata?: { creationTimestamp?: string } }>('GET', `/api/v1/nodes/${encodeURIComponent(nodeName)}`);
    const created = node.metadata?.creationTimestamp;
    return created !== undefined && Date.now() - new Date(created).getTime() < NEW_NODE_MS;
  } catch (err) {
    // Unknown age: keep the fleet-wide spread, the safe side for the AWS quota.
    log.debug({ error: (err as Error).name }, 'could not read this node; treating it as part of a starting fleet');
    return false;
  }
}

/** The ECR source, when Registry resources or --ecr-default-chain can yield ECR registries. */
async function startEcr(c: KubernetesConfig, kc: KubeClient | undefined, watchRegistries: boolean, metrics: AgentMetrics, log: Logger): Promise<EcrSource | undefined> {
  const { defaultChainHosts, serviceAccount } = c.ecr;
  if (!watchRegistries && defaultChainHosts.length === 0) return undefined;
  const [ecrModule, { ecrStateFile, fileTokenCache }] = await Promise.all([import('../sources/ecr/index.ts'), import('../host/ecr-token-cache.ts')]);
  const newNode = kc ? await isNewNode(kc, c.nodeName, log) : false;
  return new ecrModule.EcrSource({
    tokenCache: fileTokenCache(ecrStateFile(c.hostRoot)),
    aws: kc ? { serviceAccountTokens: new ecrModule.KubernetesServiceAccountTokenProvider({ kubeConfig: kc, namespace: serviceAccount.namespace, serviceAccount: serviceAccount.name }) } : {},
    defaultChainHosts,
    fleetSize: c.ecr.fleetSize,
    waitForRegistries: watchRegistries,
    newNode,
    logger: log.child({ component: 'ecr' }),
    metrics: metrics.registry,
  });
}

/** While a watch keeps failing, it is logged again at most this often (the metrics count every retry). */
export const WATCH_FAILURE_LOG_INTERVAL_MS = 5 * 60_000;

/**
 * Logs a watch's states the way a fleet can bear: the first failure of a streak, then at most one
 * line per interval while it lasts, and one line when it ends. An API server that is down must not
 * make thousands of nodes log every retry; the metrics still count each one.
 */
export function watchStateLogger(log: Logger, monotonic: () => number = () => performance.now()): (e: WatchStateEvent) => void {
  const streaks = new Map<string, { since: number; loggedAt: number; code: string | undefined }>();
  return (e) => {
    const fields = { watch: e.watch, state: e.state, failures: e.failures, retryInMs: e.retryInMs, code: e.error?.code, error: e.error?.message };
    const now = monotonic();
    const streak = streaks.get(e.watch);
    if (e.state === 'disconnected' || e.state === 'forbidden') {
      // A new error code is news: logged at once even inside a streak.
      if (streak && streak.code === e.error?.code && now - streak.loggedAt < WATCH_FAILURE_LOG_INTERVAL_MS) return log.debug(fields, 'watch');
      streaks.set(e.watch, { since: streak?.since ?? now, loggedAt: now, code: e.error?.code });
      const line = streak ? { ...fields, failingForS: Math.round((now - streak.since) / 1000) } : fields;
      return e.state === 'forbidden' ? log.error(line, 'watch') : log.warn(line, 'watch');
    }
    if (e.state === 'gave-up') return log.error(fields, 'watch');
    if (e.state === 'stalled') return log.warn(fields, 'watch');
    if (e.state === 'connected' && streak) {
      streaks.delete(e.watch);
      return log.info({ watch: e.watch, state: e.state, failures: e.failures, failedForS: Math.round((now - streak.since) / 1000) }, 'watch recovered');
    }
    log.debug(fields, 'watch');
  };
}

/** Builds the Kubernetes sources and starts the server; the caller starts the reconciler. */
export async function startKubernetesRuntime(c: KubernetesConfig, logger: Logger): Promise<KubernetesRuntime> {
  const metrics = createAgentMetrics(createMetricsRegistry());
  const log = logger.child({ component: 'kubernetes' });
  const logState = watchStateLogger(log);
  const onState = (e: WatchStateEvent): void => {
    recordWatchState(metrics, e);
    logState(e);
  };

  const sources: Source[] = [];
  const kubeconfigPath = c.kubeconfig;
  const useKube = c.useKubernetes && (kubeconfigPath !== undefined || inCluster());
  // The Kubernetes sources load only when one is in use.
  const k8s = useKube ? await loadKubernetes() : undefined;
  // useKube means a --kubeconfig or a pod, so this never falls back to ~/.kube/config.
  const kc: KubeClient | undefined = k8s ? await loadKubeClient(kubeconfigPath) : undefined;
  const namespace = c.namespace;
  const watchRegistries = Boolean(k8s && kc && c.watchRegistries);
  const ecr = await startEcr(c, kc, watchRegistries, metrics, log);
  // The broker's Secret first: it carries the Registry resources, ECR tokens included (issue 15).
  // The broker's write counter as last seen, recorded before its snapshot reaches the reconciler:
  // the next apply report carries it (Node annotation broker-generation).
  let brokerGeneration: number | undefined;
  if (k8s && kc && c.brokerSecretName !== '') {
    sources.push(new k8s.KubernetesSecretSource({ kubeConfig: kc, namespace, name: c.brokerSecretName, onState, absentGraceMs: c.brokerSecretGraceMs, onGeneration: (g) => (brokerGeneration = g) }));
  }
  if (k8s && kc && watchRegistries) {
    sources.push(
      new k8s.KubernetesRegistrySource({ kubeConfig: kc, namespace, onState, nodeIdentityOnly: true, ...(ecr ? { onEcrRegistries: (specs) => ecr.setRegistries(specs) } : {}) }),
    );
  }
  // ECR tokens come from Registry resources too: they share the top precedence.
  if (ecr) sources.push(ecr);
  const secretDir = c.secretDir;
  const secretName = c.secretName;
  if (secretDir) sources.push(new FileSource(secretDir));
  else if (k8s && kc && secretName !== '') sources.push(new k8s.KubernetesSecretSource({ kubeConfig: kc, namespace, name: secretName, onState }));

  const nodeName = c.nodeName;
  const status: NodeStatusReporter | undefined =
    k8s && kc && nodeName
      ? new k8s.NodeStatusReporter({
          kubeConfig: kc,
          nodeName,
          onError: (e) => log.warn({ code: e.code, error: e.message }, 'node status'),
          startupTaint: c.startupTaint,
          onStartupTaint: (outcome) => (outcome === 'removed' ? log.info({ taint: c.startupTaint }, 'credentials effective: removed the startup taint from this node') : log.debug({ taint: c.startupTaint }, 'no startup taint on this node')),
        })
      : undefined;

  const listen = c.listenAddress;
  let server: AgentServer | undefined;
  if (listen) {
    server = await startAgentServer({ listenAddress: listen, registry: metrics.registry });
    log.info({ address: server.address }, 'serving /healthz, /readyz, /metrics');
  }

  let checkMetrics: CheckMetrics | undefined;
  let providerMetric: Gauge | undefined;
  return {
    sources,
    metrics,
    async kubeletVersion(): Promise<{ readonly version: string | undefined } | undefined> {
      if (!kc || !nodeName) return { version: undefined };
      try {
        // An empty merge patch: the agent may only patch its Node (no get), and the answer is the Node.
        const node = await kc.request<{ status?: { nodeInfo?: { kubeletVersion?: string } } }>('PATCH', `/api/v1/nodes/${encodeURIComponent(nodeName)}`, { body: {}, contentType: 'application/merge-patch+json' });
        return { version: node.status?.nodeInfo?.kubeletVersion };
      } catch (err) {
        log.debug({ error: (err as Error).message }, 'could not read the kubelet version of this node');
        return undefined;
      }
    },
    onCheckResults(results: readonly CheckResult[]): void {
      checkMetrics ??= createCheckMetrics(metrics.registry);
      recordCheckResults(checkMetrics, results);
    },
    onApplied(r: ApplyReport, providerAsked?: ProviderAskedObservation, effective?: EffectiveState): void {
      recordApply(metrics, { at: r.at, errors: r.errors, registries: r.registries, ok: r.hostOk, hash: r.hash });
      if (providerAsked) recordProviderAsked((providerMetric ??= createProviderMetrics(metrics.registry)), providerAsked.lastRequestAt);
      if (effective) recordEffective(metrics, effective);
      if (r.hostOk) server?.setReady(true);
      const errors = r.errors.map((e: AgentError) => ({ code: e.code, ...(e.subject ? { subject: e.subject } : {}) }));
      void status?.reportApply({ hash: r.hash, at: r.at, expiries: r.expiries, errors, ...(providerAsked ? { providerAsked } : {}), ...(effective ? { effective } : {}), ...(brokerGeneration !== undefined ? { brokerGeneration } : {}) });
    },
    onEffective(e: EffectiveState): void {
      recordEffective(metrics, e);
      if (e.state === 'effective') log.info({ via: e.via, how: e.how, at: e.at.toISOString() }, 'configuration effective');
      void status?.reportEffective(e);
    },
    async stop(): Promise<void> {
      status?.stop();
      await server?.close();
    },
  };
}
