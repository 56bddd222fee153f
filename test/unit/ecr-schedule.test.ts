import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_POLICY, HOUR, MINUTE, SECOND, backoffDelayMs, refreshDelayMs, startupSpreadMs } from '../../src/sources/ecr/schedule.ts';
import { seededRandom, simulateBrokerFleet, simulateFleet } from '../support/ecr-fleet-sim.ts';

describe('refresh timing', () => {
  it('refreshes a fresh 12 h token after about 6 h (± 10 %)', () => {
    expect(refreshDelayMs(12 * HOUR, () => 0.5)).toBe(6 * HOUR);
    expect(refreshDelayMs(12 * HOUR, () => 0)).toBe(5.4 * HOUR);
    expect(refreshDelayMs(12 * HOUR, () => 0.999999)).toBeGreaterThan(6.59 * HOUR);
  });

  it('never refreshes later than 1 h before expiry, nor after it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 48 * HOUR }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (remaining, r) => {
        const d = refreshDelayMs(remaining, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(remaining);
        if (remaining > HOUR) expect(d).toBeLessThanOrEqual(remaining - HOUR);
      }),
    );
  });

  it('refreshes a token inside the last hour within 5 minutes', () => {
    expect(refreshDelayMs(30 * MINUTE, () => 0.99)).toBeLessThanOrEqual(5 * MINUTE);
    expect(refreshDelayMs(0, () => 0.5)).toBe(0);
  });
});

describe('backoff after failures', () => {
  it('doubles per failure up to the cap, with jitter in [d/2, d)', () => {
    expect(backoffDelayMs(1, false, () => 0)).toBe(2.5 * SECOND);
    expect(backoffDelayMs(2, false, () => 0)).toBe(5 * SECOND);
    expect(backoffDelayMs(3, false, () => 0.999)).toBeLessThan(20 * SECOND);
    expect(backoffDelayMs(50, false, () => 0.999)).toBeLessThan(DEFAULT_POLICY.backoffCapMs);
    expect(backoffDelayMs(50, false, () => 0)).toBe(DEFAULT_POLICY.backoffCapMs / 2);
  });

  it('backs off further when throttled', () => {
    for (let n = 1; n < 10; n++) expect(backoffDelayMs(n, true, () => 0.5)).toBeGreaterThan(backoffDelayMs(n, false, () => 0.5));
  });
});

describe('startup spread', () => {
  it('grows with the fleet so that the fleet stays under its target rate, within bounds', () => {
    expect(startupSpreadMs(1)).toBe(10 * SECOND);
    expect(startupSpreadMs(600)).toBe(100 * SECOND);
    expect(startupSpreadMs(1_000_000)).toBe(30 * MINUTE);
  });
});

describe('simulateFleet', () => {
  it('keeps 10,000 agents starting together under 20 calls/s, all served within the spread, no token lapses', () => {
    const r = simulateFleet({ nodes: 10_000, hours: 24, seed: 7 });
    expect(r.peakCallsPerSecond).toBeLessThan(20);
    expect(r.throttledCalls).toBe(0);
    expect(r.secondsUntilAllHaveToken).toBeLessThanOrEqual(startupSpreadMs(10_000) / SECOND);
    expect(r.maxSecondsWithoutValidToken).toBe(0);
    // About two refreshes per node per 12 h token plus the first call.
    expect(r.totalCalls).toBeGreaterThan(10_000 * 4);
    expect(r.totalCalls).toBeLessThan(10_000 * 6);
  });

  it('a small cluster gets its tokens within seconds', () => {
    const r = simulateFleet({ nodes: 20, hours: 1, seed: 1 });
    expect(r.secondsUntilAllHaveToken).toBeLessThanOrEqual(10);
  });

  it('shows the throttle when agents underestimate the fleet: calls are refused, backoff still serves everyone', () => {
    const r = simulateFleet({ nodes: 5_000, hours: 2, seed: 3, fleetSizeHint: 10 });
    expect(r.peakCallsPerSecond).toBeGreaterThan(20);
    expect(r.throttledCalls).toBeGreaterThan(0);
    expect(r.secondsUntilAllHaveToken).toBeLessThan(2 * 3600);
  });

  it('is deterministic for a seed', () => {
    expect(simulateFleet({ nodes: 500, hours: 13, seed: 42 })).toEqual(simulateFleet({ nodes: 500, hours: 13, seed: 42 }));
  });

  it('reports the lapse when tokens expire before a successful refresh (lifetime shorter than the margin)', () => {
    // 30-minute tokens are inside the 1 h margin from the start: refreshed within minutes, never lapsing.
    const r = simulateFleet({ nodes: 10, hours: 3, seed: 1, tokenLifetimeMs: 30 * MINUTE });
    expect(r.maxSecondsWithoutValidToken).toBe(0);
    // A quota of almost nothing: most nodes' tokens lapse.
    const starved = simulateFleet({ nodes: 200, hours: 3, seed: 1, tokenLifetimeMs: 30 * MINUTE, ratePerSecond: 0.01, burst: 1 });
    expect(starved.maxSecondsWithoutValidToken).toBeGreaterThan(0);
  });
});

it('seededRandom is in [0, 1) and reproducible', () => {
  const a = seededRandom(5);
  const b = seededRandom(5);
  for (let i = 0; i < 1000; i++) {
    const x = a();
    expect(x).toBe(b());
    expect(x).toBeGreaterThanOrEqual(0);
    expect(x).toBeLessThan(1);
  }
});

describe('simulateBrokerFleet (issue 15: one caller per cluster)', () => {
  const base = { nodes: 10_000, hours: 24, seed: 7, fanoutMsPerWatcher: 0.05, nodeApplyMs: 300, outageHours: 5 };

  it('ECR calls per day = registries × refreshes per day, whatever the fleet size', () => {
    const one = simulateBrokerFleet({ ...base, registries: 1 });
    const ten = simulateBrokerFleet({ ...base, registries: 10 });
    const small = simulateBrokerFleet({ ...base, nodes: 10, registries: 1 });
    // About half-life refreshes of 12 h tokens: 4-5 a day, not 44,000.
    expect(one.refreshesPerDayPerRegistry).toBeGreaterThanOrEqual(3);
    expect(one.refreshesPerDayPerRegistry).toBeLessThanOrEqual(6);
    expect(ten.ecrCallsPerDay).toBeCloseTo(10 * ten.refreshesPerDayPerRegistry, 6);
    expect(small.ecrCallsPerDay).toBe(one.ecrCallsPerDay);
  });

  it('10,000 nodes hold the token within 60 s of the write, never lapse, and survive a 5 h broker outage', () => {
    const r = simulateBrokerFleet({ ...base, registries: 10 });
    expect(r.secondsUntilAllNodesHaveToken).toBeLessThan(60);
    expect(r.maxSecondsWithoutValidToken).toBe(0);
    expect(r.minSecondsLeftAfterOutage).toBeGreaterThan(0);
    // An outage longer than what is left of the token is reported as a lapse.
    expect(simulateBrokerFleet({ ...base, registries: 10, outageHours: 12 }).minSecondsLeftAfterOutage).toBeLessThan(0);
  });
});
