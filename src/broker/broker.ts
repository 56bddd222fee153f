// The cluster broker's work while it leads: Registry resources and the Secrets they reference
// (KubernetesRegistrySource) plus ECR tokens (EcrSource, once per cluster) → mergeSnapshots →
// one whole dockerconfigjson Secret (BrokerSecretWriter). Nothing is written until every source
// has delivered once, so a restart never drops a credential; a source that fails keeps its last
// good snapshot. The ECR token cache is the Secret itself: a new leader reuses its tokens.
// The broker also keeps its Secret as it wrote it: a watch on that one Secret and a periodic resync
// restore it, whole, when someone deletes or edits it (every node would otherwise drop its
// credentials until a Registry changes).
// Scoped registries (issue 26): the leader resolves namespace selectors through the API server
// (NamespaceSelectors) for the Registry resources and for the static Secret's `scopes` annotation
// (watched by name, metadata read only for that annotation), and writes scoped credentials and
// the static Secret's resolved selectors into scoped.json, never into .dockerconfigjson.
import type { KubeConfig } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { systemClock, type Clock } from '../model/clock.ts';
import type { RegistryCredential, Source, SourceSnapshot } from '../model/credential.ts';
import { isSelectorFailure, secretScopes } from '../model/scope.ts';
import { mergeSnapshots } from '../reconcile/engine.ts';
import { EcrSource, KubernetesServiceAccountTokenProvider, type AwsFetcherOptions, type EcrRegistrySpec } from '../sources/ecr/index.ts';
import type { EcrTokenFetcher } from '../sources/ecr/aws.ts';
import { DEFAULT_POLICY, type SchedulePolicy } from '../sources/ecr/schedule.ts';
import { KubernetesRegistrySource, type ResolvedScope } from '../sources/kubernetes/registry-source.ts';
import { type KubeObject, type ListWatch, secretByName, type WatchStateEvent } from '../sources/kubernetes/list-watch.ts';
import type { Registry } from '../metrics.ts';
import { kubeClientOf } from '../sources/kube-client.ts';
import type { Leadership } from './lease.ts';
import { NamespaceSelectors, type NamespaceSelectorsOptions } from './namespace-selectors.ts';
import { RegistryStatusReporter, type RegistryStatusOptions } from './registry-status.ts';
import { BrokerSecretWriter, kubernetesSecretStore, sinceOf, type SecretStore, type WriteResult } from './secret-writer.ts';

export interface BrokerOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespace of the Registry resources, their Secrets, and the output Secret. */
  readonly namespace: string;
  readonly secretName: string;
  /**
   * The platform's static Secret in `namespace` (okteto-dockerconfig-static): the broker reads its
   * `scopes` annotation and resolves the selectors there for the node agents. '' or undefined: not read.
   */
  readonly staticSecretName?: string;
  /** The account whose TokenRequest tokens awsIamRole registries exchange with STS (the broker's own by default). */
  readonly serviceAccount: { readonly namespace: string; readonly name: string };
  readonly logger: Logger;
  readonly aws?: Omit<AwsFetcherOptions, 'serviceAccountTokens'>;
  readonly debounceMs?: number;
  readonly onState?: (e: WatchStateEvent) => void;
  /** Where the ECR tokens' expiry (nrc_ecr_token_expiry_seconds) is exported: the EcrTokenExpiring alert reads it here. */
  readonly metrics?: Registry;
  /** Every write attempt's outcome (tests, metrics). */
  readonly onWrite?: (outcome: WriteResult | AgentError) => void;
  /** The election's fence and stamp (the `broker` command's LeaderElector); without it writes are unfenced (tests). */
  readonly leadership?: Leadership;
  /** The safety-net resync of the Secret (default 5 min, jittered ±10 %). */
  readonly resyncMs?: number;
  // Injected for tests.
  readonly clock?: Clock;
  /** The output Secret's API (default: the API server through kubeConfig). */
  readonly secretStore?: SecretStore;
  /** Replaces the Registry resources' watch; it hands its ECR registries to `onEcrRegistries`. */
  readonly registrySource?: (onEcrRegistries: (specs: readonly EcrRegistrySpec[]) => void) => Source;
  readonly fetchToken?: EcrTokenFetcher;
  readonly policy?: SchedulePolicy;
  readonly random?: () => number;
  /**
   * The Registry status (conditions, printer columns' fields, Events): on by default with the
   * Registry resources' own watch, off when `registrySource` is injected; tuning for tests.
   */
  readonly registryStatus?: boolean | Partial<Pick<RegistryStatusOptions, 'minIntervalMs' | 'debounceMs' | 'eventIntervalMs' | 'maxEventsPerInterval' | 'watchNodes' | 'onApply'>>;
  /** Tuning of the namespace selectors' re-resolution (tests). */
  readonly namespaceSelectors?: Partial<Pick<NamespaceSelectorsOptions, 'debounceMs' | 'maxDelayMs'>>;
}

/** The owner of the static Secret's selectors in NamespaceSelectors. */
const STATIC_SELECTORS = 'static-secret';

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;
/** As controllers do: the watch is the fast path, this catches whatever it missed. */
const RESYNC_MS = 5 * 60_000;

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
  private readonly random: () => number;
  private selfWatch: { stop(): Promise<void> } | undefined;
  private resyncTimer: unknown;
  /** What made the pending write check the Secret (the log of a repair says it). */
  private check: 'watch' | 'resync' | undefined;
  /** A new term writes once even when nothing changed: its stamp moves the resourceVersion. */
  private stampPending = false;
  /** The leader's report on each Registry (undefined: off). */
  readonly status: RegistryStatusReporter | undefined;
  /** Namespace selectors of scoped Registries and of the static Secret, resolved by the API server. */
  readonly selectors: NamespaceSelectors;
  /** Scoped ECR Registries by host: their tokens are written scoped. */
  private registryScopes: ReadonlyMap<string, ResolvedScope> = new Map();
  private staticWatch: ListWatch | undefined;
  /** The static Secret's selectors; undefined until its watch answered (or failed) once. */
  private staticSelectors: readonly string[] | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(opts: BrokerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.writer = new BrokerSecretWriter({
      store: opts.secretStore ?? kubernetesSecretStore(opts.kubeConfig, opts.namespace, opts.secretName),
      namespace: opts.namespace,
      name: opts.secretName,
      ...(opts.leadership ? { leadership: opts.leadership } : {}),
      generationFloor: () => this.status?.maxNodeGeneration() ?? 0,
    });
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
    this.selectors = new NamespaceSelectors({
      client: kubeClientOf(opts.kubeConfig),
      logger: opts.logger.child({ component: 'namespace-selectors' }),
      ...(opts.onState ? { onState: opts.onState } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...opts.namespaceSelectors,
    });
    const onEcrRegistries = (specs: readonly EcrRegistrySpec[]): void => this.ecr.setRegistries(specs);
    const registries =
      opts.registrySource?.(onEcrRegistries) ??
      new KubernetesRegistrySource({
        kubeConfig: opts.kubeConfig,
        namespace: opts.namespace,
        ...(opts.onState ? { onState: opts.onState } : {}),
        onEcrRegistries,
        scopes: this.selectors,
        onScopes: (scopes) => {
          this.registryScopes = scopes;
          this.schedule(this.opts.debounceMs ?? 200);
        },
      });
    // Precedence as on the nodes: Registry resources, their ECR tokens.
    this.sources = [registries, this.ecr];
    const statusOpts = opts.registryStatus ?? !opts.registrySource;
    this.status =
      statusOpts === false
        ? undefined
        : new RegistryStatusReporter({
            client: kubeClientOf(opts.kubeConfig),
            namespace: opts.namespace,
            logger: opts.logger.child({ component: 'registry-status' }),
            ...(opts.leadership ? { leadership: opts.leadership } : {}),
            ...(opts.onState ? { onState: opts.onState } : {}),
            ...(opts.clock ? { clock: opts.clock } : {}),
            ...(statusOpts === true ? {} : statusOpts),
          });
  }

  async start(): Promise<void> {
    this.running = true;
    this.writer.reset();
    this.stampPending = this.opts.leadership !== undefined;
    this.selfWatch = this.writer.store.watch((secret) => this.onSecret(secret), this.opts.onState);
    this.status?.start();
    // A changed selector resolution: the static Secret's selectors are written here (the
    // Registry source recomputes its own and emits).
    this.unsubscribe = this.selectors.subscribe(() => this.schedule(this.opts.debounceMs ?? 200));
    this.selectors.start();
    this.startStaticWatch();
    this.scheduleResync();
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
    if (this.resyncTimer !== undefined) this.clock.clearTimer(this.resyncTimer);
    this.resyncTimer = undefined;
    const watch = this.selfWatch;
    this.selfWatch = undefined;
    const staticWatch = this.staticWatch;
    this.staticWatch = undefined;
    this.staticSelectors = undefined;
    this.unsubscribe?.();
    this.selectors.use(STATIC_SELECTORS, []);
    await Promise.all([...this.sources.map((s) => s.stop()), watch?.stop(), staticWatch?.stop(), this.status?.stop(), this.selectors.stop()]);
    await this.writing;
  }

  /**
   * The static Secret, by name: only its `scopes` annotation is used (its entries are the node
   * agents' to read). Its selectors are resolved here because nodes cannot list namespaces.
   */
  private startStaticWatch(): void {
    const name = this.opts.staticSecretName;
    if (!name) {
      this.staticSelectors = [];
      return;
    }
    const lw = secretByName(kubeClientOf(this.opts.kubeConfig), this.opts.namespace, name);
    const subject = `secret ${this.opts.namespace}/${name}`;
    lw.on('sync', (items: ReadonlyMap<string, KubeObject>) => {
      const md = items.get(`${this.opts.namespace}/${name}`)?.metadata as { annotations?: Record<string, string> } | undefined;
      const selectors = new Set<string>();
      for (const scope of secretScopes(md?.annotations, subject).scopes.values()) if (scope.namespaceSelector !== undefined) selectors.add(scope.namespaceSelector);
      this.staticSelectors = [...selectors].sort();
      this.selectors.use(STATIC_SELECTORS, this.staticSelectors);
      this.schedule(this.opts.debounceMs ?? 200);
    });
    lw.on('state', (e) => {
      this.opts.onState?.(e);
      // Unreadable before its first list: the broker writes without its selectors rather than not at all.
      if (e.error && this.staticSelectors === undefined) {
        this.staticSelectors = [];
        this.schedule(this.opts.debounceMs ?? 200);
      }
    });
    this.staticWatch = lw;
    lw.start();
  }

  /**
   * The static Secret's selectors as resolved (failed ones left out: their entries are served
   * nowhere, never node-wide); undefined while one has not had its first answer.
   */
  private staticResolved(errors: AgentError[]): Record<string, readonly string[]> | undefined {
    const out: Record<string, readonly string[]> = {};
    for (const sel of this.staticSelectors ?? []) {
      const got = this.selectors.lookup(sel);
      if (got === undefined) return undefined;
      if (isSelectorFailure(got)) {
        errors.push(new AgentError(got.code, { subject: `secret ${this.opts.namespace}/${this.opts.staticSecretName ?? ''}`, detail: got.detail }));
        continue;
      }
      out[sel] = got;
    }
    return out;
  }

  /** ECR tokens of scoped Registries carry their scope (the ECR source knows nothing of scopes). */
  private scoped(credentials: readonly RegistryCredential[]): RegistryCredential[] {
    return credentials.map((c) => {
      if (c.source !== this.ecr.name) return c;
      const scope = this.registryScopes.get(c.key) ?? this.registryScopes.get(c.host.trim().toLowerCase().replace(/\.$/, ''));
      if (!scope) return c;
      return { ...c, namespaces: c.namespaces ?? scope.namespaces, source: `registry:${this.opts.namespace}/${scope.registry}` };
    });
  }

  /** The watch on its own Secret: anything but what it last wrote (deleted, edited) is put back promptly. */
  private onSecret(secret: Parameters<BrokerSecretWriter['drift']>[0]): void {
    // Which write brought each entry's current value: the Effective count starts there.
    this.status?.setSince(sinceOf(secret));
    const drift = this.writer.drift(secret);
    if (!drift || !this.running) return;
    this.opts.logger.debug({ secret: this.writer.subject, drift }, 'the registry credentials Secret changed under the broker');
    this.check ??= 'watch';
    this.schedule(this.opts.debounceMs ?? 200);
  }

  private scheduleResync(): void {
    if (!this.running) return;
    const period = this.opts.resyncMs ?? RESYNC_MS;
    this.resyncTimer = this.clock.setTimer(
      () => {
        this.resyncTimer = undefined;
        this.check ??= 'resync';
        this.schedule(0);
        this.scheduleResync();
      },
      // Jittered, so that replicas restarted together do not resync in step.
      Math.round(period * (0.9 + 0.2 * this.random())),
    );
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
    if (this.staticSelectors === undefined) return; // nor the static Secret's scopes
    const merged = mergeSnapshots(snaps as SourceSnapshot[]);
    const errors = merged.errors;
    const selectors = this.staticResolved(errors);
    if (selectors === undefined) return; // a selector's first answer is on its way
    const credentials = this.scoped(merged.credentials);
    this.status?.setResolution({ credentials, errors });
    const errorKey = JSON.stringify(errors.map((e) => [e.code, e.subject]));
    if (errorKey !== this.lastErrors) {
      this.lastErrors = errorKey;
      for (const e of errors) this.opts.logger.warn({ code: e.code, subject: e.subject }, e.message);
    }
    const fingerprints = this.ecr.tokenFingerprints();
    const check = this.check;
    this.check = undefined;
    const result = await this.writer.write({ credentials, fingerprints, selectors }, new Date(this.clock.now()), { force: this.stampPending });
    this.opts.onWrite?.(result);
    if (result instanceof AgentError) {
      this.check ??= check;
      this.failures++;
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 10));
      // Not leading any more: the election ends this process; the retry only runs if it renews after all.
      const level = result.code === 'NRC_E_BROKER_NOT_LEADER' ? 'warn' : 'error';
      this.opts.logger[level]({ code: result.code, subject: result.subject, retryInMs: delay }, result.message);
      this.schedule(delay);
      return;
    }
    this.failures = 0;
    this.stampPending = false;
    if (result.repaired) {
      // Once per repair, never a value: what happened to it, and what noticed.
      this.opts.logger.warn({ secret: this.writer.subject, reason: result.repaired, noticedBy: check ?? 'write', outcome: result.outcome }, `restored the registry credentials Secret (${result.repaired} by someone else)`);
    } else if (result.outcome !== 'unchanged') {
      const scopedKeys = credentials.filter((c) => c.namespaces !== undefined).map((c) => c.key);
      this.opts.logger.info(
        { secret: this.writer.subject, outcome: result.outcome, registries: credentials.filter((c) => c.namespaces === undefined).map((c) => c.key), ...(scopedKeys.length > 0 ? { scoped: scopedKeys } : {}) },
        'wrote the registry credentials Secret',
      );
    }
  }
}
