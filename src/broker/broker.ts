// The cluster broker's work while it leads: Registry resources and the Secrets they reference
// (KubernetesRegistrySource) plus ECR tokens (EcrSource, once per cluster) → mergeSnapshots →
// one whole dockerconfigjson Secret (BrokerSecretWriter). Nothing is written until every source
// has delivered once, so a restart never drops a credential; a source that fails keeps its last
// good snapshot. The ECR token cache is the Secret itself: a new leader reuses its tokens.
import type { KubeConfig } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { systemClock, type Clock } from '../model/clock.ts';
import type { Source, SourceSnapshot } from '../model/credential.ts';
import { mergeSnapshots } from '../reconcile/engine.ts';
import { EcrSource, KubernetesServiceAccountTokenProvider, type AwsFetcherOptions } from '../sources/ecr/index.ts';
import type { EcrTokenFetcher } from '../sources/ecr/aws.ts';
import { DEFAULT_POLICY, type SchedulePolicy } from '../sources/ecr/schedule.ts';
import { KubernetesRegistrySource } from '../sources/kubernetes/registry-source.ts';
import type { WatchStateEvent } from '../sources/kubernetes/list-watch.ts';
import type { Registry } from '../metrics.ts';
import { BrokerSecretWriter, type WriteOutcome } from './secret-writer.ts';

export interface BrokerOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespace of the Registry resources, their Secrets, and the output Secret. */
  readonly namespace: string;
  readonly secretName: string;
  /** The account whose TokenRequest tokens awsIamRole registries exchange with STS (the broker's own by default). */
  readonly serviceAccount: { readonly namespace: string; readonly name: string };
  readonly logger: Logger;
  readonly aws?: Omit<AwsFetcherOptions, 'serviceAccountTokens'>;
  readonly debounceMs?: number;
  readonly onState?: (e: WatchStateEvent) => void;
  /** Where the ECR tokens' expiry (nrc_ecr_token_expiry_seconds) is exported: the EcrTokenExpiring alert reads it here. */
  readonly metrics?: Registry;
  /** Every write attempt's outcome (tests, metrics). */
  readonly onWrite?: (outcome: WriteOutcome | AgentError) => void;
  // Injected for tests.
  readonly clock?: Clock;
  readonly fetchToken?: EcrTokenFetcher;
  readonly policy?: SchedulePolicy;
  readonly random?: () => number;
}

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;

export class Broker {
  readonly writer: BrokerSecretWriter;
  readonly ecr: EcrSource;
  private readonly opts: BrokerOptions;
  private readonly clock: Clock;
  private readonly sources: Source[];
  private readonly latest = new Map<string, SourceSnapshot>();
  private timer: unknown;
  private failures = 0;
  private running = false;
  private writing: Promise<void> = Promise.resolve();
  private lastErrors = '';

  constructor(opts: BrokerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.writer = new BrokerSecretWriter({ kubeConfig: opts.kubeConfig, namespace: opts.namespace, name: opts.secretName });
    this.ecr = new EcrSource({
      tokenCache: this.writer.tokenCache(),
      aws: {
        ...opts.aws,
        serviceAccountTokens: new KubernetesServiceAccountTokenProvider({ kubeConfig: opts.kubeConfig, namespace: opts.serviceAccount.namespace, serviceAccount: opts.serviceAccount.name }),
      },
      // One caller per cluster: no fleet to spread out.
      fleetSize: 1,
      newNode: true,
      logger: opts.logger.child({ component: 'ecr' }),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.fetchToken ? { fetchToken: opts.fetchToken } : {}),
      // A new leader with no cached token calls AWS at once: there is no fleet to spread.
      policy: opts.policy ?? { ...DEFAULT_POLICY, startupSpreadMinMs: 0 },
      ...(opts.random ? { random: opts.random } : {}),
    });
    const registries = new KubernetesRegistrySource({
      kubeConfig: opts.kubeConfig,
      namespace: opts.namespace,
      ...(opts.onState ? { onState: opts.onState } : {}),
      onEcrRegistries: (specs) => this.ecr.setRegistries(specs),
    });
    // Precedence as on the nodes: Registry resources, their ECR tokens.
    this.sources = [registries, this.ecr];
  }

  async start(): Promise<void> {
    this.running = true;
    for (const s of this.sources) {
      await s.start((snap) => {
        // ok:false (unreadable before the first list) keeps the last good snapshot.
        if (snap.ok || !this.latest.has(s.name)) this.latest.set(s.name, snap);
        this.schedule(this.opts.debounceMs ?? 200);
      });
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    await Promise.all(this.sources.map((s) => s.stop()));
    await this.writing;
  }

  /** Resolves when no write is running (tests). */
  idle(): Promise<void> {
    return this.writing;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.writeOnce());
    }, ms);
  }

  private async writeOnce(): Promise<void> {
    if (!this.running) return;
    const snaps = this.sources.map((s) => this.latest.get(s.name));
    if (snaps.some((s) => s === undefined || !s.ok)) return; // not every source has answered yet
    const { credentials, errors } = mergeSnapshots(snaps as SourceSnapshot[]);
    const errorKey = JSON.stringify(errors.map((e) => [e.code, e.subject]));
    if (errorKey !== this.lastErrors) {
      this.lastErrors = errorKey;
      for (const e of errors) this.opts.logger.warn({ code: e.code, subject: e.subject }, e.message);
    }
    const fingerprints = this.ecr.tokenFingerprints();
    const outcome = await this.writer.write({ credentials, fingerprints }, new Date(this.clock.now()));
    this.opts.onWrite?.(outcome);
    if (outcome instanceof AgentError) {
      this.failures++;
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 10));
      this.opts.logger.error({ code: outcome.code, subject: outcome.subject, retryInMs: delay }, outcome.message);
      this.schedule(delay);
      return;
    }
    this.failures = 0;
    if (outcome !== 'unchanged') {
      this.opts.logger.info({ secret: this.writer.subject, outcome, registries: credentials.map((c) => c.key) }, 'wrote the registry credentials Secret');
    }
  }
}
