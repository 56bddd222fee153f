// Starts an agent that watches the docker-config Secret through the in-process fake API server:
// the real `run` process when it has --kubeconfig, otherwise the Secret source and the
// Reconciler in this process (said plainly in the results).
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { type AgentBuild, runHelpHas, spawnAgent } from './lib.ts';

export const NS = 'okteto';
export const SECRET = 'okteto-dockerconfig-static';

export interface SecretAgent {
  readonly mode: 'run process' | 'in-process';
  readonly pid: number;
  /** Writes of the host path (`host file changed` log lines, or the Reconciler's reports). */
  changedCount(hostPath: string): number;
  stop(): Promise<void>;
}

let cachedHasKubeconfig: boolean | undefined;
export function runHasKubernetes(build: AgentBuild): boolean {
  cachedHasKubeconfig ??= runHelpHas(build, 'kubeconfig');
  return cachedHasKubeconfig;
}

export async function startSecretAgent(build: AgentBuild, api: FakeApiServer, hostRoot: string, workDir: string, extraArgs: readonly string[] = []): Promise<SecretAgent> {
  if (runHasKubernetes(build)) {
    const kubeconfig = join(workDir, 'kubeconfig');
    fs.writeFileSync(kubeconfig, api.kubeconfigYaml(), { mode: 0o600 });
    const a = spawnAgent(build, ['--host-root', hostRoot, '--kubeconfig', kubeconfig, '--secret-namespace', NS, '--secret-name', SECRET, ...extraArgs]);
    return { mode: 'run process', pid: a.pid, changedCount: (p) => a.changedCount(p), stop: () => a.stop() };
  }
  // The agent `run` starts (startAgent with its typed configuration), fed by the Secret source.
  const [{ startAgent }, { agentConfig }, { KubernetesSecretSource }, { createLogger }] = await Promise.all([
    import('../../src/commands/run.ts'),
    import('../../src/commands/config.ts'),
    import('../../src/sources/kubernetes/secret-source.ts'),
    import('../../src/log.ts'),
  ]);
  const debounceIdx = extraArgs.indexOf('--debounce-ms');
  const config = agentConfig({ 'host-root': hostRoot, ...(debounceIdx >= 0 ? { 'debounce-ms': extraArgs[debounceIdx + 1] } : {}) });
  if (config instanceof Error) throw config;
  const counts = new Map<string, number>();
  const agent = await startAgent(config, createLogger('warn'), [new KubernetesSecretSource({ kubeConfig: api.kubeConfig(), namespace: NS, name: SECRET })], (r) => {
    for (const c of r.changes) counts.set(c.path, (counts.get(c.path) ?? 0) + 1);
  });
  if (agent instanceof Error) throw agent;
  return { mode: 'in-process', pid: process.pid, changedCount: (p) => counts.get(p) ?? 0, stop: () => agent.stop() };
}
