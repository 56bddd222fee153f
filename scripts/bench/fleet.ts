// Section 5: GetAuthorizationToken calls of a whole fleet against one account and region,
// simulated with the ECR source's own scheduling functions (test/support/ecr-fleet-sim.ts): today's
// per-node design (every agent calls AWS) next to the broker design (one caller per cluster, the
// Secret fanned out to every node's watch), in the same run.
import { get, type ClientRequest } from 'node:http';
import { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { simulateBrokerFleet, simulateFleet, type BrokerFleetResult, type FleetSimResult } from '../../test/support/ecr-fleet-sim.ts';
import { now, round } from './lib.ts';

export interface FleetRow extends FleetSimResult {
  readonly agents: number;
  readonly simulationMs: number;
}

export interface BrokerRow extends BrokerFleetResult {
  readonly agents: number;
  readonly registries: number;
}

export interface FleetResult {
  readonly hours: number;
  readonly rows: FleetRow[];
  readonly brokerRows: BrokerRow[];
  /** Measured: API-server cost per watcher of one Secret event (fake server, raw watches). */
  readonly fanoutMsPerWatcher: number;
  readonly fanoutWatchers: number;
  readonly nodeApplyMs: number;
  readonly outageHours: number;
  readonly targetPeak: number;
  /** "A few minutes": the longest gap without a valid token we accept. */
  readonly targetMaxGapSeconds: number;
  /** Broker design: every node holds the new token within this many seconds of the broker's write. */
  readonly targetBrokerPropagationSeconds: number;
  readonly notes: string[];
}

/** The agent's Secret event → config.json written, at p95 (section 1: 286 ms with the default 200 ms debounce), rounded up. */
export const NODE_APPLY_MS = 300;

/**
 * Opens `watchers` plain HTTP watches of one Secret (by name, as the agents watch it) on the fake
 * API server, changes the Secret, and measures when the LAST watcher has the event: divided by the
 * watchers, the server's cost per watcher, which the simulation multiplies by the fleet size.
 */
export async function measureFanout(watchers: number): Promise<number> {
  const api = new FakeApiServer();
  await api.start();
  const reqs: ClientRequest[] = [];
  try {
    api.putDockerConfigSecret('okteto', 'node-registry-credentials-broker', { auths: {} });
    const rv = api.resourceVersion;
    let got = 0;
    let lastAt = 0;
    let connected = 0;
    const allConnected = new Promise<void>((resolveConnected) => {
      for (let i = 0; i < watchers; i++) {
        const req = get(`${api.url}/api/v1/namespaces/okteto/secrets?watch=true&fieldSelector=metadata.name%3Dnode-registry-credentials-broker&resourceVersion=${rv}`, { agent: false }, (res) => {
          if (++connected === watchers) resolveConnected();
          res.on('data', () => {
            got++;
            lastAt = now();
          });
        });
        reqs.push(req);
      }
    });
    await allConnected;
    await new Promise((r) => setTimeout(r, 200));
    const t0 = now();
    api.putDockerConfigSecret('okteto', 'node-registry-credentials-broker', { auths: { 'x.example.com': { auth: Buffer.from('a:b').toString('base64') } } });
    const deadline = Date.now() + 30_000;
    while (got < watchers && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (got < watchers) throw new Error(`only ${got} of ${watchers} watchers got the event`);
    return (lastAt - t0) / watchers;
  } finally {
    for (const r of reqs) r.destroy();
    await api.stop();
  }
}

export async function fleetSection(sizes: readonly number[], hours: number, registries: readonly number[] = [1, 10]): Promise<FleetResult> {
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
  const fanoutWatchers = 1000;
  const fanoutMsPerWatcher = await measureFanout(fanoutWatchers);
  const outageHours = 5;
  const brokerRows: BrokerRow[] = [];
  for (const agents of sizes) {
    for (const n of registries) {
      const r = simulateBrokerFleet({ nodes: agents, registries: n, hours, seed: 7, fanoutMsPerWatcher, nodeApplyMs: NODE_APPLY_MS, outageHours });
      brokerRows.push({
        agents,
        registries: n,
        ecrCallsPerDay: round(r.ecrCallsPerDay, 1),
        refreshesPerDayPerRegistry: round(r.refreshesPerDayPerRegistry, 2),
        secondsUntilAllNodesHaveToken: round(r.secondsUntilAllNodesHaveToken, 1),
        maxSecondsWithoutValidToken: round(r.maxSecondsWithoutValidToken, 1),
        minSecondsLeftAfterOutage: round(r.minSecondsLeftAfterOutage, 0),
      });
    }
  }
  return {
    hours,
    rows,
    brokerRows,
    fanoutMsPerWatcher: round(fanoutMsPerWatcher, 4),
    fanoutWatchers,
    nodeApplyMs: NODE_APPLY_MS,
    outageHours,
    targetPeak: 20,
    targetMaxGapSeconds: 300,
    targetBrokerPropagationSeconds: 60,
    notes: [],
  };
}
