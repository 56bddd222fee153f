// `npm run bench [-- --quick] [-- --only latency,idle,scale,churn,fleet,startup,image,fanout,trouble,wait,newnode]`: the agent's
// benchmarks (issue 7); `trouble` (API server down and restarted under N watchers, issue 25) and
// `wait` (the user's wait on real kubelets, config.json mode and provider mode, issue 21) and
// `newnode` (a brand-new node's first private pull, issue 22) run
// only when named in --only; `fanout` (watches of a real API server, issue 23) runs 100 and 1,000
// by default, 5,000 only when NRC_BENCH_FANOUT_WATCHERS names it (CPU-heavy on 2 cores). Prints a Markdown report and writes the same figures as JSON under
// bench-results/ (git-ignored). Every section has a bounded budget so a full run stays well
// under 10 minutes on 2 cores; --quick is a smoke run of about a minute. Not a test.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { churnSection, type ChurnResult } from './bench/churn.ts';
import { fanoutSection, type FanoutResult } from './bench/fanout.ts';
import { fleetSection, type FleetResult } from './bench/fleet.ts';
import { idleSection, type IdleResult } from './bench/idle.ts';
import { imageSection, type ImageResult } from './bench/image.ts';
import { latencySection, type LatencyResult } from './bench/latency.ts';
import { type AgentBuild, BUILD_DIR, buildAgent, daemonSetRuntimeEnv, now, REPO, round, table } from './bench/lib.ts';
import { scaleSection, type ScaleResult } from './bench/scale.ts';
import { startupSection, type StartupResult } from './bench/startup.ts';
import { troubleSection, type TroubleResult } from './bench/trouble.ts';
import { waitSection, type WaitResult } from './bench/wait.ts';
import { newNodeSection, type NewNodeResult } from './bench/new-node.ts';

const SECTIONS = ['fleet', 'scale', 'churn', 'idle', 'latency', 'startup', 'image', 'fanout', 'trouble', 'wait', 'newnode'] as const;
type Section = (typeof SECTIONS)[number];
/** Without --only: every section but `trouble` (minutes of a stopped API server) and `wait` (minutes of real kubelets' caches). */
const DEFAULT_SECTIONS: readonly Section[] = SECTIONS.filter((s) => s !== 'trouble' && s !== 'wait' && s !== 'newnode');

interface Config {
  readonly latencyChanges: number;
  readonly latencyBudgetMs: number;
  readonly idleSeconds: number;
  readonly scaleSizes: readonly number[];
  readonly scaleTimeoutMs: number;
  readonly churnUpdates: number;
  readonly churnTimeoutMs: number;
  readonly fleetSizes: readonly number[];
  readonly fleetHours: number;
  readonly startupRuns: number;
  readonly imagePulls: number;
  readonly troubleSizes: readonly number[];
  readonly troubleDownMs: number;
  readonly waitRepetitions: number;
}

const FULL: Config = {
  latencyChanges: 1000,
  latencyBudgetMs: 330_000,
  idleSeconds: 60,
  scaleSizes: [1, 100, 1000, 10_000],
  scaleTimeoutMs: 120_000,
  churnUpdates: 10_000,
  churnTimeoutMs: 120_000,
  fleetSizes: [1000, 5000, 10_000],
  fleetHours: 24,
  startupRuns: 10,
  imagePulls: 5,
  troubleSizes: [200],
  troubleDownMs: 180_000,
  waitRepetitions: 5,
};

const QUICK: Config = {
  latencyChanges: 40,
  latencyBudgetMs: 30_000,
  idleSeconds: 5,
  scaleSizes: [1, 100, 1000],
  scaleTimeoutMs: 60_000,
  churnUpdates: 500,
  churnTimeoutMs: 30_000,
  fleetSizes: [1000, 10_000],
  fleetHours: 24,
  startupRuns: 2,
  imagePulls: 1,
  troubleSizes: [100],
  troubleDownMs: 45_000,
  waitRepetitions: 1,
};

interface Machine {
  readonly date: string;
  readonly nproc: number;
  readonly memoryGiB: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly kernel: string;
  readonly loadAverageAtStart: readonly number[];
}

interface Results {
  readonly machine: Machine;
  readonly mode: 'full' | 'quick';
  readonly agent: { readonly kind: string; readonly note: string };
  readonly secondsPerSection: Partial<Record<Section, number>>;
  totalSeconds?: number;
  fleet?: FleetResult;
  scale?: ScaleResult;
  churn?: ChurnResult;
  idle?: IdleResult;
  latency?: LatencyResult;
  startup?: StartupResult;
  image?: ImageResult;
  fanout?: FanoutResult;
  trouble?: TroubleResult;
  wait?: WaitResult;
  newnode?: NewNodeResult;
  readonly errors: Partial<Record<Section, string>>;
}

function machine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // keep os.cpus()
  }
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    memoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    cpuModel,
    node: process.version,
    kernel: os.release(),
    loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

const ms = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '—' : String(round(v, v >= 100 ? 0 : 1)));
const yes = (b: boolean): string => (b ? 'yes' : '**no**');

export function renderMarkdown(r: Results): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`# Benchmark results (${r.mode} run)`);
  out.push('');
  out.push(`${m.date} · ${m.nproc} cores (${m.cpuModel}) · ${m.memoryGiB} GiB · Node ${m.node} · Linux ${m.kernel} · load average at start ${m.loadAverageAtStart.join(' / ')} · agent ${r.agent.note} · ${r.totalSeconds ?? '?'} s in all`);

  if (r.latency) {
    const l = r.latency;
    out.push('', '## 1. Propagation latency: Secret change → new bytes in the kubelet config.json (ms)', '');
    out.push(table(['source', 'how', 'changes', 'p50', 'p95', 'p99', 'max', 'timeouts'], l.rows.map((x) => [x.name, x.how, x.changes, ms(x.ms.p50), ms(x.ms.p95), ms(x.ms.p99), ms(x.ms.max), x.timeouts])));
    out.push('', `(c)/(a): p50 ${round(l.ratioShellOverSecretWatch.p50, 2)}x, p95 ${round(l.ratioShellOverSecretWatch.p95, 2)}x, p99 ${round(l.ratioShellOverSecretWatch.p99, 2)}x. The agent applies a change at once; --debounce-ms (default ${l.debounceMs} ms) only coalesces bursts (section 4).`);
    for (const n of l.notes) out.push(`- ${n}`);
  }
  if (r.idle) {
    const i = r.idle;
    out.push('', `## 2. Cost at rest: ${i.seconds} s idle, 10 registries`, '');
    out.push(table(['process', 'RSS MiB', 'peak RSS MiB', 'RSS vs bare', 'threads', 'CPU ms', 'CPU %', 'wake-ups/min'], i.rows.map((x) => [x.name, x.rssMiB, x.peakRssMiB, x.rssRatio === undefined ? '1' : `${x.rssRatio}x`, x.threads, x.cpuMs, x.cpuPercent, x.wakeupsPerMinute])));
    const agents = i.rows.filter((x) => x.name.startsWith('run'));
    // The issue's measure: the Secret watch against the real API server (kubeconfig, and in-cluster as the DaemonSet runs).
    const real = agents.filter((x) => x.name.includes('real'));
    const memOk = real.length > 0 && real.every((x) => (x.rssRatio ?? 0) <= i.targetMemoryRatio);
    const others = agents.filter((x) => !real.includes(x));
    out.push('', `Target ≤ ${i.targetMemoryRatio}x the bare runtime's memory with the Secret watch against the real API server: ${real.length === 0 ? 'not measured' : memOk ? 'met' : '**missed**'} (${real.map((x) => `${x.rssRatio}x${x.name.includes('in-cluster') ? ' in-cluster' : ' with --kubeconfig'}`).join(', ')}; the other agents ${others.map((x) => `${x.rssRatio}x`).join(', ')}).`);
    if (i.wakeups.length > 0) {
      out.push('', `Wake-ups per minute, two more ${i.seconds} s windows (load ${i.wakeLoad.map((l) => l.join(' / ')).join(' → ')}): pending (a second generation written 3 s before, nobody reading the kubelet's config.json) and at rest (read as the kubelet would, effective). Main thread: its voluntary context switches; all: every thread's switches.`, '');
      out.push(table(['agent', 'pending: main thread', 'pending: all threads', 'rest: main thread', 'rest: all threads'], i.wakeups.map((w) => [w.name, w.pendingMain, w.pendingAll, w.restMain, w.restAll])));
    }
    out.push('', `RSS each dependency adds to a bare Node process when imported alone (MiB): ${Object.entries(i.moduleRssMiB).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
    for (const n of i.notes) out.push(`- ${n}`);
  }
  if (r.scale) {
    const s = r.scale;
    out.push('', '## 3. Scale: registries in one Secret, fresh node (ms unless noted)', '');
    out.push(
      table(
        ['registries', 'Secret KiB', 'parse', 'plan', 'apply', 'total', 'bytes written', 're-apply ms', 're-apply bytes', 'peak RSS MiB', 'peak − baseline MiB'],
        s.rows.map((x) => [x.registries, x.secretKiB, ms(x.parseMs), ms(x.planMs), ms(x.applyMs), ms(x.totalMs), x.bytesWritten, ms(x.reapplyMs), x.reapplyBytesWritten, x.peakRssMiB, x.peakOverBaselineMiB]),
      ),
    );
    out.push('', `Re-apply of unchanged input writes zero bytes: ${yes(s.reapplyWritesNothing)}.`);
    for (const n of s.notes) out.push(`- ${n}`);
  }
  if (r.churn) {
    const c = r.churn;
    out.push('', '## 4. Churn: a burst of Secret updates', '');
    out.push(
      table(
        ['updates', 'agent', 'burst sent in ms', 'converged after ms', 'kubelet config.json writes', 'docker config.json writes', 'final state = last input'],
        [[c.updates, c.mode, ms(c.burstMs), ms(c.convergeMs), c.kubeletWrites, c.dockerConfigWrites, yes(c.finalStateMatches)]],
      ),
    );
    for (const n of c.notes) out.push(`- ${n}`);
  }
  if (r.fleet) {
    const f = r.fleet;
    out.push('', `## 5. Fleet ECR calls: one account and region, ${f.hours} simulated hours`, '');
    out.push(
      table(
        ['agents', 'peak calls/s', 'mean calls/s', 'all hold a token after s', 'longest without a valid token s', 'calls', 'throttled'],
        f.rows.map((x) => [x.agents, x.peakCallsPerSecond, x.meanCallsPerSecond, x.secondsUntilAllHaveToken, x.maxSecondsWithoutValidToken, x.totalCalls, x.throttledCalls]),
      ),
    );
    const peakOk = f.rows.every((x) => x.peakCallsPerSecond < f.targetPeak);
    const gapOk = f.rows.every((x) => x.maxSecondsWithoutValidToken <= f.targetMaxGapSeconds);
    out.push('', `Target peak < ${f.targetPeak}/s: ${peakOk ? 'met' : '**missed**'}; no node more than ${f.targetMaxGapSeconds / 60} minutes without a valid token: ${gapOk ? 'met' : '**missed**'}.`);
    out.push('', `Broker design, same run: one broker per cluster refreshes each registry; the API server fans the Secret out to every node's watch (measured ${f.fanoutMsPerWatcher} ms per watcher over ${f.fanoutWatchers} watches of the fake API server, one process writing to each watch in turn; a real API server over TLS is slower per watcher, which the 60 s target leaves room for) and the agent applies it (${f.nodeApplyMs} ms, section 1's p95); broker down ${f.outageHours} h from the worst moment (just before a refresh).`, '');
    out.push(
      table(
        ['agents', 'registries', 'ECR calls/day', 'refreshes/day per registry', 'all nodes hold the token after the write, s', 'longest without a valid token s', `token left after a ${f.outageHours} h outage, s`],
        f.brokerRows.map((x) => [x.agents, x.registries, x.ecrCallsPerDay, x.refreshesPerDayPerRegistry, x.secondsUntilAllNodesHaveToken, x.maxSecondsWithoutValidToken, x.minSecondsLeftAfterOutage]),
      ),
    );
    const propOk = f.brokerRows.every((x) => x.secondsUntilAllNodesHaveToken <= f.targetBrokerPropagationSeconds);
    const outageOk = f.brokerRows.every((x) => x.minSecondsLeftAfterOutage > 0);
    out.push('', `Broker: every node holds the token within ${f.targetBrokerPropagationSeconds} s of the write: ${propOk ? 'met' : '**missed**'}; broker down ${f.outageHours} h, nodes still hold valid tokens: ${outageOk ? 'met' : '**missed**'}.`);
    for (const n of f.notes) out.push(`- ${n}`);
  }
  if (r.startup) {
    const st = r.startup;
    out.push('', `## 6. Start-up: process start → first apply (ms, ${st.runs} runs each)`, '');
    const startRows = [['mounted Secret', ms(st.mountedMs.p50), ms(st.mountedMs.max), ms(st.mountedMs.mean)], ['Secret watch', ms(st.watchMs.p50), ms(st.watchMs.max), ms(st.watchMs.mean)]];
    if (st.mountedPlainMs) startRows.push([`mounted Secret, without the image's Node flags`, ms(st.mountedPlainMs.p50), ms(st.mountedPlainMs.max), ms(st.mountedPlainMs.mean)]);
    out.push(table(['agent', 'p50', 'max', 'mean'], startRows));
    for (const n of st.notes) out.push(`- ${n}`);
  }
  if (r.image) {
    const im = r.image;
    out.push('', '## 9. The image: size and the time for containerd to pull it from a local registry', '');
    out.push(
      table(
        ['image', 'size MiB (docker image inspect)', 'compressed MiB (registry)', 'layers', 'pull p50 ms', 'pull max ms', 'pulls'],
        im.rows.map((x) => [x.image, x.sizeMiB, x.compressedMiB, x.layers, ms(x.pullMs.p50), ms(x.pullMs.max), x.pullMs.n]),
      ),
    );
    const mine = im.rows[0];
    if (mine) out.push('', `Target ≤ ${im.targetMiB} MiB: ${mine.sizeMiB <= im.targetMiB ? 'met' : '**missed**'} (${mine.sizeMiB} MiB).`);
    for (const n of im.notes) out.push(`- ${n}`);
  }
  if (r.fanout) {
    const f = r.fanout;
    out.push('', '## 11. Fan-out on a real kube-apiserver + etcd: one Secret change to N watches; then the API server restarted', '');
    out.push(
      table(
        ['watches', 'all following after s', 'delivery p50 / p99 / max ms', 'last watcher per change ms', 'apiserver CPU ms (changes)', 'apiserver RSS MiB idle → with watches', 'etcd CPU ms / RSS MiB', 'watchers process CPU ms / RSS MiB', 'load after'],
        f.rows.map((x) => [
          x.watchers,
          x.connectSeconds,
          `${ms(x.deliveryMs.p50)} / ${ms(x.deliveryMs.p99)} / ${ms(x.deliveryMs.max)}`,
          x.lastPerChangeMs.map((v) => ms(v)).join(', '),
          x.apiserver.cpuMs,
          `${x.apiserver.rssIdleMiB} → ${x.apiserver.rssMiB}`,
          `${x.etcd.cpuMs} / ${x.etcd.rssMiB}`,
          `${x.watchersProcess.cpuMs} / ${x.watchersProcess.rssMiB}`,
          x.loadAverage.join(' / '),
        ]),
      ),
    );
    out.push('', 'The API server restarted under the watches:', '');
    out.push(
      table(
        ['watches', 'start → /readyz ms', 'start → a watch stream open again p50 / p99 / max ms', 'start → re-synced (first snapshot) p50 / max ms', 'not back', 'Secret requests (new server)', 'req/s until all back', 'peak inflight (sampled)', '429s', 'relists'],
        f.rows.map((x) => [
          x.watchers,
          x.restart.readyMs,
          `${ms(x.restart.reconnectMs.p50)} / ${ms(x.restart.reconnectMs.p99)} / ${ms(x.restart.reconnectMs.max)}`,
          `${ms(x.restart.resyncMs.p50)} / ${ms(x.restart.resyncMs.max)}`,
          x.restart.notBack,
          x.restart.secretRequests,
          x.restart.requestsPerSecond,
          x.restart.peakInflight,
          x.restart.rejected,
          x.restart.relists,
        ]),
      ),
    );
    for (const n of f.notes) out.push(`- ${n}`);
  }
  if (r.trouble) {
    const t = r.trouble;
    out.push('', `## 7. Control-plane trouble: the API server stopped ${t.downSeconds} s, then started, under N watchers (issue 25)`, '');
    const s = (x: number): string => (Number.isFinite(x) ? String(round(x / 1000, 1)) : '—');
    out.push(
      table(
        ['watchers', 'synced after s', 'req/s per agent down', 'req/s total down', 'first minute total', 'last part per agent', 'last part total', 'attempts per watcher (mean / max)', 'largest retry s', 'watch accepted again p50 / max s', 'change seen p50 / max s', 'lost credentials', 'load after'],
        t.rows.map((x) => [
          x.watchers,
          s(x.syncedAfterMs),
          x.down.perAgentPerSecond,
          x.down.totalPerSecond,
          x.firstMinute.totalPerSecond,
          x.tail.perAgentPerSecond,
          x.tail.totalPerSecond,
          `${round(x.tail.attemptsPerWatcher.mean, 2)} / ${x.tail.attemptsPerWatcher.max} in ${x.tailSeconds} s`,
          s(x.maxRetryInMs),
          `${s(x.reconnectMs.p50)} / ${s(x.reconnectMs.max)}${x.notReconnected ? ` (${x.notReconnected} not)` : ''}`,
          `${s(x.seenMs.p50)} / ${s(x.seenMs.max)}${x.notSeen ? ` (${x.notSeen} not)` : ''}`,
          x.lostCredentials,
          x.loadAverage.join(' / '),
        ]),
      ),
    );
    for (const n of t.notes) out.push(`- ${n}`);
  }
  if (r.wait) {
    const w = r.wait;
    const s = (x: number): string => (Number.isFinite(x) ? String(round(x, x >= 10 ? 0 : 1)) : '—');
    out.push('', `## 8. The user's wait on a real kubelet 1.34 + containerd 2.2: Secret change → a new pod's pull (s, ${w.repetitions} repetition${w.repetitions === 1 ? '' : 's'} per mode, both modes side by side)`, '');
    out.push(
      table(
        ['mode', 'rotation: pulled p50 / max', 'Running p50 / max', 'failed pulls', 'new registry: pulled p50 / max', 'Running p50 / max', 'failed pulls', 'removal: last pull that worked p50 / max', 'first refused pull p50 / max', 'its pod refused p50 / max', 'pods still pulling', 'agent wrote p50 / max', 'a pod, nothing changed p50 / max', 'kubelet restarted'],
        w.modes.map((m) => [
          m.mode,
          `${s(m.rotation.pulled.p50)} / ${s(m.rotation.pulled.max)}`,
          `${s(m.rotation.p50)} / ${s(m.rotation.max)}${m.rotation.timeouts ? ` (${m.rotation.timeouts} timed out)` : ''}`,
          m.rotation.failedPulls,
          `${s(m.added.pulled.p50)} / ${s(m.added.pulled.max)}`,
          `${s(m.added.p50)} / ${s(m.added.max)}${m.added.timeouts ? ` (${m.added.timeouts} timed out)` : ''}`,
          m.added.failedPulls,
          `${s(m.removal.keptPulling.p50)} / ${s(m.removal.keptPulling.max)}`,
          `${s(m.removal.pulled.p50)} / ${s(m.removal.pulled.max)}`,
          `${s(m.removal.p50)} / ${s(m.removal.max)}${m.removal.timeouts ? ` (${m.removal.timeouts} timed out)` : ''}`,
          m.removal.podsStillPulling,
          `${s(m.agentWrote.p50)} / ${s(m.agentWrote.max)}`,
          `${s(m.unchangedPull.p50)} / ${s(m.unchangedPull.max)}`,
          m.kubeletRestarted ? '**yes**' : 'no',
        ]),
      ),
    );
    const provider = w.modes.find((m) => m.mode === 'provider');
    if (provider && !provider.error) {
      // The issue's measure is the pull; Running adds the container start and the kubelet's 1 s PLEG relist.
      const worst = Math.max(provider.rotation.pulled.max, provider.added.pulled.max, provider.removal.pulled.max);
      const running = Math.max(provider.rotation.max, provider.added.max, provider.removal.max);
      out.push('', `Provider-mode target ≤ 2 s for each, t0 to the pull: ${worst <= 2 ? `met (worst ${s(worst)} s)` : `**missed** (worst ${s(worst)} s)`}; to the pod seen Running: worst ${s(running)} s.`);
    }
    const cj = w.modes.find((m) => m.mode === 'config.json');
    if (cj) for (const [i, rep] of cj.repetitions.entries()) if (rep.sinceKubeletReadSeconds !== undefined) out.push(`- config.json repetition ${i + 1}: t0 ${s(rep.sinceKubeletReadSeconds)} s after the kubelet's last read of its docker config; it read it again ${rep.kubeletReadAfterSeconds === undefined ? '(not seen in its log)' : `${s(rep.kubeletReadAfterSeconds)} s after t0`}`);
    for (const m of w.modes) if (m.error) out.push(`- ${m.mode}: **failed**: ${m.error.split('\n')[0]}`);
    out.push(`- load average ${w.loadAverageAtStart.join(' / ')} at the start, ${w.loadAverageAtEnd.join(' / ')} at the end (\`uptime\`: ${w.uptimeAtStart} → ${w.uptimeAtEnd})`);
    for (const n of w.notes) out.push(`- ${n}`);
  }
  if (r.newnode) {
    const nn = r.newnode;
    const s = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '—' : String(round(x, x >= 10 ? 0 : 1)));
    const span = (xs: (number | undefined)[]): string => {
      const d = xs.filter((x): x is number => x !== undefined);
      return d.length === 0 ? '—' : d.length === 1 ? s(d[0]) : `${s(Math.min(...d))}–${s(Math.max(...d))}`;
    };
    out.push('', `## 10. A brand-new node: from Ready to the first private pull (s, kubelet 1.34 + containerd 2.2, ${nn.repetitions} node boot${nn.repetitions === 1 ? '' : 's'} per row, side by side)`, '');
    out.push(
      table(
        ['row', 'Ready → pulled', 'Ready → Running', 'failed pulls', 'startup taint lifted', 'effective annotation', 'kubelet restarted'],
        nn.rows.map((row) => [
          row.name,
          span(row.runs.map((x) => x.readyToPulledS)),
          span(row.runs.map((x) => x.readyToRunningS)),
          row.runs.reduce((n, x) => n + x.failedPulls, 0),
          row.taint ? span(row.runs.map((x) => x.taintLiftedS)) : 'no taint',
          row.runs.map((x) => (x.effective ?? '—').split(' ').filter((_, i) => i !== 1).join(' ')).join('; '),
          row.runs.some((x) => x.kubeletRestarted) ? '**yes**' : 'no',
        ]),
      ),
    );
    for (const row of nn.rows) if (row.error) out.push(`- ${row.name}: **failed**: ${row.error.split('\n')[0]}`);
    out.push(`- load average ${nn.loadAverageAtStart.join(' / ')} at the start, ${nn.loadAverageAtEnd.join(' / ')} at the end`);
    for (const n of nn.notes) out.push(`- ${n}`);
  }
  const errs = Object.entries(r.errors);
  if (errs.length > 0) {
    out.push('', '## Sections that failed', '');
    for (const [s, e] of errs) out.push(`- ${s}: ${e}`);
  }
  return `${out.join('\n')}\n`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' } }, allowPositionals: false });
  if (!process.version.startsWith('v24.')) {
    process.stderr.write(`bench: needs Node 24 (the pinned dev dependency); this is ${process.version}. Run it with \`npm run bench\`.\n`);
    return 1;
  }
  const cfg = values.quick ? QUICK : FULL;
  const only = new Set((values.only ?? DEFAULT_SECTIONS.join(',')).split(',').map((s) => s.trim()));
  const started = now();
  const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

  const build: AgentBuild = await buildAgent();
  const runtimeEnv = Object.entries(daemonSetRuntimeEnv()).map(([k, v]) => `${k}=${v}`);
  const note = runtimeEnv.length > 0 ? `${build.note}, run with the DaemonSet's ${runtimeEnv.join(' ')}` : build.note;
  log(`agent: ${note}`);
  const results: Results = { machine: machine(), mode: values.quick ? 'quick' : 'full', agent: { kind: build.kind, note }, secondsPerSection: {}, errors: {} };

  const runSection = async (name: Section, fn: () => Promise<void> | void): Promise<void> => {
    if (!only.has(name)) return;
    log(`${name}…`);
    const t0 = now();
    try {
      await fn();
    } catch (e) {
      results.errors[name] = e instanceof Error ? e.message : 'failed';
    }
    results.secondsPerSection[name] = round((now() - t0) / 1000, 1);
    log(`${name}: ${results.secondsPerSection[name]} s`);
  };

  await runSection('fleet', async () => void (results.fleet = await fleetSection(cfg.fleetSizes, cfg.fleetHours)));
  await runSection('scale', async () => void (results.scale = await scaleSection(cfg.scaleSizes, cfg.scaleTimeoutMs)));
  await runSection('churn', async () => void (results.churn = await churnSection(build, cfg.churnUpdates, cfg.churnTimeoutMs)));
  await runSection('idle', async () => void (results.idle = await idleSection(build, cfg.idleSeconds)));
  await runSection('latency', async () => void (results.latency = await latencySection(build, cfg.latencyChanges, cfg.latencyBudgetMs)));
  await runSection('startup', async () => void (results.startup = await startupSection(build, cfg.startupRuns, 30_000)));
  await runSection('image', async () => void (results.image = await imageSection(cfg.imagePulls, log)));
  await runSection('fanout', async () => {
    const sizes = (process.env['NRC_BENCH_FANOUT_WATCHERS'] ?? '').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
    results.fanout = await fanoutSection(sizes.length > 0 ? sizes : values.quick ? [100] : [100, 1000], log);
  });
  await runSection('trouble', async () => {
    const sizes = (process.env['NRC_BENCH_TROUBLE_WATCHERS'] ?? '').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
    const downS = Number(process.env['NRC_BENCH_TROUBLE_DOWN_SECONDS']);
    results.trouble = await troubleSection(sizes.length > 0 ? sizes : cfg.troubleSizes, Number.isFinite(downS) && downS > 0 ? downS * 1000 : cfg.troubleDownMs, log);
  });
  await runSection('wait', async () => {
    const reps = Number(process.env['NRC_BENCH_WAIT_REPS']);
    results.wait = await waitSection(Number.isInteger(reps) && reps > 0 ? reps : cfg.waitRepetitions, log);
    const failed = results.wait.modes.filter((m) => m.error !== undefined).map((m) => `${m.mode}: ${m.error}`);
    if (failed.length > 0) throw new Error(failed.join('; '));
  });
  await runSection('newnode', async () => {
    const reps = Number(process.env['NRC_BENCH_NEWNODE_REPS']);
    results.newnode = await newNodeSection(Number.isInteger(reps) && reps > 0 ? reps : 1, log);
    const failed = results.newnode.rows.filter((r) => r.error !== undefined).map((r) => `${r.name}: ${r.error}`);
    if (failed.length > 0) throw new Error(failed.join('; '));
  });
  results.totalSeconds = round((now() - started) / 1000, 1);

  const md = renderMarkdown(results);
  const dir = join(REPO, 'bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const jsonFile = values.out ?? join(dir, `bench-${results.mode}.json`);
  fs.writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(jsonFile.replace(/\.json$/, '') + '.md', md);
  fs.rmSync(join(BUILD_DIR, 'tmp'), { recursive: true, force: true });
  process.stdout.write(md);
  log(`wrote ${jsonFile} and its .md twin`);
  return Object.keys(results.errors).length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.message : 'error'}\n`);
    process.exit(1);
  },
);
