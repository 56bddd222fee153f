// A pure, deterministic simulation of a fleet of agents sharing one account's ECR quota. It
// drives the same scheduling functions as the ECR source (src/sources/ecr/schedule.ts) against a token bucket
// that models AWS's throttle, so a benchmark can report the fleet's peak call rate.
import { DEFAULT_POLICY, HOUR, SECOND, backoffDelayMs, refreshDelayMs, startupDelayMs, type Random, type SchedulePolicy } from '../../src/sources/ecr/schedule.ts';

/** A seeded PRNG (mulberry32) for tests and the simulation. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FleetSimOptions {
  readonly nodes: number;
  readonly hours: number;
  readonly seed: number;
  /** What each agent believes the fleet size is (drives the startup spread); default `nodes`. */
  readonly fleetSizeHint?: number;
  readonly policy?: SchedulePolicy;
  /** AWS's GetAuthorizationToken quota per account and region. */
  readonly ratePerSecond?: number;
  readonly burst?: number;
  readonly tokenLifetimeMs?: number;
}

export interface FleetSimResult {
  /** Most calls (successful or throttled) in any one-second interval. */
  readonly peakCallsPerSecond: number;
  /** All calls divided by the simulated seconds. */
  readonly meanCallsPerSecond: number;
  /** When the last node got its first token (Infinity if one never did). */
  readonly secondsUntilAllHaveToken: number;
  /** Longest time any node spent without a valid token after it first had one. */
  readonly maxSecondsWithoutValidToken: number;
  readonly totalCalls: number;
  readonly throttledCalls: number;
}

interface NodeState {
  expiresAt: number;
  failures: number;
  firstTokenAt: number;
  gapStart: number;
  maxGap: number;
}

/** A binary min-heap of (time, node) events. */
class EventQueue {
  private readonly times: number[] = [];
  private readonly ids: number[] = [];
  get size(): number {
    return this.times.length;
  }
  push(time: number, id: number): void {
    this.times.push(time);
    this.ids.push(id);
    let i = this.times.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.times[p]! <= this.times[i]!) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.times[0]!, this.ids[0]!];
    const lastT = this.times.pop()!;
    const lastId = this.ids.pop()!;
    if (this.times.length > 0) {
      this.times[0] = lastT;
      this.ids[0] = lastId;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.times.length && this.times[l]! < this.times[m]!) m = l;
        if (r < this.times.length && this.times[r]! < this.times[m]!) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
  private swap(a: number, b: number): void {
    [this.times[a], this.times[b]] = [this.times[b]!, this.times[a]!];
    [this.ids[a], this.ids[b]] = [this.ids[b]!, this.ids[a]!];
  }
}

export function simulateFleet(opts: FleetSimOptions): FleetSimResult {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const rate = opts.ratePerSecond ?? 20;
  const burst = opts.burst ?? 200;
  const lifetime = opts.tokenLifetimeMs ?? 12 * HOUR;
  const endMs = opts.hours * HOUR;
  const random = seededRandom(opts.seed);
  const fleetSize = opts.fleetSizeHint ?? opts.nodes;

  const nodes: NodeState[] = [];
  const queue = new EventQueue();
  for (let i = 0; i < opts.nodes; i++) {
    nodes.push({ expiresAt: -1, failures: 0, firstTokenAt: -1, gapStart: -1, maxGap: 0 });
    queue.push(startupDelayMs(fleetSize, random, policy), i);
  }

  let bucket = burst;
  let bucketAt = 0;
  const perSecond = new Map<number, number>();
  let totalCalls = 0;
  let throttledCalls = 0;

  while (queue.size > 0) {
    const [t, id] = queue.pop();
    if (t > endMs) break;
    const node = nodes[id]!;
    // The node's token lapsed before this call: that gap counts as time without a token.
    if (node.expiresAt >= 0 && node.expiresAt <= t && node.gapStart < 0) node.gapStart = node.expiresAt;

    bucket = Math.min(burst, bucket + ((t - bucketAt) / SECOND) * rate);
    bucketAt = t;
    totalCalls++;
    const sec = Math.floor(t / SECOND);
    perSecond.set(sec, (perSecond.get(sec) ?? 0) + 1);

    if (bucket >= 1) {
      bucket -= 1;
      if (node.firstTokenAt < 0) node.firstTokenAt = t;
      if (node.gapStart >= 0) {
        node.maxGap = Math.max(node.maxGap, t - node.gapStart);
        node.gapStart = -1;
      }
      node.failures = 0;
      node.expiresAt = t + lifetime;
      queue.push(t + refreshDelayMs(lifetime, random, policy), id);
    } else {
      throttledCalls++;
      node.failures++;
      queue.push(t + backoffDelayMs(node.failures, true, random, policy), id);
    }
  }

  let peak = 0;
  for (const n of perSecond.values()) peak = Math.max(peak, n);
  let allHave = 0;
  let maxGap = 0;
  for (const node of nodes) {
    allHave = node.firstTokenAt < 0 ? Infinity : Math.max(allHave, node.firstTokenAt);
    let gap = node.maxGap;
    // A gap still open at the end of the simulation counts too.
    const openFrom = node.gapStart >= 0 ? node.gapStart : node.expiresAt >= 0 && node.expiresAt < endMs ? node.expiresAt : -1;
    if (openFrom >= 0) gap = Math.max(gap, endMs - openFrom);
    maxGap = Math.max(maxGap, gap);
  }
  return {
    peakCallsPerSecond: peak,
    meanCallsPerSecond: totalCalls / Math.max(1, endMs / SECOND),
    secondsUntilAllHaveToken: allHave / SECOND,
    maxSecondsWithoutValidToken: maxGap / SECOND,
    totalCalls,
    throttledCalls,
  };
}

export interface BrokerFleetOptions {
  readonly nodes: number;
  readonly registries: number;
  readonly hours: number;
  readonly seed: number;
  /** The API server's cost per watcher of one event (measured: see scripts/bench/fleet.ts), ms. */
  readonly fanoutMsPerWatcher: number;
  /** A node agent's Secret event → config.json written (its debounce + apply), ms. */
  readonly nodeApplyMs: number;
  /** The broker's own debounce + Secret write, ms. */
  readonly brokerWriteMs?: number;
  /** The broker is down this long, starting at the worst moment: just before a refresh was due. */
  readonly outageHours: number;
  readonly policy?: SchedulePolicy;
  readonly tokenLifetimeMs?: number;
}

export interface BrokerFleetResult {
  /** GetAuthorizationToken calls of the one broker, per simulated day. */
  readonly ecrCallsPerDay: number;
  /** registries × refreshes per day per registry (the refresh schedule's own count). */
  readonly refreshesPerDayPerRegistry: number;
  /** After a broker write, when the last of the nodes holds the new token. */
  readonly secondsUntilAllNodesHaveToken: number;
  /** Longest a node held no valid token in the simulated hours (outage excluded). */
  readonly maxSecondsWithoutValidToken: number;
  /** Broker down for outageHours from the worst moment: the least validity any node's token had left when the broker's next token reached it (negative: a lapse). */
  readonly minSecondsLeftAfterOutage: number;
}

/**
 * The broker design: ONE caller per cluster refreshes each registry's token (the ECR source's own
 * refresh function), writes the Secret, and the API server fans the change out to every node's
 * watch. Fan-out is modelled as a serial cost per watcher (the last watcher waits for all before
 * it), plus the agent's own apply time: both measured, not assumed (scripts/bench/fleet.ts).
 */
export function simulateBrokerFleet(opts: BrokerFleetOptions): BrokerFleetResult {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const lifetime = opts.tokenLifetimeMs ?? 12 * HOUR;
  const random = seededRandom(opts.seed);
  const endMs = opts.hours * HOUR;
  const writeMs = opts.brokerWriteMs ?? 250;
  const propagationMs = writeMs + opts.nodes * opts.fanoutMsPerWatcher + opts.nodeApplyMs;

  let calls = 0;
  let maxGap = 0;
  let minLeft = Infinity;
  for (let r = 0; r < opts.registries; r++) {
    // A new leader without a cached token calls at once (no fleet spread: one caller).
    let t = 0;
    let nodeExpiry = -1;
    while (t <= endMs) {
      calls++;
      const arrives = t + propagationMs;
      if (nodeExpiry >= 0 && arrives > nodeExpiry) maxGap = Math.max(maxGap, arrives - nodeExpiry);
      nodeExpiry = t + lifetime;
      t += refreshDelayMs(lifetime, random, policy);
    }
    // Outage: the broker dies right before the refresh that was due at `t`; it comes back
    // outageHours later, reads the token back from its Secret and refreshes on its schedule.
    const tokenIssuedAt = nodeExpiry - lifetime;
    const downAt = Math.max(t, tokenIssuedAt);
    const backAt = downAt + opts.outageHours * HOUR;
    const remaining = nodeExpiry - backAt;
    const refreshAt = backAt + (remaining > 0 ? refreshDelayMs(remaining, random, policy) : 0);
    minLeft = Math.min(minLeft, nodeExpiry - (refreshAt + propagationMs));
  }
  const days = opts.hours / 24;
  const ecrCallsPerDay = calls / days;
  return {
    ecrCallsPerDay,
    refreshesPerDayPerRegistry: ecrCallsPerDay / opts.registries,
    secondsUntilAllNodesHaveToken: propagationMs / SECOND,
    maxSecondsWithoutValidToken: maxGap / SECOND,
    minSecondsLeftAfterOutage: minLeft / SECOND,
  };
}
