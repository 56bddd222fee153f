// The Lease election with a manual clock and an in-memory Lease that behaves like the API server
// (resourceVersion checked on every write, 409 on a stale one).
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../src/errors.ts';
import { DEFAULT_ELECTION_TIMING, LeaderElector, LeaseConflict, microTime, type LeaseRecord, type LeaseStore, type StoredLease } from '../../src/broker/lease.ts';
import { ManualClock } from '../support/manual-clock.ts';

class MemoryLease implements LeaseStore {
  readonly description = 'leases okteto/test';
  stored: StoredLease | undefined;
  private rv = 1;
  /** While set, every request fails (an unreachable API server). */
  down = false;
  writes = 0;
  get(): Promise<StoredLease | undefined> {
    return this.down ? Promise.reject(new Error('ECONNREFUSED')) : Promise.resolve(this.stored);
  }
  create(record: LeaseRecord): Promise<StoredLease> {
    if (this.down) return Promise.reject(new Error('ECONNREFUSED'));
    if (this.stored) return Promise.reject(new LeaseConflict());
    return Promise.resolve(this.save(record));
  }
  update(record: LeaseRecord, resourceVersion: string): Promise<StoredLease> {
    if (this.down) return Promise.reject(new Error('ECONNREFUSED'));
    if (this.stored?.resourceVersion !== resourceVersion) return Promise.reject(new LeaseConflict());
    return Promise.resolve(this.save(record));
  }
  private save(record: LeaseRecord): StoredLease {
    this.writes++;
    this.stored = { record, resourceVersion: String(++this.rv) };
    return this.stored;
  }
}

interface Candidate {
  readonly elector: LeaderElector;
  readonly events: string[];
  lost?: AgentError;
}

function candidate(store: LeaseStore, clock: ManualClock, identity: string): Candidate {
  const c: Candidate = {
    events: [],
    elector: new LeaderElector({
      store,
      identity,
      clock,
      random: () => 0.5,
      onStartedLeading: () => c.events.push('started'),
      onStoppedLeading: (reason) => {
        c.events.push('stopped');
        c.lost = reason;
      },
    }),
  };
  return c;
}

/** Advances the clock in small steps, letting each step's promises settle. */
async function run(clock: ManualClock, ms: number, step = 250): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    for (let i = 0; i < 10; i++) await Promise.resolve();
  }
}

/** broker-a leads a fresh Lease, then broker-b joins as the standby; `ms` of renewals follow. */
async function leaderAndStandby(ms: number): Promise<{ clock: ManualClock; lease: MemoryLease; a: Candidate; b: Candidate }> {
  const clock = new ManualClock();
  const lease = new MemoryLease();
  const a = candidate(lease, clock, 'broker-a');
  const b = candidate(lease, clock, 'broker-b');
  a.elector.start();
  await run(clock, 500);
  b.elector.start();
  await run(clock, ms);
  return { clock, lease, a, b };
}

describe('LeaderElector (client-go semantics)', () => {
  it('the first candidate takes a free Lease; the second stands by while the holder renews', async () => {
    const { clock, lease, a, b } = await leaderAndStandby(60_000);
    expect(a.elector.isLeader).toBe(true);
    expect(b.elector.isLeader).toBe(false);
    expect(b.elector.observedHolder).toBe('broker-a');
    expect(lease.stored?.record).toMatchObject({ holderIdentity: 'broker-a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    // Renewed every retry period (2 s): about 30 writes in a minute.
    expect(lease.writes).toBeGreaterThanOrEqual(25);
  });

  it('a killed leader (no release) is replaced after the lease duration, well within 30 s', async () => {
    const { clock, lease, a, b } = await leaderAndStandby(5_000);
    await a.elector.stop({ release: false }); // SIGKILL: it just stops renewing
    const killedAt = clock.now();
    let tookOverAt: number | undefined;
    for (let i = 0; i < 120 && tookOverAt === undefined; i++) {
      await run(clock, 250);
      if (b.elector.isLeader) tookOverAt = clock.now();
    }
    expect(tookOverAt).toBeDefined();
    const waited = tookOverAt! - killedAt;
    // It must wait the full lease duration (15 s) from when it last saw a change, and not much more.
    expect(waited).toBeGreaterThanOrEqual(DEFAULT_ELECTION_TIMING.leaseDurationMs - DEFAULT_ELECTION_TIMING.retryPeriodMs);
    expect(waited).toBeLessThanOrEqual(DEFAULT_ELECTION_TIMING.leaseDurationMs + 2 * DEFAULT_ELECTION_TIMING.retryPeriodMs + 500);
    expect(lease.stored?.record).toMatchObject({ holderIdentity: 'broker-b', leaseTransitions: 1 });
  });

  it('a leader stopping gracefully releases the Lease: the other takes over within one retry period', async () => {
    const { clock, lease, a, b } = await leaderAndStandby(3_000);
    await a.elector.stop();
    expect(lease.stored?.record.holderIdentity).toBe('');
    await run(clock, DEFAULT_ELECTION_TIMING.retryPeriodMs * 1.2 + 500);
    expect(b.elector.isLeader).toBe(true);
    expect(a.events).toEqual(['started']); // a stop() is not a loss
  });

  it('a leader that cannot renew within the renew deadline stops leading with NRC_E_BROKER_LEADERSHIP_LOST, before anyone else may take over', async () => {
    const clock = new ManualClock();
    const lease = new MemoryLease();
    const a = candidate(lease, clock, 'broker-a');
    a.elector.start();
    await run(clock, 2_000);
    expect(a.elector.isLeader).toBe(true);
    lease.down = true;
    const downAt = clock.now();
    await run(clock, DEFAULT_ELECTION_TIMING.renewDeadlineMs + DEFAULT_ELECTION_TIMING.retryPeriodMs);
    expect(a.events).toEqual(['started', 'stopped']);
    expect(a.lost?.code).toBe('NRC_E_BROKER_LEADERSHIP_LOST');
    expect(a.elector.isLeader).toBe(false);
    // It gave up before the lease could expire for the others: never two leaders.
    expect(clock.now() - downAt).toBeLessThan(DEFAULT_ELECTION_TIMING.leaseDurationMs);
  });

  it('two candidates racing for a free Lease: exactly one wins (the other gets a conflict)', async () => {
    const clock = new ManualClock();
    const lease = new MemoryLease();
    const a = candidate(lease, clock, 'broker-a');
    const b = candidate(lease, clock, 'broker-b');
    await Promise.all([a.elector.tick(), b.elector.tick()]);
    expect([a.elector.isLeader, b.elector.isLeader].filter(Boolean)).toHaveLength(1);
  });

  it('ignores the holder\'s timestamps (clock skew): a Lease renewed "in the past" still counts as held while it changes', async () => {
    const clock = new ManualClock();
    const lease = new MemoryLease();
    // Another replica whose clock is an hour behind keeps renewing.
    let renewals = 0;
    const skewed = (): void => {
      lease.stored = { record: { holderIdentity: 'skewed', leaseDurationSeconds: 15, renewTime: new Date(clock.now() - 3_600_000).toISOString(), leaseTransitions: renewals++ }, resourceVersion: `s${renewals}` };
    };
    skewed();
    const b = candidate(lease, clock, 'broker-b');
    b.elector.start();
    for (let i = 0; i < 30; i++) {
      await run(clock, 2_000);
      skewed();
    }
    expect(b.elector.isLeader).toBe(false);
  });

  it('a wall-clock jump forward on a standby (NTP step) does not make it take a healthy Lease that is being renewed', async () => {
    const clock = new ManualClock();
    const lease = new MemoryLease();
    // A holder that renews every 7 s, well within its 15 s lease: the standby (polling every
    // ~2.2 s) sees the same record on consecutive polls between two renewals.
    let renewals = 0;
    const renew = (): void => {
      lease.stored = { record: { holderIdentity: 'broker-a', leaseDurationSeconds: 15, renewTime: microTime(clock.now()), leaseTransitions: 0 }, resourceVersion: `a${++renewals}` };
    };
    const b = candidate(lease, clock, 'broker-b');
    b.elector.start();
    for (let i = 0; i < 10; i++) {
      renew();
      await run(clock, 2_500); // the standby has seen this renewal
      if (i === 2) clock.step(3_600_000); // the wall clock jumps an hour ahead
      await run(clock, 4_500); // and polls again before the next one
      expect(b.elector.isLeader, `took a healthy Lease after renewal ${i}`).toBe(false);
    }
    expect(b.elector.observedHolder).toBe('broker-a');
  });

  it('a wall-clock jump backward on a leader that cannot renew does not let it believe it still leads past the renew deadline', async () => {
    const clock = new ManualClock();
    const lease = new MemoryLease();
    const a = candidate(lease, clock, 'broker-a');
    a.elector.start();
    await run(clock, 2_000);
    expect(a.elector.holdsLease()).toBe(true);
    lease.down = true;
    clock.step(-3_600_000); // the wall clock goes back an hour
    await run(clock, DEFAULT_ELECTION_TIMING.renewDeadlineMs + DEFAULT_ELECTION_TIMING.retryPeriodMs);
    expect(a.elector.holdsLease()).toBe(false);
    expect(a.events).toEqual(['started', 'stopped']);
    expect(a.lost?.code).toBe('NRC_E_BROKER_LEADERSHIP_LOST');
    expect(a.elector.isLeader).toBe(false);
  });

  it('a leader that reads the Lease held by another replica stops leading at once (it was deposed while it could not see it)', async () => {
    const { clock, lease, a } = await leaderAndStandby(3_000);
    // broker-c took the Lease between two renewals (as if broker-a had been away a lease duration).
    lease.stored = { record: { holderIdentity: 'broker-c', leaseDurationSeconds: 15, leaseTransitions: 1 }, resourceVersion: 'c1' };
    await run(clock, DEFAULT_ELECTION_TIMING.retryPeriodMs + 250);
    expect(a.events).toEqual(['started', 'stopped']);
    expect(a.lost?.message).toContain('broker-c');
  });

  it('refuses timings that break the protocol', () => {
    expect(() => new LeaderElector({ store: new MemoryLease(), identity: 'x', timing: { leaseDurationMs: 10, renewDeadlineMs: 10, retryPeriodMs: 2 }, onStartedLeading: () => {}, onStoppedLeading: () => {} })).toThrow(RangeError);
  });
});
