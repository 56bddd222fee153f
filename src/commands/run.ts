import { AgentError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Source } from '../model/credential.ts';
import type { ApplyReport } from '../model/apply-report.ts';
import { Reconciler } from '../reconcile/reconciler.ts';
import { FileSource } from '../sources/file-source.ts';
import { agentConfig, loadRegistryConfig, openHost, type AgentConfig, type InputConfig } from './config.ts';
import { EXIT_FAILED, EXIT_OK, type Io } from './oneshot.ts';
import type { Flags } from './options.ts';
import { startKubernetesRuntime } from './run-kubernetes.ts';
import { kubeletScopingRefusal, type TargetOptions } from '../runtime/targets.ts';

/** The kubelet version's background reads back off to this (with jitter). */
const VERSION_RETRY_MAX_MS = 60_000;
import { registerDriftRepairs } from '../report/metrics.ts';
import { EffectiveObserver } from './effective-observer.ts';
import { PROVIDER_ASKED_PATH } from '../model/state-paths.ts';
import { ProviderAskedTracker, type ProviderAskedObservation } from '../report/provider-asked.ts';
import type { CheckResult } from '../check/index.ts';
import type { CredentialGate } from '../check/gate.ts';

export interface RunningAgent {
  readonly reconciler: Reconciler;
  stop(): Promise<void>;
}

/** Sources in precedence order (earlier wins for the same registry). */
export function fileSources(c: InputConfig): Source[] {
  const sources: Source[] = [];
  const file = c.dockerconfig;
  if (file) sources.push(new FileSource(file));
  return sources;
}

export async function startAgent(
  c: AgentConfig,
  logger: Logger,
  sources: Source[],
  onApplied?: (r: ApplyReport) => void,
  onCheckResults?: (r: readonly CheckResult[]) => void,
): Promise<RunningAgent | AgentError> {
  const host = openHost(c.hostRoot);
  if (host instanceof AgentError) return host;
  const registryConfig = loadRegistryConfig(c.registryConfig);
  if (registryConfig instanceof AgentError) return registryConfig;
  const check = c.check;
  let gate: CredentialGate | undefined;
  if (check.enabled) {
    // Loaded only when asked for: the checker's HTTP client is not needed otherwise.
    const [{ CredentialGate }, { CredentialChecker }] = await Promise.all([import('../check/gate.ts'), import('../check/index.ts')]);
    gate = new CredentialGate({
      checker: new CredentialChecker(check.checker),
      policy: check.policy,
      hostOptions: registryConfig.hosts,
      onResults: (results) => {
        onCheckResults?.(results);
        reconciler.trigger();
      },
    });
  }
  const reconciler: Reconciler = new Reconciler({
    ...(gate ? { gate } : {}),
    host,
    sources,
    hostOptions: registryConfig.hosts,
    hostOptionErrors: registryConfig.errors,
    targetOptions: c.targets,
    logger,
    debounceMs: c.debounceMs,
    resyncMs: c.resyncMs,
  });
  if (onApplied) reconciler.on('applied', onApplied);
  await reconciler.start();
  return { reconciler, stop: () => reconciler.stop() };
}

/**
 * Provider mode: after each pass, whether the kubelet asks the plugin (the mtime of the file the
 * plugin touches, read through the host). Carried by the passes, the resync's included: no timer
 * of its own, and the file is read at most once per resync interval (its lower bound, 0.8x).
 */
export function providerAskedObserver(c: AgentConfig): (() => ProviderAskedObservation) | undefined {
  if (c.targets.kubeletCredentials !== 'provider') return undefined;
  const host = openHost(c.hostRoot);
  if (host instanceof AgentError) return undefined;
  const tracker = new ProviderAskedTracker(0.8 * c.resyncMs);
  return () => tracker.observe(Date.now(), () => host.modifiedAt(PROVIDER_ASKED_PATH));
}

/** Resolves on the first SIGTERM or SIGINT. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(sig);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}

export async function runCommand(f: Flags, io: Io): Promise<number> {
  let c = agentConfig(f);
  if (c instanceof AgentError) {
    io.err(`${c.message}\n`);
    return EXIT_FAILED;
  }
  const logger = createLogger(c.logLevel);
  // Listen before starting: a SIGTERM that lands during start-up (a pod deleted while it starts)
  // still ends the agent cleanly with exit 0, instead of Node's default of dying by the signal.
  const stopping = untilSignal();
  // Precedence: Registry resources > Secret (watch or mounted) > --dockerconfig (docs/kubernetes.md).
  const kube = await startKubernetesRuntime(c.kubernetes, logger);
  const sources = [...kube.sources, ...fileSources(c)];
  if (sources.length === 0) {
    await kube.stop();
    io.err('run needs at least one credential source: --dockerconfig FILE|DIR (NRC_DOCKERCONFIG), --kubeconfig or a pod (Kubernetes), or --secret-dir.\n');
    return EXIT_FAILED;
  }
  // Namespace scoping in serviceaccount mode: decided by the kubelet's version, read once before the
  // first pass; an API server that cannot answer yet is asked again in the background, the scoped
  // credentials withheld meanwhile (never widened).
  const checkVersion = c.targets.namespaceScoping === 'serviceaccount' && c.targets.kubeletCredentials === 'provider';
  const firstRead = checkVersion ? await kube.kubeletVersion() : undefined;
  const { scopedRefusal: _, ...targets } = c.targets;
  const scopingFor = (read: { readonly version: string | undefined } | undefined): TargetOptions => {
    const refusal = read ? kubeletScopingRefusal(read.version) : 'the kubelet\'s version is not read yet (the API server did not answer)';
    if (refusal !== undefined) logger.error({ code: 'NRC_E_SCOPE_UNSUPPORTED', reason: refusal }, 'namespace-scoped registries are not served on this node (never written node-wide)');
    return refusal === undefined ? targets : { ...targets, scopedRefusal: refusal };
  };
  if (checkVersion) c = { ...c, targets: scopingFor(firstRead) };
  const observeAsked = providerAskedObserver(c);
  const host = openHost(c.hostRoot);
  const effective = host instanceof AgentError ? undefined : new EffectiveObserver({ host, mode: c.targets.kubeletCredentials ?? 'config-json', onChange: (e) => kube.onEffective(e) });
  const agent = await startAgent(c, logger, sources, (r) => kube.onApplied(r, observeAsked?.(), effective?.applied(r)), (results) => kube.onCheckResults(results));
  if (agent instanceof AgentError) {
    effective?.stop();
    await kube.stop();
    io.err(`${agent.message}\n`);
    return EXIT_FAILED;
  }
  registerDriftRepairs(kube.metrics, () => agent.reconciler.driftRepairs);
  let stopVersionReads = false;
  if (checkVersion && firstRead === undefined) {
    void (async () => {
      for (let failures = 1; !stopVersionReads; failures++) {
        await new Promise((r) => setTimeout(r, Math.min(VERSION_RETRY_MAX_MS, 1000 * 2 ** Math.min(failures, 10)) * (0.5 + Math.random() / 2)).unref());
        const read = stopVersionReads ? undefined : await kube.kubeletVersion();
        if (read) return agent.reconciler.setTargetOptions(scopingFor(read));
      }
    })();
  }
  logger.info({ sources: sources.length, applies: agent.reconciler.applies, kubeletCredentials: c.targets.kubeletCredentials }, 'running: following the sources until SIGTERM');
  const sig = await stopping;
  logger.info({ signal: sig }, 'stopping; the node keeps its configuration (cleanup runs only on uninstall)');
  // Every write is atomic, so nothing is lost by not waiting for a slow watch or AWS call to close.
  const deadline = setTimeout(() => {
    logger.warn('sources did not stop within 800 ms; exiting anyway');
    process.exit(EXIT_OK);
  }, 800);
  deadline.unref();
  stopVersionReads = true;
  effective?.stop();
  await Promise.all([agent.stop(), kube.stop()]);
  clearTimeout(deadline);
  return EXIT_OK;
}
