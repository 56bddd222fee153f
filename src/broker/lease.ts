// Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
// the holder renews every retryPeriod; a candidate takes the Lease only once it has seen the same
// record unchanged for leaseDuration (its own clock, never the holder's timestamps, so clock skew
// between replicas does not matter); every write carries the resourceVersion it read, so two
// candidates can never both win. A leader that cannot renew within renewDeadline stops leading
// (the broker then exits non-zero and its pod restarts, the client-go convention).
// Every duration is on the monotonic clock: an NTP step or a VM resumed with a stale wall clock
// must neither make a standby take a healthy Lease nor let a leader believe it still leads. Wall
// time is only written into the Lease (acquireTime, renewTime), for humans and kubectl.
import type { KubeConfig } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { systemClock, type Clock } from '../model/clock.ts';
import { KubeApiError, kubeClientOf, type KubeClient } from '../sources/kube-client.ts';

/** The Lease's spec as the election reads and writes it (times as RFC 3339 strings). */
export interface LeaseRecord {
  readonly holderIdentity?: string;
  readonly leaseDurationSeconds?: number;
  readonly acquireTime?: string;
  readonly renewTime?: string;
  readonly leaseTransitions?: number;
}

export interface StoredLease {
  readonly record: LeaseRecord;
  readonly resourceVersion: string;
}

/** Thrown by a LeaseStore when the Lease changed since it was read (HTTP 409). */
export class LeaseConflict extends Error {
  constructor() {
    super('the Lease changed since it was read');
    this.name = 'LeaseConflict';
  }
}

/** One Lease object; `create` and `update` throw LeaseConflict on 409. */
export interface LeaseStore {
  readonly description: string;
  get(): Promise<StoredLease | undefined>;
  create(record: LeaseRecord): Promise<StoredLease>;
  update(record: LeaseRecord, resourceVersion: string): Promise<StoredLease>;
}

/** What the broker's writer asks before every write: the fence of its leadership. */
export interface Leadership {
  /**
   * True while this replica may act as the leader: it leads and its last successful renewal
   * started less than renewDeadline ago on the monotonic clock. False after a pause longer than
   * that, even before the late renew timer has run.
   */
  holdsLease(): boolean;
  /** This term's fencing stamp: who leads, and the Lease's leaseTransitions when it took it. */
  term(): { readonly identity: string; readonly transitions: number };
}

export interface ElectionTiming {
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

/** client-go's defaults for controllers. */
export const DEFAULT_ELECTION_TIMING: ElectionTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export interface LeaderElectorOptions {
  readonly store: LeaseStore;
  /** This candidate (the pod's name). */
  readonly identity: string;
  readonly timing?: ElectionTiming;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly logger?: Logger;
  readonly onStartedLeading: () => void;
  /** Called once when leadership is lost (not after stop()). */
  readonly onStoppedLeading: (reason: AgentError) => void;
}

/** MicroTime as the API server writes it (RFC 3339 with microseconds). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

const sameRecord = (a: LeaseRecord | undefined, b: LeaseRecord | undefined): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export class LeaderElector implements Leadership {
  private readonly opts: LeaderElectorOptions;
  private readonly timing: ElectionTiming;
  private readonly clock: Clock;
  private readonly random: () => number;
  private observed: LeaseRecord | undefined;
  /** Monotonic ms when `observed` last changed. */
  private observedAt = 0;
  private resourceVersion: string | undefined;
  private leading = false;
  /** Monotonic ms when the last successful acquire/renew attempt STARTED (its write landed later: conservative). */
  private lastRenewAt = 0;
  /** Set when this leader read the Lease and found another holder: it lost, whatever its clock says. */
  private deposedBy: string | undefined;
  private timer: unknown;
  private stopped = false;
  private busy: Promise<void> = Promise.resolve();

  constructor(opts: LeaderElectorOptions) {
    this.opts = opts;
    this.timing = opts.timing ?? DEFAULT_ELECTION_TIMING;
    if (!(this.timing.leaseDurationMs > this.timing.renewDeadlineMs && this.timing.renewDeadlineMs > this.timing.retryPeriodMs)) {
      throw new RangeError('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  holdsLease(): boolean {
    // renewDeadline, not leaseDuration: the leaseDuration - renewDeadline margin (5 s by default)
    // covers the write that follows this check reaching the API server and the standbys' own
    // reading delay; and it is the same bound at which this elector gives up by itself.
    return this.leading && !this.stopped && this.clock.monotonic() - this.lastRenewAt < this.timing.renewDeadlineMs;
  }

  term(): { readonly identity: string; readonly transitions: number } {
    return { identity: this.opts.identity, transitions: this.observed?.leaseTransitions ?? 0 };
  }

  /** The holder this candidate last saw in the Lease ('' when free). */
  get observedHolder(): string {
    return this.observed?.holderIdentity ?? '';
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops campaigning; a leader gives the Lease up (holder '' and 1 s), so another takes over at once. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    await this.busy;
    if (this.leading && opts.release !== false && this.resourceVersion && this.observed) {
      const now = this.clock.now();
      const released: LeaseRecord = { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: this.observed.leaseTransitions ?? 0 };
      try {
        await this.opts.store.update(released, this.resourceVersion);
        this.opts.logger?.info({ lease: this.opts.store.description }, 'released the Lease');
      } catch (err) {
        this.opts.logger?.warn({ lease: this.opts.store.description, error: (err as Error).name }, 'could not release the Lease; it expires by itself');
      }
    }
    this.leading = false;
  }

  /** One attempt now (tests, and the loop below). */
  tick(): Promise<void> {
    const run = this.busy.then(() => this.attempt());
    this.busy = run.catch(() => undefined);
    return this.busy;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      void this.tick().then(() => {
        // client-go jitters the candidates' retries (factor 1.2); a leader renews on the period.
        const jitter = this.leading ? 0 : Math.floor(this.random() * 0.2 * this.timing.retryPeriodMs);
        this.schedule(this.timing.retryPeriodMs + jitter);
      });
    }, ms);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    const startedAt = this.clock.monotonic();
    // A renew timer that fires late (SIGSTOP, CPU throttling, a frozen VM) may find the Lease
    // someone else's by now: stop leading before any request, never renew (or write) first.
    if (this.leading && startedAt - this.lastRenewAt >= this.timing.renewDeadlineMs) {
      this.lose(`(no renewal for ${Math.round((startedAt - this.lastRenewAt) / 1000)} s: the process was paused or starved)`);
      return;
    }
    let ok: boolean;
    try {
      ok = await this.withDeadline(this.tryAcquireOrRenew(this.clock.now(), startedAt));
    } catch (err) {
      ok = false;
      this.opts.logger?.debug({ lease: this.opts.store.description, error: (err as Error).name }, 'lease attempt failed');
    }
    if (this.stopped) return;
    const now = this.clock.monotonic();
    // An acquisition that took longer than the renew deadline starts no term: the next attempt renews it.
    if (ok && now - startedAt < this.timing.renewDeadlineMs) {
      this.lastRenewAt = startedAt;
      if (!this.leading) {
        this.leading = true;
        this.deposedBy = undefined;
        this.opts.logger?.info({ lease: this.opts.store.description, identity: this.opts.identity }, 'became the leader');
        this.opts.onStartedLeading();
      }
      return;
    }
    if (!this.leading) return;
    if (this.deposedBy !== undefined) this.lose(`(the Lease is held by ${JSON.stringify(this.deposedBy).slice(0, 80)})`);
    else if (now - this.lastRenewAt >= this.timing.renewDeadlineMs) this.lose(`(no renewal for ${Math.round((now - this.lastRenewAt) / 1000)} s)`);
  }

  private lose(detail: string): void {
    this.leading = false;
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    const err = new AgentError('NRC_E_BROKER_LEADERSHIP_LOST', { subject: this.opts.store.description, detail });
    this.opts.logger?.error({ lease: this.opts.store.description, code: err.code }, 'lost leadership');
    this.opts.onStoppedLeading(err);
  }

  /** A leader's request that hangs past its renew deadline counts as a failed renewal. */
  private withDeadline(p: Promise<boolean>): Promise<boolean> {
    if (!this.leading) return p;
    const left = Math.max(0, this.lastRenewAt + this.timing.renewDeadlineMs - this.clock.monotonic());
    return new Promise<boolean>((resolve, reject) => {
      const t = this.clock.setTimer(() => resolve(false), left);
      p.then(
        (v) => {
          this.clock.clearTimer(t);
          resolve(v);
        },
        (e: unknown) => {
          this.clock.clearTimer(t);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /** `wall` is only written into the Lease; `mono` (monotonic) decides. */
  private async tryAcquireOrRenew(wall: number, mono: number): Promise<boolean> {
    const { store, identity } = this.opts;
    const leaseDurationSeconds = Math.ceil(this.timing.leaseDurationMs / 1000);
    const current = await store.get();
    if (!current) {
      const created = await this.guard(store.create({ holderIdentity: identity, leaseDurationSeconds, acquireTime: microTime(wall), renewTime: microTime(wall), leaseTransitions: 0 }));
      return this.took(created);
    }
    if (!sameRecord(current.record, this.observed)) {
      this.observed = current.record;
      this.observedAt = this.clock.monotonic();
    }
    this.resourceVersion = current.resourceVersion;
    const holder = current.record.holderIdentity ?? '';
    // Someone else holds it: only possible after it saw our record unchanged for a whole lease duration.
    if (this.leading && holder !== '' && holder !== identity) {
      this.deposedBy = holder;
      return false;
    }
    const held = current.record.leaseDurationSeconds ?? leaseDurationSeconds;
    if (holder !== '' && holder !== identity && this.observedAt + held * 1000 > mono) return false;
    const mine = holder === identity;
    const next: LeaseRecord = {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: mine && current.record.acquireTime ? current.record.acquireTime : microTime(wall),
      renewTime: microTime(wall),
      leaseTransitions: (current.record.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    return this.took(await this.guard(store.update(next, current.resourceVersion)));
  }

  private async guard(p: Promise<StoredLease>): Promise<StoredLease | undefined> {
    try {
      return await p;
    } catch (err) {
      if (err instanceof LeaseConflict) return undefined;
      throw err;
    }
  }

  private took(stored: StoredLease | undefined): boolean {
    if (!stored) return false;
    this.observed = stored.record;
    this.observedAt = this.clock.monotonic();
    this.resourceVersion = stored.resourceVersion;
    return true;
  }
}

interface LeaseSpecLike {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: unknown;
  renewTime?: unknown;
  leaseTransitions?: number;
}

function recordOf(spec: LeaseSpecLike | undefined): LeaseRecord {
  const time = (v: unknown): string | undefined => (v instanceof Date ? microTime(v.getTime()) : typeof v === 'string' ? v : undefined);
  const s = spec ?? {};
  const acquireTime = time(s.acquireTime);
  const renewTime = time(s.renewTime);
  return {
    ...(s.holderIdentity !== undefined ? { holderIdentity: s.holderIdentity } : {}),
    ...(s.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: s.leaseDurationSeconds } : {}),
    ...(acquireTime ? { acquireTime } : {}),
    ...(renewTime ? { renewTime } : {}),
    ...(s.leaseTransitions !== undefined ? { leaseTransitions: s.leaseTransitions } : {}),
  };
}

export interface LeaseStoreOptions {
  /**
   * Each request's deadline (the whole request: what a half-open connection trips). Default
   * half the default renew deadline; the broker passes half of its own.
   */
  readonly timeoutMs?: number;
}

/**
 * The Lease `namespace/name` through the project's KubeClient (RBAC: leases get, create, update on
 * that name). Every request has a deadline: client-node's own is 300 s, and a standby stuck on a
 * half-open connection for that long has stopped campaigning.
 */
export async function kubernetesLeaseStore(kc: KubeConfig | KubeClient, namespace: string, name: string, opts: LeaseStoreOptions = {}): Promise<LeaseStore> {
  const client = kubeClientOf(kc);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_ELECTION_TIMING.renewDeadlineMs / 2;
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const item = `${collection}/${encodeURIComponent(name)}`;
  interface LeaseObject {
    metadata?: { resourceVersion?: string };
    spec?: LeaseSpecLike;
  }
  const toStored = (l: LeaseObject): StoredLease => ({ record: recordOf(l.spec), resourceVersion: l.metadata?.resourceVersion ?? '' });
  const body = (record: LeaseRecord, resourceVersion?: string): unknown => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) },
    spec: record,
  });
  const conflictOr = (err: unknown): never => {
    if (err instanceof KubeApiError && err.code === 409) throw new LeaseConflict();
    throw err instanceof Error ? err : new Error(String(err));
  };
  return {
    description: `leases ${namespace}/${name}`,
    async get() {
      try {
        return toStored(await client.request<LeaseObject>('GET', item, { timeoutMs }));
      } catch (err) {
        if (err instanceof KubeApiError && err.code === 404) return undefined;
        throw err;
      }
    },
    async create(record) {
      return client.request<LeaseObject>('POST', collection, { body: body(record), timeoutMs }).then(toStored, conflictOr);
    },
    async update(record, resourceVersion) {
      return client.request<LeaseObject>('PUT', item, { body: body(record, resourceVersion), timeoutMs }).then(toStored, conflictOr);
    },
  };
}
