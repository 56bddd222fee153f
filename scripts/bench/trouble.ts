// Section 7 (optional: `npm run bench -- --only trouble`): the API server stopped, then started,
// under N node agents' Secret watches in one process (test/support/watch-fleet.ts: the agent's own
// Secret source and client, the DaemonSet's ServiceAccount, production backoff) behind the counting
// proxy (test/support/fault-proxy.ts), on a real kube-apiserver + etcd. The same scenario as
// test/kubernetes/trouble.test.ts without the broker pair: the change after the restart is the
// admin's PUT of the watched Secret. Sizes and the outage come from the environment:
// NRC_BENCH_TROUBLE_WATCHERS (e.g. "100,1000,5000"), NRC_BENCH_TROUBLE_DOWN_SECONDS.
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { CONTROL_PLANE_TOOLS, kubeConfigFor, serviceAccountToken, startControlPlane, tokenKubeconfigYaml } from '../../test/support/control-plane.ts';
import { FaultProxy } from '../../test/support/fault-proxy.ts';
import { missingGoTools } from '../../test/support/go-tools.ts';
import { agentClient, apiserverOutage, type OutageResult, WatchFleet } from '../../test/support/watch-fleet.ts';
import { dockerConfig, round } from './lib.ts';
import { NS, SECRET } from './secret-agent.ts';

const REGISTRIES = 10;

export interface TroubleResult {
  readonly downSeconds: number;
  readonly rows: (OutageResult & { readonly syncedAfterMs: number; readonly loadAverage: readonly number[] })[];
  readonly notes: string[];
}

export async function troubleSection(sizes: readonly number[], downMs: number, log: (s: string) => void): Promise<TroubleResult> {
  const notes: string[] = [];
  const missing = missingGoTools(CONTROL_PLANE_TOOLS);
  if (missing.length > 0) return { downSeconds: downMs / 1000, rows: [], notes: [`skipped: Go tools not built (${missing.join(', ')}; run \`bash scripts/build-go-tools.sh\`)`] };
  const cp = await startControlPlane();
  const rows: TroubleResult['rows'] = [];
  try {
    const core = kubeConfigFor(cp.info).makeApiClient(CoreV1Api);
    let version = 1;
    const body = (v: number) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: SECRET, namespace: NS }, data: { '.dockerconfigjson': Buffer.from(dockerConfig(REGISTRIES, v)).toString('base64') } });
    await core.createNamespacedSecret({ namespace: NS, body: body(version) });
    const token = await serviceAccountToken(cp.info, NS, 'node-registry-credentials');
    // registry r0's password carries the version (dockerConfig): the change is seen when it is there.
    const holds = (v: number) => (lines: readonly string[]): boolean => lines.includes(`r0.bench.example.com=bench:v${v}-0`);
    for (const size of sizes) {
      const proxy = new FaultProxy({ upstream: cp.info.server, pkiDir: join(cp.info.dir, 'pki'), name: `bench-${size}` });
      await proxy.start();
      const kubeconfig = join(cp.info.dir, `kubeconfig-bench-${size}`);
      await writeFile(kubeconfig, tokenKubeconfigYaml(proxy.url, cp.info.caFile, token, 'system:serviceaccount:okteto:node-registry-credentials'), { mode: 0o600 });
      // A DaemonSet rollout spreads the starts; 100 per second keeps the first lists off a thundering herd.
      const fleet = new WatchFleet({ count: size, client: () => agentClient(kubeconfig), namespace: NS, name: SECRET, startSpreadMs: Math.max(1000, size * 10), keep: 200 });
      const t0 = Date.now();
      await fleet.start();
      const current = version;
      const synced = await fleet.waitAll((w) => holds(current)(w.credentials), 120_000 + size * 20, 200);
      if (synced === undefined) notes.push(`${size} watchers: ${fleet.count((w) => !holds(current)(w.credentials))} did not sync within the time allowed`);
      const syncedAfterMs = (synced ?? Date.now()) - t0;
      log(`trouble: ${size} watchers synced in ${round(syncedAfterMs / 1000, 1)} s; API server down for ${downMs / 1000} s`);
      const r = await apiserverOutage({
        fleet,
        proxy,
        downMs,
        tailMs: Math.min(120_000, Math.max(10_000, downMs - 60_000)),
        stopApiserver: () => cp.stopApiserver(),
        startApiserver: () => cp.startApiserver(),
        change: async () => {
          version++;
          await core.replaceNamespacedSecret({ namespace: NS, name: SECRET, body: body(version) });
        },
        seen: (w) => holds(version)(w.credentials),
        resyncTimeoutMs: 120_000,
        log: (l) => log(`trouble: ${size} watchers: ${l}`),
      });
      rows.push({ ...r, syncedAfterMs, loadAverage: loadavg().map((l) => round(l, 2)) });
      await fleet.stop();
      await proxy.stop();
    }
  } finally {
    await cp.stop();
  }
  if (downMs < 90_000) notes.push(`an outage of ${downMs / 1000} s leaves a tail window that starts before every watcher is at the 30 s cap (about 46 s of failures): its rate is not yet the steady state`);
  notes.push('req/s: connections reaching the proxy while the API server is down (each one an attempt: nothing can be reused); "last part": the last min(120 s, outage − 60 s, at least 10 s) of the outage; times after the restart are from /readyz 200');
  return { downSeconds: downMs / 1000, rows, notes };
}
