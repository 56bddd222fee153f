// The ECR source: one 12-hour token per ECR registry, refreshed before it expires, spread out
// across the fleet, kept across restarts. It never touches the host's credential files (the
// reconciler does); it only persists its own token cache in the agent's state directory.
import { Counter, Gauge, type Registry } from '../../metrics.ts';
import { createLogger, type Logger } from '../../log.ts';
import { AgentError } from '../../errors.ts';
import type { RegistryCredential, Source, SourceSnapshot } from '../../model/credential.ts';
import { createAwsTokenFetcher, type AwsFetcherOptions, type EcrAuth, type EcrTokenFetcher } from './aws.ts';
import { systemClock, type Clock } from '../../model/clock.ts';
import { parseEcrHost, type EcrHost } from './hostname.ts';
import { DEFAULT_POLICY, backoffDelayMs, refreshDelayMs, startupDelayMs, type Random, type SchedulePolicy } from './schedule.ts';
import { fingerprintOf as partsFingerprint } from '../../model/fingerprint.ts';
import type { EcrRegistrySpec, StoredToken, TokenCache } from './types.ts';

export const ECR_SOURCE_NAME = 'ecr';

export interface EcrSourceOptions {
  /** Where tokens are kept across restarts (on a node: fileTokenCache(ecrStateFile(hostRoot))). */
  readonly tokenCache: TokenCache;
  /** AWS access (endpoints, SDK attempts, service-account tokens for awsIamRole). */
  readonly aws?: AwsFetcherOptions;
  /** ECR hosts without a Registry that use the agent's own AWS identity (SDK default chain). */
  readonly defaultChainHosts?: readonly string[];
  /** How many agents may start together (nodes in the cluster): sizes the startup spread. */
  readonly fleetSize?: number;
  /** This node just joined the cluster: call AWS right away instead of waiting for the fleet spread. */
  readonly newNode?: boolean;
  /**
   * Hold the first snapshot until setRegistries has been called (default true), so that a restart
   * does not briefly drop ECR credentials before the Registry list arrives. Set false when no
   * Registry source feeds this one (default-chain hosts only).
   */
  readonly waitForRegistries?: boolean;
  readonly logger?: Logger;
  /** Where to register the metrics; none when omitted. */
  readonly metrics?: Registry;
  // Injected for tests and the simulation.
  readonly fetchToken?: EcrTokenFetcher;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly policy?: SchedulePolicy;
}

/** What render/doctor may show about a registry: never the token. */
export interface EcrRegistryStatus {
  readonly host: string;
  readonly kind: EcrAuth['kind'] | 'invalid';
  readonly expiresAt?: Date;
  readonly nextRefreshAt?: Date;
  readonly consecutiveFailures: number;
  readonly lastError?: string;
}

interface Entry {
  readonly host: string;
  parsed: EcrHost;
  auth: EcrAuth;
  fingerprint: string;
  token: StoredToken | undefined;
  failures: number;
  lastError: AgentError | undefined;
  refreshTimer: unknown;
  nextRefreshAt: number | undefined;
  expiryTimer: unknown;
  /** Bumped when the entry's credentials change or it is removed: late answers are dropped. */
  generation: number;
}

function authOf(spec: EcrRegistrySpec): EcrAuth {
  return spec.kind === 'awsIamUser'
    ? { kind: 'awsIamUser', accessKeyId: spec.accessKeyId, secretAccessKey: spec.secretAccessKey }
    : { kind: 'awsIamRole', roleArn: spec.roleArn, audience: spec.audience };
}

/** A one-way, short identifier of the AWS credentials: detects rotation across restarts. */
const credentialFingerprint = (parts: readonly string[]): string => partsFingerprint(parts).slice(0, 16);

function fingerprintOf(auth: EcrAuth): string {
  switch (auth.kind) {
    case 'awsIamUser':
      return credentialFingerprint(['awsIamUser', auth.accessKeyId, auth.secretAccessKey]);
    case 'awsIamRole':
      return credentialFingerprint(['awsIamRole', auth.roleArn, auth.audience]);
    case 'defaultChain':
      return credentialFingerprint(['defaultChain']);
  }
}

export class EcrSource implements Source {
  readonly name = ECR_SOURCE_NAME;
  private readonly opts: EcrSourceOptions;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly policy: SchedulePolicy;
  private readonly log: Logger;
  private readonly fetchToken: EcrTokenFetcher;
  private readonly entries = new Map<string, Entry>();
  private invalid: AgentError[] = [];
  private specs: readonly EcrRegistrySpec[] = [];
  private stored = new Map<string, StoredToken>();
  private emit: ((s: SourceSnapshot) => void) | undefined;
  private started = false;
  private registriesKnown = false;
  private lastPersisted = '';
  private readonly inflight = new Set<Promise<void>>();
  private persistChain: Promise<void> = Promise.resolve();
  private readonly failuresCounter: Counter<'registry' | 'code'> | undefined;

  constructor(opts: EcrSourceOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.policy = opts.policy ?? DEFAULT_POLICY;
    this.log = (opts.logger ?? createLogger('silent')).child({ source: ECR_SOURCE_NAME });
    this.fetchToken = opts.fetchToken ?? createAwsTokenFetcher(opts.aws);
    if (opts.metrics) {
      const entries = this.entries;
      const clock = this.clock;
      new Gauge({
        name: 'nrc_ecr_token_expiry_seconds',
        help: 'Seconds until the ECR token of each registry expires (absent: no valid token).',
        labelNames: ['registry'],
        registers: [opts.metrics],
        collect() {
          this.reset();
          for (const e of entries.values()) {
            if (e.token && e.token.expiresAt > clock.now()) this.set({ registry: e.host }, (e.token.expiresAt - clock.now()) / 1000);
          }
        },
      });
      this.failuresCounter = new Counter({
        name: 'nrc_ecr_refresh_failures_total',
        help: 'Failed ECR token refreshes by registry and error code.',
        labelNames: ['registry', 'code'],
        registers: [opts.metrics],
      });
    }
  }

  /**
   * The ECR registries to serve (from the Registry resources). Call again on any change,
   * including rotated keys: a registry whose credentials changed is refreshed (spread out),
   * keeping its current token meanwhile.
   */
  setRegistries(specs: readonly EcrRegistrySpec[]): void {
    this.specs = specs;
    this.registriesKnown = true;
    if (this.started) this.apply();
  }

  async start(emit: (s: SourceSnapshot) => void): Promise<void> {
    this.emit = emit;
    const { tokens, error } = await this.opts.tokenCache.load();
    if (error) this.log.warn({ file: this.opts.tokenCache.location, reason: error }, 'ignoring the ECR token cache; tokens will be fetched again');
    const now = this.clock.now();
    this.stored = new Map([...tokens].filter(([, t]) => t.expiresAt > now));
    this.started = true;
    this.apply();
  }

  async stop(): Promise<void> {
    this.started = false;
    for (const e of this.entries.values()) this.clearTimers(e);
    await this.idle();
  }

  /** Resolves when no refresh or cache write is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    await this.persistChain;
  }

  status(): EcrRegistryStatus[] {
    const out: EcrRegistryStatus[] = [];
    for (const e of this.entries.values()) {
      out.push({
        host: e.host,
        kind: e.auth.kind,
        ...(e.token ? { expiresAt: new Date(e.token.expiresAt) } : {}),
        ...(e.nextRefreshAt !== undefined ? { nextRefreshAt: new Date(e.nextRefreshAt) } : {}),
        consecutiveFailures: e.failures,
        ...(e.lastError ? { lastError: e.lastError.code } : {}),
      });
    }
    for (const err of this.invalid) out.push({ host: err.subject ?? '', kind: 'invalid', consecutiveFailures: 0, lastError: err.code });
    return out.sort((a, b) => (a.host < b.host ? -1 : 1));
  }

  /** Registry host → fingerprint of the AWS credentials that obtained its current token (one-way; for the broker's Secret). */
  tokenFingerprints(): Map<string, string> {
    const now = this.clock.now();
    const out = new Map<string, string>();
    for (const e of this.entries.values()) if (e.token && e.token.expiresAt > now) out.set(e.host, e.token.fingerprint);
    return out;
  }

  snapshot(): SourceSnapshot {
    const now = this.clock.now();
    const credentials: RegistryCredential[] = [];
    const errors: AgentError[] = [...this.invalid];
    for (const e of [...this.entries.values()].sort((a, b) => (a.host < b.host ? -1 : 1))) {
      if (e.token && e.token.expiresAt > now) {
        credentials.push({
          key: e.host,
          host: e.host,
          username: e.token.username,
          password: e.token.password,
          source: ECR_SOURCE_NAME,
          expiresAt: new Date(e.token.expiresAt),
        });
      }
      if (e.lastError) errors.push(e.lastError);
    }
    // ok stays true: an expired token must leave the node, not be kept as "last good".
    return { source: ECR_SOURCE_NAME, credentials, errors, ok: true };
  }

  private publish(): void {
    if (!this.started || !this.emit) return;
    if (!this.registriesKnown && this.opts.waitForRegistries !== false) return;
    this.emit(this.snapshot());
  }

  /** Reconciles entries with the desired registries. */
  private apply(): void {
    const desired = new Map<string, { parsed: EcrHost; auth: EcrAuth }>();
    const invalid: AgentError[] = [];
    const consider = (rawHost: string, auth: EcrAuth): void => {
      const parsed = parseEcrHost(rawHost);
      if (parsed instanceof AgentError) {
        invalid.push(parsed);
        return;
      }
      if (!desired.has(parsed.host)) desired.set(parsed.host, { parsed, auth });
    };
    for (const spec of this.specs) consider(spec.host, authOf(spec));
    // Explicit Registry resources win over the node's own identity.
    for (const host of this.opts.defaultChainHosts ?? []) consider(host, { kind: 'defaultChain' });
    this.invalid = invalid;
    for (const err of invalid) this.log.warn({ code: err.code, registry: err.subject }, 'not an ECR registry hostname');

    for (const [host, e] of this.entries) {
      if (desired.has(host)) continue;
      this.clearTimers(e);
      e.generation++;
      this.entries.delete(host);
      this.stored.delete(host);
      this.log.info({ registry: host }, 'ECR registry removed');
    }
    const now = this.clock.now();
    for (const [host, { parsed, auth }] of desired) {
      const fingerprint = fingerprintOf(auth);
      let e = this.entries.get(host);
      if (!e) {
        const stored = this.stored.get(host);
        e = {
          host,
          parsed,
          auth,
          fingerprint,
          token: stored && stored.expiresAt > now ? stored : undefined,
          failures: 0,
          lastError: undefined,
          refreshTimer: undefined,
          nextRefreshAt: undefined,
          expiryTimer: undefined,
          generation: 0,
        };
        this.entries.set(host, e);
        if (e.token && e.token.fingerprint === fingerprint) {
          this.log.info({ registry: host, expiresAt: new Date(e.token.expiresAt).toISOString() }, 'reusing the cached ECR token');
          this.scheduleRefresh(e, refreshDelayMs(e.token.expiresAt - now, this.random, this.policy));
        } else {
          this.scheduleRefresh(e, this.firstCallDelay());
        }
        if (e.token) this.scheduleExpiry(e);
        continue;
      }
      e.parsed = parsed;
      e.auth = auth;
      if (e.fingerprint !== fingerprint) {
        // Rotated credentials: keep the current token, fetch a new one soon (spread, since the
        // whole fleet sees the rotation at once), and forget failures of the old credentials.
        e.fingerprint = fingerprint;
        e.generation++;
        e.failures = 0;
        e.lastError = undefined;
        this.log.info({ registry: host }, 'ECR credentials changed; refreshing the token');
        this.scheduleRefresh(e, this.firstCallDelay());
      }
    }
    this.publish();
    this.persist();
  }

  private firstCallDelay(): number {
    return this.opts.newNode
      ? Math.floor(this.random() * this.policy.startupSpreadMinMs)
      : startupDelayMs(this.opts.fleetSize ?? 1, this.random, this.policy);
  }

  private clearTimers(e: Entry): void {
    if (e.refreshTimer !== undefined) this.clock.clearTimer(e.refreshTimer);
    if (e.expiryTimer !== undefined) this.clock.clearTimer(e.expiryTimer);
    e.refreshTimer = undefined;
    e.expiryTimer = undefined;
    e.nextRefreshAt = undefined;
  }

  private scheduleRefresh(e: Entry, delayMs: number): void {
    if (e.refreshTimer !== undefined) this.clock.clearTimer(e.refreshTimer);
    e.nextRefreshAt = this.clock.now() + delayMs;
    e.refreshTimer = this.clock.setTimer(() => {
      e.refreshTimer = undefined;
      e.nextRefreshAt = undefined;
      this.track(this.refresh(e));
    }, delayMs);
  }

  private scheduleExpiry(e: Entry): void {
    if (e.expiryTimer !== undefined) this.clock.clearTimer(e.expiryTimer);
    if (!e.token) return;
    const token = e.token;
    e.expiryTimer = this.clock.setTimer(() => {
      e.expiryTimer = undefined;
      if (e.token !== token) return;
      e.token = undefined;
      this.stored.delete(e.host);
      e.lastError = new AgentError('NRC_E_ECR_TOKEN_EXPIRED', {
        subject: e.host,
        ...(e.lastError ? { detail: `(last refresh error: ${e.lastError.code})` } : {}),
      });
      this.log.error({ registry: e.host, code: e.lastError.code }, 'ECR token expired before a refresh succeeded; removed it');
      this.publish();
      this.persist();
    }, token.expiresAt - this.clock.now());
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async refresh(e: Entry): Promise<void> {
    const generation = e.generation;
    const started = this.clock.now();
    try {
      const token = await this.fetchToken(e.parsed, e.auth);
      if (generation !== e.generation || this.entries.get(e.host) !== e || !this.started) return;
      const now = this.clock.now();
      if (token.expiresAt.getTime() <= now) {
        throw new AgentError('NRC_E_ECR_RESPONSE_INVALID', { subject: e.host, detail: '(the token AWS returned has already expired; check the node clock)' });
      }
      e.token = { username: token.username, password: token.password, expiresAt: token.expiresAt.getTime(), fingerprint: e.fingerprint };
      this.stored.set(e.host, e.token);
      e.failures = 0;
      e.lastError = undefined;
      const delay = refreshDelayMs(e.token.expiresAt - now, this.random, this.policy);
      this.scheduleRefresh(e, delay);
      this.scheduleExpiry(e);
      this.log.info(
        { registry: e.host, expiresAt: token.expiresAt.toISOString(), nextRefreshAt: new Date(now + delay).toISOString(), tookMs: now - started },
        'ECR token refreshed',
      );
      this.publish();
      this.persist();
    } catch (err) {
      if (generation !== e.generation || this.entries.get(e.host) !== e || !this.started) return;
      const error = err instanceof AgentError ? err : new AgentError('NRC_E_ECR_UNAVAILABLE', { subject: e.host, cause: err });
      e.failures++;
      e.lastError = error;
      this.failuresCounter?.inc({ registry: e.host, code: error.code });
      const delay = backoffDelayMs(e.failures, error.code === 'NRC_E_ECR_THROTTLED', this.random, this.policy);
      this.scheduleRefresh(e, delay);
      this.log.warn(
        {
          registry: e.host,
          code: error.code,
          failures: e.failures,
          retryAt: new Date(this.clock.now() + delay).toISOString(),
          ...(e.token ? { currentTokenExpiresAt: new Date(e.token.expiresAt).toISOString() } : {}),
        },
        // The message is built from code, subject and AWS error name only: no secrets.
        error.message,
      );
      this.publish();
    }
  }

  /** Writes the cache; serialized so that an older state never overwrites a newer one. */
  private persist(): void {
    const snapshot = new Map<string, StoredToken>();
    for (const e of this.entries.values()) if (e.token) snapshot.set(e.host, e.token);
    // Tokens of registries not (yet) configured stay until they expire: the Registry list may arrive later.
    const now = this.clock.now();
    for (const [host, t] of this.stored) if (!snapshot.has(host) && !this.entries.has(host) && t.expiresAt > now) snapshot.set(host, t);
    const key = JSON.stringify([...snapshot]);
    if (key === this.lastPersisted) return;
    this.lastPersisted = key;
    this.persistChain = this.persistChain.then(() =>
      this.opts.tokenCache.save(snapshot).catch((err: unknown) => {
        this.log.warn({ file: this.opts.tokenCache.location, errno: (err as NodeJS.ErrnoException).code }, 'could not write the ECR token cache');
      }),
    );
  }
}
