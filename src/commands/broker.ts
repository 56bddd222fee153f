// `broker`: the cluster broker. Every replica campaigns for the Lease; the leader resolves the
// Registry resources (static, awsIamUser, awsIamRole → ECR tokens) into one dockerconfigjson
// Secret that the node agents watch. Losing the Lease ends the process with exit 1, so the pod
// restarts and campaigns again (client-go's convention); SIGTERM releases the Lease at once.
import { Broker } from '../broker/broker.ts';
import { kubernetesLeaseStore, LeaderElector } from '../broker/lease.ts';
import { AgentError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { createAgentMetrics, createMetricsRegistry, recordWatchState } from '../report/metrics.ts';
import { startAgentServer, type AgentServer } from '../server/server.ts';
import { DEFAULT_SECRET_NAME } from '../sources/kubernetes/defaults.ts';
import { loadKubeConfig } from '../sources/kubernetes/kubeconfig.ts';
import { brokerConfig } from './config.ts';
import { EXIT_FAILED, EXIT_OK, type Io } from './oneshot.ts';
import type { Flags } from './options.ts';
import { untilSignal } from './run.ts';


export async function brokerCommand(f: Flags, io: Io): Promise<number> {
  const c = brokerConfig(f);
  if (c instanceof AgentError) {
    io.err(`${c.message}\n`);
    return EXIT_FAILED;
  }
  const logger = createLogger(c.logLevel);
  const kc = await loadKubeConfig(c.kubeconfig);
  const metrics = createAgentMetrics(createMetricsRegistry());
  let server: AgentServer | undefined;
  if (c.listenAddress) {
    server = await startAgentServer({ listenAddress: c.listenAddress, registry: metrics.registry, ready: true });
    logger.info({ address: server.address }, 'serving /healthz, /readyz, /metrics');
  }
  let lost: AgentError | undefined;
  let wake: (() => void) | undefined;
  // Declared before the elector, which fences the broker's writes; started only once leading.
  let broker: Broker | undefined;
  const elector = new LeaderElector({
    // Every Lease request's deadline: half the renew deadline. A standby on a half-open connection
    // campaigns again within it (well inside the lease duration), a leader gets a second attempt on
    // a fresh connection before its renew deadline, and it is far above a healthy request's latency.
    store: await kubernetesLeaseStore(kc, c.namespace, c.leaseName, { timeoutMs: Math.round(c.timing.renewDeadlineMs / 2) }),
    identity: c.identity,
    timing: c.timing,
    logger: logger.child({ component: 'election' }),
    onStartedLeading: () => {
      void broker?.start().catch((err: unknown) => logger.error({ error: (err as Error).name }, 'the broker failed to start'));
    },
    onStoppedLeading: (reason) => {
      lost = reason;
      wake?.();
    },
  });
  broker = new Broker({
    kubeConfig: kc,
    namespace: c.namespace,
    secretName: c.secretName,
    // The platform's static Secret, for its scopes annotation's selectors.
    staticSecretName: typeof f['secret-name'] === 'string' ? f['secret-name'] : DEFAULT_SECRET_NAME,
    serviceAccount: c.serviceAccount,
    logger: logger.child({ component: 'broker' }),
    onState: (e) => recordWatchState(metrics, e),
    metrics: metrics.registry,
    leadership: elector,
  });
  // The election's timers are unref'd (systemClock) and a standby has nothing else open between
  // two Lease reads: without this handle a standby replica exited 0 at once and never took over
  // (found by two broker processes on a real API server, test/kubernetes/broker.test.ts).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  elector.start();
  logger.info({ identity: c.identity, lease: `${c.namespace}/${c.leaseName}`, secret: `${c.namespace}/${c.secretName}` }, 'campaigning for the Lease');
  await Promise.race([untilSignal(), new Promise<void>((resolve) => (wake = resolve))]);
  const exitCode = lost ? EXIT_FAILED : EXIT_OK;
  if (lost) logger.error({ code: lost.code }, lost.message);
  // Stop writing first, then give the Lease up so that the other replica takes over at once.
  const deadline = setTimeout(() => process.exit(exitCode), 3000);
  deadline.unref();
  await broker.stop();
  await elector.stop({ release: !lost });
  await server?.close();
  clearInterval(keepAlive);
  clearTimeout(deadline);
  return exitCode;
}
