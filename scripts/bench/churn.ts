// Section 4: a burst of Secret updates through the fake API server; how many writes the agent
// performs, when the node holds the last version, and whether the final files match it exactly.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { type AgentBuild, dockerConfig, makeHostRoot, now, round, sleep, VersionWatcher } from './lib.ts';
import { NS, SECRET, startSecretAgent } from './secret-agent.ts';

const REGISTRIES = 10;
const KUBELET = '/var/lib/kubelet/config.json';
const DOCKER = '/root/.docker/config.json';

export interface ChurnResult {
  readonly mode: string;
  readonly updates: number;
  readonly burstMs: number;
  readonly convergeMs: number | undefined;
  readonly kubeletWrites: number;
  readonly dockerConfigWrites: number;
  readonly finalStateMatches: boolean;
  readonly notes: string[];
}

function authsOf(file: string): string {
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { auths?: Record<string, unknown> };
    return JSON.stringify(Object.entries(doc.auths ?? {}).sort(([a], [b]) => a.localeCompare(b)));
  } catch {
    return 'unreadable';
  }
}

export async function churnSection(build: AgentBuild, updates: number, timeoutMs: number): Promise<ChurnResult> {
  const notes: string[] = [];
  const api = new FakeApiServer({ historyLimit: Math.max(1000, updates + 10) });
  await api.start();
  api.putDockerConfigSecret(NS, SECRET, dockerConfig(REGISTRIES, 1));
  const host = await makeHostRoot('churn');
  const agent = await startSecretAgent(build, api, host.root, join(host.root, '..'));
  const watcher = new VersionWatcher(host.kubeletConfig);
  const first = await watcher.waitFor(1, 30_000);
  if (first === undefined) notes.push('the agent did not write its first configuration within 30 s');
  await sleep(1000);
  const writesBefore = agent.changedCount(KUBELET);
  const dockerBefore = agent.changedCount(DOCKER);

  const last = updates + 1;
  const t0 = now();
  for (let v = 2; v <= last; v++) api.putDockerConfigSecret(NS, SECRET, dockerConfig(REGISTRIES, v));
  const burstMs = now() - t0;
  const tDone = await watcher.waitFor(last, timeoutMs);
  const convergeMs = tDone === undefined ? undefined : tDone - t0;
  if (convergeMs === undefined) notes.push(`the node did not hold the last version within ${timeoutMs / 1000} s`);
  // Quiet period: a late write of an older version would show here.
  await sleep(2000);
  watcher.close();

  const expected = JSON.stringify(Object.entries((JSON.parse(dockerConfig(REGISTRIES, last)) as { auths: Record<string, unknown> }).auths).sort(([a], [b]) => a.localeCompare(b)));
  const finalStateMatches = authsOf(host.kubeletConfig) === expected && authsOf(join(host.root, 'root/.docker/config.json')) === expected;
  const result: ChurnResult = {
    mode: agent.mode,
    updates,
    burstMs: round(burstMs),
    convergeMs: convergeMs === undefined ? undefined : round(convergeMs),
    kubeletWrites: agent.changedCount(KUBELET) - writesBefore,
    dockerConfigWrites: agent.changedCount(DOCKER) - dockerBefore,
    finalStateMatches,
    notes,
  };
  await agent.stop();
  await api.stop();
  await host.cleanup();
  return result;
}
