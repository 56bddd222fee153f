// Starts an agent that watches the docker-config Secret through the in-process fake API server:
// the real `run` process when it has --kubeconfig, otherwise the Secret source and the
// Reconciler in this process (said plainly in the results).
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { CONTROL_PLANE_TOOLS, type ControlPlane, kubeConfigFor, serviceAccountKubeconfig, startControlPlane } from '../../test/support/control-plane.ts';
import type { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { missingGoTools } from '../../test/support/go-tools.ts';
import { type AgentBuild, dockerConfig, makeHostRoot, runHelpHas, type SpawnedAgent, spawnAgent, VersionWatcher } from './lib.ts';

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

export interface RealSecretAgent {
  readonly cp: ControlPlane;
  readonly agent: SpawnedAgent;
  readonly watch: VersionWatcher;
  /** Replaces the Secret with generation `v` of `registries` registries (the admin's PUT). */
  put(v: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The `run` process watching the Secret through a real kube-apiserver + etcd, as the DaemonSet's
 * ServiceAccount, on a fresh host root; a string saying why not when the Go tools are not built.
 */
export async function startRealSecretAgent(build: AgentBuild, registries: number, prefix: string): Promise<RealSecretAgent | string> {
  const missing = missingGoTools(CONTROL_PLANE_TOOLS);
  if (missing.length > 0) return `Go tools not built (${missing.join(', ')}; run \`bash scripts/build-go-tools.sh\`)`;
  const cp = await startControlPlane();
  const core = kubeConfigFor(cp.info).makeApiClient(CoreV1Api);
  const body = (v: number) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: SECRET, namespace: NS }, data: { '.dockerconfigjson': Buffer.from(dockerConfig(registries, v)).toString('base64') } });
  await core.createNamespacedSecret({ namespace: NS, body: body(1) });
  const host = await makeHostRoot(prefix);
  const { path } = await serviceAccountKubeconfig(cp.info);
  const agent = spawnAgent(build, ['--host-root', host.root, '--kubeconfig', path, '--secret-namespace', NS, '--secret-name', SECRET]);
  const watch = new VersionWatcher(host.kubeletConfig);
  return {
    cp,
    agent,
    watch,
    put: async (v) => void (await core.replaceNamespacedSecret({ namespace: NS, name: SECRET, body: body(v) })),
    stop: async () => {
      watch.close();
      await agent.stop();
      await cp.stop();
      await host.cleanup();
    },
  };
}
