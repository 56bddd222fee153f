// N node agents' Secret watches in ONE process: each watcher is the agent's own
// KubernetesSecretSource (list+watch by name through the agent's KubeClient, its own connections,
// production backoff unless a tuning is given), recording what an operator would look at on its
// node: the credentials it holds (the last good snapshot, as the reconciler keeps it: ok:false
// never replaces it), its watch states and coded errors, when it last synced, every spell without
// credentials. Cheap per watcher (a few small arrays, bounded) so that the same harness serves the
// control-plane trouble suite (200 watchers, test/kubernetes/trouble.test.ts) and the bench
// (`npm run bench -- --only trouble`, 100 to 5,000 watchers).
import { kubeconfigClient, type KubeClient } from '../../src/sources/kube-client.ts';
import type { WatchState, WatchStateEvent, WatchTuning } from '../../src/sources/kubernetes/list-watch.ts';
import { KubernetesSecretSource } from '../../src/sources/kubernetes/secret-source.ts';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import type { FaultProxy } from './fault-proxy.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `key=username:password` of each credential, sorted: what the node would write. */
export function credentialLines(s: SourceSnapshot): string[] {
  return s.credentials.map((c) => `${c.key}=${c.username}:${c.password}`).sort();
}

export class Watcher {
  /** The credentials of the last good snapshot (`key=user:password`, sorted). */
  credentials: readonly string[] = [];
  /** Whether it ever held credentials. */
  everHad = false;
  /** Times a good snapshot took away every credential it held. */
  lost = 0;
  /** Since when it holds none (after having had some); undefined while it holds some. */
  emptySince: number | undefined;
  /** Closed spells without credentials, [from, to] in ms since the epoch. */
  readonly gaps: [number, number][] = [];
  /** Credential changes (bounded): when, and the sorted lines joined by ','. */
  readonly history: { readonly at: number; readonly value: string }[] = [];
  lastSyncAt: number | undefined;
  syncs = 0;
  /** The first good snapshot at or after `markedAt` (WatchFleet.mark): a re-sync. */
  markedAt: number | undefined;
  firstSyncAfterMark: number | undefined;
  /** The first time of each watch state at or after `markedAt`. */
  readonly firstStateAfterMark = new Map<WatchState, number>();
  /** Snapshots with ok:false (kept out of `credentials`, as the reconciler does). */
  okFalse = 0;
  state: WatchState | undefined;
  stateAt = 0;
  readonly stateCounts = new Map<WatchState, number>();
  /** Failed attempts (disconnected, forbidden, gave-up events): when, the error code, the retry delay. */
  readonly failureAt: number[] = [];
  readonly failureCode: string[] = [];
  readonly failureRetryMs: number[] = [];
  maxRetryInMs = 0;
  /** Times it was stopped and started again (a pod restart), keeping what it held. */
  restarts = 0;
  source: KubernetesSecretSource | undefined;

  constructor(
    readonly index: number,
    private readonly keep: number,
  ) {}

  /** True when one of its credentials is exactly `line` (`key=user:password`). */
  has(line: string): boolean {
    return this.credentials.includes(line);
  }

  onSnapshot(s: SourceSnapshot, at: number): void {
    if (!s.ok) {
      this.okFalse++;
      return;
    }
    this.syncs++;
    this.lastSyncAt = at;
    if (this.markedAt !== undefined && this.firstSyncAfterMark === undefined && at >= this.markedAt) this.firstSyncAfterMark = at;
    const next = credentialLines(s);
    const value = next.join(',');
    if (value !== this.credentials.join(',')) {
      if (this.history.length >= this.keep) this.history.splice(0, this.history.length - this.keep + 1);
      this.history.push({ at, value });
    }
    if (next.length === 0 && this.credentials.length > 0) {
      this.lost++;
      this.emptySince = at;
    } else if (next.length > 0 && this.emptySince !== undefined) {
      this.gaps.push([this.emptySince, at]);
      this.emptySince = undefined;
    }
    if (next.length > 0) this.everHad = true;
    this.credentials = next;
  }

  onState(e: WatchStateEvent, at: number): void {
    this.state = e.state;
    this.stateAt = at;
    if (this.markedAt !== undefined && at >= this.markedAt && !this.firstStateAfterMark.has(e.state)) this.firstStateAfterMark.set(e.state, at);
    this.stateCounts.set(e.state, (this.stateCounts.get(e.state) ?? 0) + 1);
    if (e.state === 'disconnected' || e.state === 'forbidden' || e.state === 'gave-up') {
      if (this.failureAt.length >= this.keep) {
        const drop = this.failureAt.length - this.keep + 1;
        this.failureAt.splice(0, drop);
        this.failureCode.splice(0, drop);
        this.failureRetryMs.splice(0, drop);
      }
      this.failureAt.push(at);
      this.failureCode.push(e.error?.code ?? 'none');
      this.failureRetryMs.push(e.retryInMs ?? 0);
      if ((e.retryInMs ?? 0) > this.maxRetryInMs) this.maxRetryInMs = e.retryInMs ?? 0;
    }
  }

  /** Failed attempts in [from, to). */
  failuresBetween(from: number, to: number): number {
    let n = 0;
    for (const t of this.failureAt) if (t >= from && t < to) n++;
    return n;
  }

  /** Error codes of failed attempts in [from, to). */
  codesBetween(from: number, to: number): Set<string> {
    const out = new Set<string>();
    this.failureAt.forEach((t, i) => {
      if (t >= from && t < to) out.add(this.failureCode[i]!);
    });
    return out;
  }

  /** Time in [from, to) during which the credentials it held (lines joined by ',') matched `pred`. */
  msWith(pred: (value: string) => boolean, from: number, to: number): number {
    let ms = 0;
    let value = '';
    let since = from;
    for (const h of this.history) {
      if (h.at <= from) {
        value = h.value;
        continue;
      }
      if (h.at >= to) break;
      if (pred(value)) ms += h.at - since;
      value = h.value;
      since = h.at;
    }
    if (pred(value)) ms += to - since;
    return ms;
  }

  /** Total time without credentials in [from, to) (after having had some). */
  emptyMsBetween(from: number, to: number): number {
    let ms = 0;
    const spells: [number, number][] = [...this.gaps, ...(this.emptySince !== undefined ? [[this.emptySince, to] as [number, number]] : [])];
    for (const [a, b] of spells) ms += Math.max(0, Math.min(b, to) - Math.max(a, from));
    return ms;
  }
}

export interface WatchFleetOptions {
  readonly count: number;
  /** Each watcher's own client (its own connection pool, as one agent per node has). */
  readonly client: (index: number) => KubeClient | Promise<KubeClient>;
  readonly namespace: string;
  /** The Secret every watcher watches by name. */
  readonly name: string;
  /** undefined: the agent's production defaults (backoff 0.5 s doubling to 30 s, watchdog 5 min). */
  readonly tuning?: WatchTuning;
  /** The broker's Secret only, as `run` sets it (--broker-secret-grace-seconds): credentials kept this long after it disappears. */
  readonly absentGraceMs?: number;
  /** Starts spread evenly over this long, as a DaemonSet rollout (default 0: all at once). */
  readonly startSpreadMs?: number;
  /** Failures and credential changes each watcher keeps (default 4,000). */
  readonly keep?: number;
}

/** The agent's own client from a kubeconfig file (src/sources/kube-client.ts kubeconfigClient). */
export async function agentClient(kubeconfig: string): Promise<KubeClient> {
  const c = await kubeconfigClient(kubeconfig);
  if (!c) throw new Error(`${kubeconfig}: needs an exec or auth-provider plugin; the fleet needs a token or certificate`);
  return c;
}

export class WatchFleet {
  readonly watchers: Watcher[];
  private readonly opts: WatchFleetOptions;
  private stopped = false;

  constructor(opts: WatchFleetOptions) {
    this.opts = opts;
    this.watchers = Array.from({ length: opts.count }, (_, i) => new Watcher(i, opts.keep ?? 4000));
  }

  get size(): number {
    return this.watchers.length;
  }

  private async startOne(w: Watcher): Promise<void> {
    const client = await this.opts.client(w.index);
    // Events of a source already replaced (restart) or stopped are not this watcher's any more.
    const mine = (): boolean => w.source === source;
    const source: KubernetesSecretSource = new KubernetesSecretSource({
      kubeConfig: client,
      namespace: this.opts.namespace,
      name: this.opts.name,
      ...(this.opts.tuning ? { tuning: this.opts.tuning } : {}),
      ...(this.opts.absentGraceMs !== undefined ? { absentGraceMs: this.opts.absentGraceMs } : {}),
      onState: (e) => {
        if (mine()) w.onState(e, Date.now());
      },
    });
    w.source = source;
    await source.start((s) => {
      if (mine()) w.onSnapshot(s, Date.now());
    });
  }

  /** Starts every watcher (spread over startSpreadMs). */
  async start(): Promise<void> {
    const spread = this.opts.startSpreadMs ?? 0;
    const t0 = Date.now();
    const n = this.watchers.length;
    const starts: Promise<void>[] = [];
    for (const w of this.watchers) {
      if (this.stopped) break;
      const due = t0 + (n > 1 ? (spread * w.index) / (n - 1) : 0);
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      starts.push(this.startOne(w));
    }
    await Promise.all(starts);
  }

  /** A pod restart: stops watcher `i`'s source and starts a new one, keeping what the node holds. */
  async restart(i: number): Promise<void> {
    const w = this.watchers[i]!;
    const old = w.source;
    w.source = undefined;
    await old?.stop();
    w.restarts++;
    if (!this.stopped) await this.startOne(w);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.watchers.map(async (w) => {
      const s = w.source;
      w.source = undefined;
      await s?.stop();
    }));
  }

  /** Polls until every watcher satisfies `pred`; resolves with the time, or undefined after `timeoutMs`. */
  async waitAll(pred: (w: Watcher) => boolean, timeoutMs: number, intervalMs = 100): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.watchers.every(pred)) return Date.now();
      if (Date.now() >= deadline) return undefined;
      await sleep(intervalMs);
    }
  }

  /** From now on, each watcher records its first good snapshot (Watcher.firstSyncAfterMark). */
  mark(at = Date.now()): void {
    for (const w of this.watchers) {
      w.markedAt = at;
      w.firstSyncAfterMark = undefined;
      w.firstStateAfterMark.clear();
    }
  }

  count(pred: (w: Watcher) => boolean): number {
    return this.watchers.filter(pred).length;
  }

  /** Watcher count per error code of failed attempts in [from, to). */
  codesBetween(from: number, to: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.watchers) for (const c of w.codesBetween(from, to)) out.set(c, (out.get(c) ?? 0) + 1);
    return out;
  }
}

export interface Dist {
  readonly n: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
  readonly mean: number;
}

export function dist(values: readonly number[]): Dist {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number): number => (v.length === 0 ? Number.NaN : v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]!);
  return { n: v.length, p50: at(0.5), p95: at(0.95), max: v.length ? v[v.length - 1]! : Number.NaN, mean: v.length ? v.reduce((a, b) => a + b, 0) / v.length : Number.NaN };
}

const r2 = (x: number): number => Math.round(x * 100) / 100;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const secs = (ms: number): number => Math.round(ms / 100) / 10;

export interface OutageOptions {
  readonly fleet: WatchFleet;
  /** The proxy every watcher connects through: its connection count is the attempt count while down. */
  readonly proxy: FaultProxy;
  /** How long the API server stays stopped. */
  readonly downMs: number;
  /** The end of the outage whose rate is judged (the backoff is at its cap by then), e.g. 120 s. */
  readonly tailMs: number;
  readonly stopApiserver: () => Promise<void>;
  readonly startApiserver: () => Promise<void>;
  /**
   * Called once the API server is ready again: a change every watcher must then see (a broker's
   * write, an admin's PUT); resolves when the change is stored.
   */
  readonly change: () => Promise<void>;
  /** Whether a watcher holds the change. */
  readonly seen: (w: Watcher) => boolean;
  readonly resyncTimeoutMs: number;
  readonly log?: (line: string) => void;
}

export interface OutageResult {
  /** ms since the epoch: API server stopped, started again, ready, the change stored. */
  readonly at: { readonly down: number; readonly up: number; readonly ready: number; readonly changeStored: number };
  readonly watchers: number;
  readonly downSeconds: number;
  readonly tailSeconds: number;
  /** The whole outage, at the proxy: connections (each one an attempt: the upstream is gone, no connection is reused). */
  readonly down: { readonly connections: number; readonly perAgentPerSecond: number; readonly totalPerSecond: number };
  /** The first minute of the outage (the backoff climbing). */
  readonly firstMinute: { readonly connections: number; readonly perAgentPerSecond: number; readonly totalPerSecond: number };
  /** The last `tailMs` of the outage: proxy connections, and failed attempts per watcher as each watcher reported them. */
  readonly tail: { readonly connections: number; readonly perAgentPerSecond: number; readonly totalPerSecond: number; readonly attemptsPerWatcher: Dist; readonly secondsPerAttempt: number };
  /** Largest retry delay any watcher announced (ms): the cap plus nothing. */
  readonly maxRetryInMs: number;
  /** Per-second connection counts over the outage (for a plot). */
  readonly series: readonly number[];
  /** How long startApiserver took (spawn to /readyz 200), ms. */
  readonly restartMs: number;
  /** When the change was stored, ms after the API server was ready. */
  readonly changeStoredMs: number;
  /** From the API server ready to each watcher's watch accepted again (state `connected`), ms. */
  readonly reconnectMs: Dist;
  readonly notReconnected: number;
  /** From the API server ready to each watcher's first snapshot (a relist or the change), ms. */
  readonly resyncMs: Dist;
  readonly notResynced: number;
  /** From the API server ready to each watcher holding the change, ms. */
  readonly seenMs: Dist;
  readonly notSeen: number;
  /** Watchers whose credentials became empty at any time during the outage and the recovery. */
  readonly lostCredentials: number;
  readonly states: Readonly<Record<string, number>>;
}

/**
 * The API server stopped for `downMs` and started again, the watchers behind `proxy` measured
 * through it: the attempt rate while down (whole, first minute, tail), the re-sync after the
 * restart, and whether any watcher lost its credentials.
 */
export async function apiserverOutage(o: OutageOptions): Promise<OutageResult> {
  const { fleet, proxy } = o;
  const log = o.log ?? (() => undefined);
  const n = fleet.size;
  const lostBefore = fleet.watchers.map((w) => w.lost);
  const stateBefore = fleet.watchers.map((w) => new Map(w.stateCounts));
  await o.stopApiserver();
  const downAt = Date.now();
  log(`API server stopped; down for ${secs(o.downMs)} s`);
  // Progress every 30 s, bounded by the outage itself.
  while (Date.now() - downAt < o.downMs) {
    await sleep(Math.min(30_000, o.downMs - (Date.now() - downAt)));
    const el = Date.now() - downAt;
    log(`down ${secs(el)} s: ${proxy.count('connections', downAt, Date.now())} connections so far, last 10 s ${proxy.count('connections', Date.now() - 10_000, Date.now())}`);
  }
  const upAt = Date.now();
  fleet.mark(upAt);
  await o.startApiserver();
  const readyAt = Date.now();
  log(`API server ready after ${readyAt - upAt} ms`);
  await o.change();
  const changeAt = Date.now();
  await fleet.waitAll(o.seen, o.resyncTimeoutMs, 200);

  const rate = (from: number, to: number): { connections: number; perAgentPerSecond: number; totalPerSecond: number } => {
    const connections = proxy.count('connections', from, to);
    const s = (to - from) / 1000;
    return { connections, perAgentPerSecond: r3(connections / n / s), totalPerSecond: r2(connections / s) };
  };
  const tailFrom = upAt - o.tailMs;
  const attempts = fleet.watchers.map((w) => w.failuresBetween(tailFrom, upAt));
  const tailRate = rate(tailFrom, upAt);
  const resync = fleet.watchers.map((w) => w.firstSyncAfterMark);
  const reconnect = fleet.watchers.map((w) => w.firstStateAfterMark.get('connected'));
  const seen = fleet.watchers.map((w) => firstHistoryAfter(w, upAt, o.seen));
  const states: Record<string, number> = {};
  fleet.watchers.forEach((w, i) => {
    for (const [s, c] of w.stateCounts) states[s] = (states[s] ?? 0) + c - (stateBefore[i]!.get(s) ?? 0);
  });
  return {
    at: { down: downAt, up: upAt, ready: readyAt, changeStored: changeAt },
    watchers: n,
    downSeconds: secs(upAt - downAt),
    tailSeconds: secs(o.tailMs),
    down: rate(downAt, upAt),
    firstMinute: rate(downAt, Math.min(upAt, downAt + 60_000)),
    tail: { ...tailRate, attemptsPerWatcher: dist(attempts), secondsPerAttempt: r2(o.tailMs / 1000 / Math.max(1e-9, dist(attempts).mean)) },
    maxRetryInMs: Math.max(0, ...fleet.watchers.map((w) => w.maxRetryInMs)),
    series: proxy.series('connections', downAt, upAt),
    restartMs: readyAt - upAt,
    changeStoredMs: changeAt - readyAt,
    // A watcher can connect while the server is up but not yet ready: counted as 0.
    reconnectMs: dist(reconnect.filter((x): x is number => x !== undefined).map((t) => Math.max(0, t - readyAt))),
    notReconnected: reconnect.filter((x) => x === undefined).length,
    resyncMs: dist(resync.filter((x): x is number => x !== undefined).map((t) => Math.max(0, t - readyAt))),
    notResynced: resync.filter((x) => x === undefined).length,
    seenMs: dist(seen.filter((x): x is number => x !== undefined).map((t) => Math.max(0, t - readyAt))),
    notSeen: seen.filter((x) => x === undefined).length,
    lostCredentials: fleet.watchers.filter((w, i) => w.lost > lostBefore[i]!).length,
    states,
  };
}

function firstHistoryAfter(w: Watcher, t: number, seen: (w: Watcher) => boolean): number | undefined {
  // The change is the newest credential value the watcher holds: the first history entry at or
  // after `t` whose value is the one it holds now.
  const now = w.credentials.join(',');
  return seen(w) ? w.history.find((h) => h.at >= t && h.value === now)?.at : undefined;
}

/** One greppable line. */
export function outageLine(r: OutageResult): string {
  const d = (x: Dist): string => `p50 ${secs(x.p50)} s, p95 ${secs(x.p95)} s, max ${secs(x.max)} s`;
  return (
    `down ${r.downSeconds} s, ${r.watchers} watchers: ${r.down.perAgentPerSecond} req/s per agent, ${r.down.totalPerSecond} req/s total ` +
    `(first minute ${r.firstMinute.perAgentPerSecond} / ${r.firstMinute.totalPerSecond}; last ${r.tailSeconds} s ${r.tail.perAgentPerSecond} / ${r.tail.totalPerSecond}, ` +
    `attempts per watcher mean ${r2(r.tail.attemptsPerWatcher.mean)} max ${r.tail.attemptsPerWatcher.max}, one per ${r.tail.secondsPerAttempt} s; largest retry delay ${secs(r.maxRetryInMs)} s); ` +
    `restart ${secs(r.restartMs)} s to ready, change stored +${secs(r.changeStoredMs)} s; watch accepted again after ready ${d(r.reconnectMs)} (${r.notReconnected} not); ` +
    `first snapshot after ready ${d(r.resyncMs)} (${r.notResynced} not); ` +
    `change seen ${d(r.seenMs)} (${r.notSeen} not); lost credentials: ${r.lostCredentials} watchers`
  );
}
