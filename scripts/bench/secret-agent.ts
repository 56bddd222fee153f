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
  const [{ Reconciler }, { KubernetesSecretSource }, { HostFs }, { DEFAULT_TARGET_OPTIONS }, { createLogger }] = await Promise.all([
    import('../../src/reconcile/reconciler.ts'),
    import('../../src/sources/kubernetes/secret-source.ts'),
    import('../../src/host/host-fs.ts'),
    import('../../src/runtime/targets.ts'),
    import('../../src/log.ts'),
  ]);
  const debounceIdx = extraArgs.indexOf('--debounce-ms');
  const debounceMs = debounceIdx >= 0 ? Number(extraArgs[debounceIdx + 1]) : 200;
  const reconciler = new Reconciler({
    host: new HostFs(hostRoot),
    sources: [new KubernetesSecretSource({ kubeConfig: api.kubeConfig(), namespace: NS, name: SECRET })],
    hostOptions: new Map(),
    targetOptions: DEFAULT_TARGET_OPTIONS,
    logger: createLogger('warn'),
    debounceMs,
  });
  const counts = new Map<string, number>();
  reconciler.on('applied', (r) => {
    for (const c of r.changes) counts.set(c.path, (counts.get(c.path) ?? 0) + 1);
  });
  await reconciler.start();
  return { mode: 'in-process', pid: process.pid, changedCount: (p) => counts.get(p) ?? 0, stop: () => reconciler.stop() };
}
