// Section 5: GetAuthorizationToken calls of a whole fleet against one account and region,
// simulated with the ECR source's own scheduling functions (test/support/ecr-fleet-sim.ts).
import { simulateFleet, type FleetSimResult } from '../../test/support/ecr-fleet-sim.ts';
import { now, round } from './lib.ts';

export interface FleetRow extends FleetSimResult {
  readonly agents: number;
  readonly simulationMs: number;
}

export interface FleetResult {
  readonly hours: number;
  readonly rows: FleetRow[];
  readonly targetPeak: number;
  /** "A few minutes": the longest gap without a valid token we accept. */
  readonly targetMaxGapSeconds: number;
  readonly notes: string[];
}

export function fleetSection(sizes: readonly number[], hours: number): FleetResult {
  const rows: FleetRow[] = [];
  for (const agents of sizes) {
    const t0 = now();
    const r = simulateFleet({ nodes: agents, hours, seed: 7 });
    rows.push({
      agents,
      peakCallsPerSecond: r.peakCallsPerSecond,
      meanCallsPerSecond: round(r.meanCallsPerSecond, 3),
      secondsUntilAllHaveToken: round(r.secondsUntilAllHaveToken, 1),
      maxSecondsWithoutValidToken: round(r.maxSecondsWithoutValidToken, 1),
      totalCalls: r.totalCalls,
      throttledCalls: r.throttledCalls,
      simulationMs: round(now() - t0, 0),
    });
  }
  return { hours, rows, targetPeak: 20, targetMaxGapSeconds: 300, notes: [] };
}
