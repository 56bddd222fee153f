// Section 11 (optional: `npm run bench -- --only fanout`): one Secret change fanned out by a real
// kube-apiserver + etcd (watch cache on, TLS) to N node agents' watches of that Secret, each the
// agent's own Secret source and client (test/support/watch-fleet.ts), with its own ServiceAccount
// token, all in this one process. Then the API server restarted under them: how long until every
// watch is back, and what the API server sees meanwhile. Sizes: NRC_BENCH_FANOUT_WATCHERS
// (default 100,1000; the 5,000 is CPU-heavy on 2 cores: name it).
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { adminRequest, CONTROL_PLANE_TOOLS, type ControlPlane, kubeConfigFor, serviceAccountToken, startControlPlane, tokenKubeconfigYaml } from '../../test/support/control-plane.ts';
import { missingGoTools } from '../../test/support/go-tools.ts';
import { agentClient, type Watcher, WatchFleet } from '../../test/support/watch-fleet.ts';
import { dist, type Dist, dockerConfig, mib, round, sleep } from './lib.ts';
import { NS, SECRET } from './secret-agent.ts';

const REGISTRIES = 10;
const CHANGES = 3;
const TICK_MS = 10;

export interface ProcUse {
  readonly cpuMs: number;
  readonly rssMiB: number;
}

export interface FanoutRow {
  readonly watchers: number;
  readonly connectSeconds: number;
  /** Secret PUT sent → each watcher holding the new value, ms, over every change. */
  readonly deliveryMs: Dist;
  /** Per change, the last watcher's time, ms. */
  readonly lastPerChangeMs: number[];
  /** CPU over the changes (ms) and RSS with the watches open: kube-apiserver, etcd, this process (the watchers). */
  readonly apiserver: ProcUse & { readonly rssIdleMiB: number };
  readonly etcd: ProcUse;
  readonly watchersProcess: ProcUse;
  readonly restart: {
    readonly readyMs: number;
    /**
     * From the new API server's start (spawn) to each watcher's first watch stream opened again (the
     * resume attempt, which the new server may then end with 410 Gone), and to its first snapshot
     * (re-synced): watchers come back as soon as it listens, before /readyz.
     */
    readonly reconnectMs: Dist;
    readonly resyncMs: Dist;
    readonly notBack: number;
    /** Secret requests the new API server counted (apiserver_request_total), and their rate from the restart to every watch back. */
    readonly secretRequests: number;
    readonly requestsPerSecond: number;
    /** Highest apiserver_current_inflight_requests seen (sampled every 250 ms), and 429s. */
    readonly peakInflight: number;
    readonly rejected: number;
    /** Relists (list again) and resumes (watch from the last resourceVersion) after the restart. */
    readonly relists: number;
    readonly resumes: number;
  };
  readonly loadAverage: readonly number[];
}

export interface FanoutResult {
  readonly rows: FanoutRow[];
  readonly notes: string[];
}

/** PIDs of the control plane's processes, found by its directory on their command lines. */
function controlPlanePids(dir: string): { apiserver?: number; etcd?: number } {
  const out: { apiserver?: number; etcd?: number } = {};
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let cmd: string[];
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!cmd.some((a) => a.includes(dir))) continue;
    if (cmd[0]?.endsWith('/kube-apiserver')) out.apiserver = Number(p);
    if (cmd[0]?.endsWith('/etcd')) out.etcd = Number(p);
  }
  return out;
}

function procUse(pid: number | undefined): { ticks: number; rssKiB: number } {
  if (pid === undefined) return { ticks: NaN, rssKiB: NaN };
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { ticks: Number(f[11]) + Number(f[12]), rssKiB: rss ? Number(rss[1]) : NaN };
  } catch {
    return { ticks: NaN, rssKiB: NaN };
  }
}

/** Sum of apiserver_request_total for Secrets, and the inflight gauge, from the API server's /metrics. */
async function scrape(cp: ControlPlane): Promise<{ secretRequests: number; inflight: number; rejected: number }> {
  const r = await adminRequest(cp.info, 'GET', '/metrics').catch(() => ({ status: 0, body: '' }));
  let secretRequests = 0;
  let inflight = 0;
  let rejected = 0;
  for (const line of r.body.split('\n')) {
    if (line.startsWith('apiserver_request_total{') && line.includes('resource="secrets"')) secretRequests += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('apiserver_current_inflight_requests{')) inflight += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('apiserver_flowcontrol_rejected_requests_total{')) rejected += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { secretRequests, inflight, rejected };
}

export async function fanoutSection(sizes: readonly number[], log: (s: string) => void): Promise<FanoutResult> {
  const notes: string[] = [];
  const missing = missingGoTools(CONTROL_PLANE_TOOLS);
  if (missing.length > 0) return { rows: [], notes: [`skipped: Go tools not built (${missing.join(', ')}; run \`bash scripts/build-go-tools.sh\`)`] };
  const cp = await startControlPlane();
  const rows: FanoutRow[] = [];
  try {
    const core = kubeConfigFor(cp.info).makeApiClient(CoreV1Api);
    let version = 1;
    const body = (v: number) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: SECRET, namespace: NS }, data: { '.dockerconfigjson': Buffer.from(dockerConfig(REGISTRIES, v)).toString('base64') } });
    await core.createNamespacedSecret({ namespace: NS, body: body(version) });
    const line = (v: number): string => `r0.bench.example.com=bench:v${v}-0`;
    // One token per watcher, as one agent per node has its own (not bound to a Pod: a Pod and a
    // Node per watcher would cost more than the watches).
    const kubeconfigs: string[] = [];
    const ensureKubeconfigs = async (n: number): Promise<void> => {
      while (kubeconfigs.length < n) {
        const batch = Array.from({ length: Math.min(50, n - kubeconfigs.length) }, async (_, j) => {
          const i = kubeconfigs.length + j;
          const token = await serviceAccountToken(cp.info, NS, 'node-registry-credentials');
          const file = join(cp.info.dir, `kubeconfig-fanout-${i}`);
          await writeFile(file, tokenKubeconfigYaml(cp.info.server, cp.info.caFile, token, 'system:serviceaccount:okteto:node-registry-credentials'), { mode: 0o600 });
          return file;
        });
        kubeconfigs.push(...(await Promise.all(batch)));
      }
    };
    for (const size of sizes) {
      await ensureKubeconfigs(size);
      const pids = controlPlanePids(cp.info.dir);
      const idle = procUse(pids.apiserver);
      // A DaemonSet rollout spreads the starts: 200 a second.
      const fleet = new WatchFleet({ count: size, client: (i) => agentClient(kubeconfigs[i]!), namespace: NS, name: SECRET, startSpreadMs: Math.max(500, size * 5), keep: 50 });
      const t0 = Date.now();
      await fleet.start();
      const current = version;
      const synced = await fleet.waitAll((w) => w.has(line(current)), 120_000 + size * 20, 100);
      if (synced === undefined) notes.push(`${size} watchers: ${fleet.count((w) => !w.has(line(current)))} did not sync within the time allowed`);
      const connectSeconds = round(((synced ?? Date.now()) - t0) / 1000, 1);
      log(`fanout: ${size} watchers following the Secret after ${connectSeconds} s`);
      await sleep(2000);
      const before = { api: procUse(pids.apiserver), etcd: procUse(pids.etcd), self: procUse(process.pid) };
      const delivery: number[] = [];
      const lastPerChange: number[] = [];
      for (let c = 0; c < CHANGES; c++) {
        version++;
        const v = version;
        const sent = Date.now();
        await core.replaceNamespacedSecret({ namespace: NS, name: SECRET, body: body(v) });
        const done = await fleet.waitAll((w) => w.has(line(v)), 60_000 + size * 10, 20);
        if (done === undefined) notes.push(`${size} watchers, change ${c + 1}: ${fleet.count((w) => !w.has(line(v)))} did not see it`);
        const times = fleet.watchers.map((w: Watcher) => w.history.find((h) => h.value.includes(line(v)))?.at).filter((t): t is number => t !== undefined).map((t) => t - sent);
        delivery.push(...times);
        lastPerChange.push(Math.max(...times));
        await sleep(1000);
      }
      const after = { api: procUse(pids.apiserver), etcd: procUse(pids.etcd), self: procUse(process.pid) };
      const use = (a: { ticks: number }, b: { ticks: number; rssKiB: number }): ProcUse => ({ cpuMs: (b.ticks - a.ticks) * TICK_MS, rssMiB: mib(b.rssKiB) });
      log(`fanout: ${size} watchers: ${CHANGES} changes, last watcher after ${lastPerChange.join(' / ')} ms; restarting the API server`);

      // The API server restarted (stopped and started at once) under the open watches.
      await cp.stopApiserver();
      const upAt = Date.now();
      fleet.mark(upAt);
      const states = fleet.watchers.map((w) => new Map(w.stateCounts));
      await cp.startApiserver();
      const readyAt = Date.now();
      let peakInflight = 0;
      let rejected = 0;
      const back = (w: Watcher): boolean => w.firstStateAfterMark.has('connected');
      const deadline = Date.now() + 120_000 + size * 20;
      for (;;) {
        await sleep(250);
        const s = await scrape(cp);
        const now = Date.now();
        peakInflight = Math.max(peakInflight, s.inflight);
        rejected = s.rejected;
        if (fleet.watchers.every(back) || now > deadline) break;
      }
      const final = await scrape(cp);
      const allBackAt = Math.max(readyAt, ...fleet.watchers.map((w) => w.firstStateAfterMark.get('connected') ?? 0));
      const since = (t: number | undefined): number | undefined => (t === undefined ? undefined : Math.max(0, t - upAt));
      const reconnect = fleet.watchers.map((w) => since(w.firstStateAfterMark.get('connected'))).filter((x): x is number => x !== undefined);
      const resync = fleet.watchers.map((w) => since(w.firstSyncAfterMark)).filter((x): x is number => x !== undefined);
      let relists = 0;
      for (const [i, w] of fleet.watchers.entries()) relists += (w.stateCounts.get('relisting') ?? 0) - (states[i]!.get('relisting') ?? 0);
      const pidsAfter = controlPlanePids(cp.info.dir);
      rows.push({
        watchers: size,
        connectSeconds,
        deliveryMs: dist(delivery),
        lastPerChangeMs: lastPerChange,
        apiserver: { ...use(before.api, after.api), rssIdleMiB: mib(idle.rssKiB) },
        etcd: use(before.etcd, after.etcd),
        watchersProcess: use(before.self, after.self),
        restart: {
          readyMs: readyAt - upAt,
          reconnectMs: dist(reconnect),
          resyncMs: dist(resync),
          notBack: size - reconnect.length,
          secretRequests: final.secretRequests,
          requestsPerSecond: round((final.secretRequests * 1000) / Math.max(1, allBackAt - upAt), 1),
          peakInflight,
          rejected,
          relists,
          resumes: reconnect.length - Math.min(reconnect.length, relists),
        },
        loadAverage: loadavg().map((l) => round(l, 2)),
      });
      if (pidsAfter.apiserver === undefined) notes.push('the restarted API server was not found under the control plane directory');
      await fleet.stop();
      await sleep(2000);
    }
  } finally {
    await cp.stop();
  }
  notes.push(`Delivery: from sending the admin's PUT of the Secret to each watcher holding the new value (its own list+watch, JSON decoding and the snapshot in this one process, which serialises the work of N agents: an upper bound of what each node sees), ${CHANGES} changes per size, ${REGISTRIES} registries. CPU: utime+stime over the changes. The restart: the API server stopped and started at once; the watchers use the production backoff (0.5 s doubling to 30 s, equal jitter); the request rate is the new server's Secret requests over the time from its start to the last watch accepted again; inflight is apiserver_current_inflight_requests sampled every 250 ms once it is ready (the defaults allow 400 read-only and 200 mutating; a watch counts only while it is being set up).`);
  return { rows, notes };
}
