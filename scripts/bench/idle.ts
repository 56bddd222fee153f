// Section 2: the agent at rest (10 registries, nothing changing) against a bare Node process
// started the same way, side by side: RSS, CPU time and wake-ups over the same window.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { type AgentBuild, daemonSetRuntimeEnv, dockerConfig, KubeletSecretVolume, makeHostRoot, mib, NODE, now, type ProcSample, REPO, round, sampleProc, sleep, spawnAgent, stopChild, until, VersionWatcher } from './lib.ts';
import { serviceAccountKubeconfig } from '../../test/support/control-plane.ts';
import { NS, SECRET, startRealSecretAgent, startSecretAgent } from './secret-agent.ts';

const REGISTRIES = 10;
const TICK_MS = 10; // USER_HZ = 100

export interface IdleRow {
  readonly name: string;
  readonly rssMiB: number;
  readonly peakRssMiB: number;
  readonly threads: number;
  readonly cpuMs: number;
  readonly cpuPercent: number;
  readonly wakeupsPerMinute: number;
  readonly rssRatio?: number;
}

/** Wake-ups of one agent in two windows: at rest (effective) and pending (no read since a write). */
export interface WakeRow {
  readonly name: string;
  /** Voluntary context switches of the main thread (each one a sleep, so one wake-up), per minute. */
  readonly restMain: number;
  readonly restAll: number;
  readonly pendingMain: number;
  readonly pendingAll: number;
}

export interface IdleResult {
  readonly seconds: number;
  readonly rows: IdleRow[];
  /** Per agent: wake-ups at rest and while pending (the effective-state observer polls then). */
  readonly wakeups: WakeRow[];
  /** `uptime`'s load averages at the start and end of the wake-up windows. */
  readonly wakeLoad: readonly (readonly number[])[];
  /** RSS a bare Node process gains by importing each dependency alone (what dominates memory). */
  readonly moduleRssMiB: Record<string, number>;
  readonly targetMemoryRatio: number;
  readonly notes: string[];
}

function row(name: string, a: ProcSample, b: ProcSample, seconds: number): IdleRow {
  const cpuMs = (b.cpuTicks - a.cpuTicks) * TICK_MS;
  return {
    name,
    rssMiB: mib(b.rssKiB),
    peakRssMiB: mib(b.hwmKiB),
    threads: b.threads,
    cpuMs,
    cpuPercent: round((cpuMs / (seconds * 1000)) * 100, 2),
    wakeupsPerMinute: round(((b.ctxSwitches - a.ctxSwitches) / seconds) * 60, 0),
  };
}

export async function idleSection(build: AgentBuild, seconds: number): Promise<IdleResult> {
  const notes: string[] = [];
  // The agent with the mounted Secret (no Kubernetes client in use).
  const hostM = await makeHostRoot('idle-m');
  const vol = new KubeletSecretVolume(join(hostM.root, '..', 'secret'));
  vol.update(dockerConfig(REGISTRIES, 1));
  const agentM = spawnAgent(build, ['--host-root', hostM.root, '--dockerconfig', vol.dir, '--no-kubernetes']);
  const watchM = new VersionWatcher(hostM.kubeletConfig);
  // The same without the image's ENTRYPOINT flags (--no-node-snapshot, --optimize-for-size): what they save at rest.
  const flags = build.argv.filter((a) => a.startsWith('--') && a !== '--import');
  const hostP = flags.length > 0 ? await makeHostRoot('idle-p') : undefined;
  const agentP = hostP ? spawnAgent({ ...build, argv: build.argv.filter((a) => !flags.includes(a)) }, ['--host-root', hostP.root, '--dockerconfig', vol.dir, '--no-kubernetes']) : undefined;
  const watchP = hostP ? new VersionWatcher(hostP.kubeletConfig) : undefined;

  // The agent watching the Secret through the fake API server (the DaemonSet's default mode).
  const api = new FakeApiServer();
  await api.start();
  api.putDockerConfigSecret(NS, SECRET, dockerConfig(REGISTRIES, 1));
  const hostK = await makeHostRoot('idle-k');
  const agentK = await startSecretAgent(build, api, hostK.root, join(hostK.root, '..'));
  const watchK = new VersionWatcher(hostK.kubeletConfig);

  // The same watch through a real kube-apiserver + etcd, as the DaemonSet's ServiceAccount.
  const real = await startRealSecretAgent(build, REGISTRIES, 'idle-r');
  if (typeof real === 'string') notes.push(`real API server row skipped: ${real}`);
  const watchR = typeof real === 'string' ? undefined : real.watch;
  // Other builds of the agent on the same real API server, side by side (each step of a diet):
  // NRC_BENCH_IDLE_COMPARE=label=DIR[:flags],... where DIR holds a bundled cli.js.
  const compare = typeof real === 'string' ? [] : await startCompared(real.cp.info, flags);
  // The same agent as the DaemonSet runs it: in-cluster (the ServiceAccount's files, no kubeconfig,
  // so no YAML parser), on the same real API server.
  const inCluster = typeof real === 'string' ? undefined : await startInCluster(build, real.cp.info);
  if (typeof inCluster === 'string') notes.push(`in-cluster row skipped: ${inCluster}`);
  const watchI = typeof inCluster === 'object' ? inCluster.watch : undefined;

  // The bare runtime, started the same way (same binary, cwd and environment).
  const bare = spawn(NODE, ['-e', 'setInterval(()=>{}, 1e9)'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  // What any agent of this design loads, and nothing else: node:https, an HTTP server, one scrypt
  // hash and fs/promises, with the agent's Node flags and environment. The floor of the ratio.
  const floor = spawn(NODE, [...flags, '-e', FLOOR], {
    cwd: REPO,
    env: { ...process.env, ...daemonSetRuntimeEnv() },
    stdio: ['ignore', 'ignore', 'pipe'],
  });

  const ok = await until(() => watchM.latest >= 1 && watchK.latest >= 1 && (watchR?.latest ?? 1) >= 1 && (watchP?.latest ?? 1) >= 1 && compare.every((c) => c.watch.latest >= 1) && (watchI?.latest ?? 1) >= 1, 30_000, 50);
  if (!ok) notes.push('an agent did not write its first configuration within 30 s');
  watchM.close();
  watchK.close();
  watchR?.close();
  watchP?.close();
  for (const c of compare) c.watch.close();
  watchI?.close();
  // Let start-up settle (JIT, GC of start-up garbage) before the window opens.
  await sleep(3000);
  const pids: [string, number][] = [
    ['bare node -e "setInterval(()=>{}, 1e9)"', bare.pid ?? -1],
    ['floor: node:https, an HTTP server, one scrypt, fs/promises (agent flags)', floor.pid ?? -1],
    ['run, mounted Secret (--no-kubernetes)', agentM.pid],
  ];
  if (agentP) pids.push([`run, mounted Secret, without ${flags.join(' ')}`, agentP.pid]);
  if (agentK.mode === 'run process') pids.push(['run, Secret watch (fake API server)', agentK.pid]);
  else notes.push('the Secret-watch agent could not run as a separate `run` process in this tree (no --kubeconfig); only the mounted-Secret agent was measured');
  if (typeof real !== 'string') pids.push(['run, Secret watch (real kube-apiserver + etcd)', real.agent.pid]);
  if (typeof inCluster === 'object') pids.push(['run, Secret watch (real kube-apiserver + etcd), in-cluster as the DaemonSet', inCluster.pid]);
  for (const c of compare) pids.push([`${c.label}: run, Secret watch (real kube-apiserver + etcd)`, c.agent.pid]);
  const before = pids.map(([, pid]) => sampleProc(pid));
  const t0 = now();
  const [moduleRssMiB] = await Promise.all([moduleCosts(), sleep(seconds * 1000)]);
  const after = pids.map(([, pid]) => sampleProc(pid));
  const elapsed = (now() - t0) / 1000;
  const rows = pids.map(([name], i) => row(name, before[i]!, after[i]!, elapsed));
  const bareRss = rows[0]!.rssMiB;
  const withRatio = rows.map((r, i) => (i === 0 ? r : { ...r, rssRatio: round(r.rssMiB / bareRss, 2) }));

  // Wake-ups, in two more windows of the same length: pending (a new generation written, nobody
  // reads the kubelet's file, so the effective-state observer polls it) and at rest (the harness
  // reads it as the kubelet would; once the observer has seen the read no timer of its own runs).
  const agents = pids.filter(([name]) => name.startsWith('run') || name.includes(': run,')).map(([name, pid]) => ({ name, pid, file: kubeletFileOf(pid) }));
  const load0 = loadAverage();
  const mtimes = agents.map((a) => mtimeOf(a.file));
  vol.update(dockerConfig(REGISTRIES, 2));
  if (agentK.mode === 'run process') api.putDockerConfigSecret(NS, SECRET, dockerConfig(REGISTRIES, 2));
  if (typeof real !== 'string') await real.put(2);
  // stat only: a read would move the access time and make the write effective at once.
  if (!(await until(() => agents.every((a, i) => mtimeOf(a.file) !== mtimes[i]), 30_000, 100))) notes.push('wake-ups: an agent did not write the second generation within 30 s');
  await sleep(3000);
  const pending = await wakeWindow(agents.map((a) => a.pid), seconds);
  const readDuring = agents.filter((a) => isRead(a.file)).map((a) => a.name);
  if (readDuring.length > 0) notes.push(`wake-ups: read during the pending window (so not pending all along): ${readDuring.join('; ')}`);
  // The kubelet's read, then time for the observer to see it (its slowest poll) before the window.
  for (const a of agents) if (a.file) readFileSync(a.file);
  await sleep(OBSERVER_SLOWEST_POLL_MS + 2000);
  const rest = await wakeWindow(agents.map((a) => a.pid), seconds);
  const wakeups = agents.map((a, i) => ({ name: a.name, pendingMain: pending[i]!.main, pendingAll: pending[i]!.all, restMain: rest[i]!.main, restAll: rest[i]!.all }));
  const wakeLoad = [load0, loadAverage()];

  await Promise.all([agentM.stop(), agentP?.stop(), agentK.stop(), ...compare.map((c) => c.stop()), typeof inCluster === 'object' ? inCluster.stop() : undefined, stopChild(bare), stopChild(floor)]);
  if (typeof real !== 'string') await real.stop();
  await api.stop();
  await Promise.all([hostM.cleanup(), hostK.cleanup(), hostP?.cleanup()]);
  return { seconds: round(elapsed, 1), rows: withRatio, wakeups, wakeLoad, moduleRssMiB, targetMemoryRatio: 1.3, notes };
}

/** The observer's longest wait between two looks at a pending file (src/commands/effective-observer.ts). */
const OBSERVER_SLOWEST_POLL_MS = 20_000;

/** The kubelet's config.json of an agent, from its --host-root argument. */
function kubeletFileOf(pid: number): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('--host-root');
    return i >= 0 && argv[i + 1] ? join(argv[i + 1]!, 'var/lib/kubelet/config.json') : undefined;
  } catch {
    return undefined;
  }
}

function mtimeOf(file: string | undefined): number | undefined {
  try {
    return file === undefined ? undefined : statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The rule of src/report/effective.ts: read since written when the access time is past the modification time. */
function isRead(file: string | undefined): boolean {
  try {
    const s = file === undefined ? undefined : statSync(file);
    return s !== undefined && s.atimeMs > s.mtimeMs;
  } catch {
    return false;
  }
}

/** Voluntary context switches of the main thread (one per sleep), and all switches of all threads. */
function switches(pid: number): { main: number; all: number } {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  const main = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  return { main, all: sampleProc(pid).ctxSwitches };
}

async function wakeWindow(pids: readonly number[], seconds: number): Promise<{ main: number; all: number }[]> {
  const a = pids.map(switches);
  const t0 = now();
  await sleep(seconds * 1000);
  const b = pids.map(switches);
  const minutes = (now() - t0) / 60_000;
  return pids.map((_, i) => ({ main: round((b[i]!.main - a[i]!.main) / minutes, 0), all: round((b[i]!.all - a[i]!.all) / minutes, 0) }));
}

function loadAverage(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

/** The builds named in NRC_BENCH_IDLE_COMPARE, each a `run` agent on the real API server's Secret. */
async function startCompared(info: Parameters<typeof serviceAccountKubeconfig>[0], flags: readonly string[]) {
  const specs = (process.env['NRC_BENCH_IDLE_COMPARE'] ?? '').split(',').filter((s) => s.includes('='));
  const { path } = await serviceAccountKubeconfig(info);
  return Promise.all(
    specs.map(async (spec) => {
      // label=DIR (the image's Node flags) or label=DIR:--node-flag --node-flag (these instead).
      const [label, rest] = spec.split('=') as [string, string];
      const [dir, extra] = rest.split(':') as [string, string | undefined];
      const host = await makeHostRoot(`idle-c-${label.replace(/\W/g, '')}`);
      const agent = spawnAgent({ argv: [...(extra === undefined ? flags : extra.split(' ').filter(Boolean)), join(dir, 'cli.js')], kind: 'dist', note: label }, ['--host-root', host.root, '--kubeconfig', path, '--secret-namespace', NS, '--secret-name', SECRET]);
      const watch = new VersionWatcher(host.kubeletConfig);
      return { label, agent, watch, stop: async () => (watch.close(), await agent.stop(), await host.cleanup()) };
    }),
  );
}

/**
 * The agent in-cluster, as in the DaemonSet's pod: KUBERNETES_SERVICE_HOST/PORT and the
 * ServiceAccount's token and CA at /var/run/secrets/kubernetes.io/serviceaccount, given in a
 * mount namespace of its own (a tmpfs over /run: nothing on this machine's /run changes).
 */
async function startInCluster(build: AgentBuild, info: Parameters<typeof serviceAccountKubeconfig>[0]) {
  if (process.getuid?.() !== 0) return 'needs root (a mount namespace for the ServiceAccount files)';
  const { token } = await serviceAccountKubeconfig(info);
  const host = await makeHostRoot('idle-i');
  const sa = join(host.root, '..', 'serviceaccount');
  mkdirSync(sa);
  writeFileSync(join(sa, 'token'), token);
  copyFileSync(info.caFile, join(sa, 'ca.crt'));
  const url = new URL(info.server);
  const script = 'mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && cp "$SA_DIR"/token "$SA_DIR"/ca.crt /run/secrets/kubernetes.io/serviceaccount/ && exec "$@"';
  const args = ['--host-root', host.root, '--secret-namespace', NS, '--secret-name', SECRET];
  // sh execs node: the pid measured is the agent's.
  const child: ChildProcess = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', NODE, ...build.argv, 'run', ...args], {
    cwd: REPO,
    env: { ...process.env, ...daemonSetRuntimeEnv(), SA_DIR: sa, KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const watch = new VersionWatcher(host.kubeletConfig);
  return { pid: child.pid ?? -1, watch, stop: async () => (watch.close(), await stopChild(child), await host.cleanup()) };
}

const FLOOR = [
  "require('node:https');",
  "require('node:http').createServer(() => {}).listen(0, '127.0.0.1');",
  "require('node:crypto').scrypt('x', 'salt', 64, { N: 16384, r: 8, p: 1, maxmem: 64 * 2 ** 20 }, () => {});",
  "require('node:fs/promises').readFile('/proc/self/status');",
  'setInterval(() => {}, 1e9);',
].join(' ');

const MODULES = ['@kubernetes/client-node', '@aws-sdk/client-ecr', 'diff', 'smol-toml', 'chokidar'];

/** RSS after importing one module in a fresh process, minus a fresh process that imports nothing. */
async function moduleCosts(): Promise<Record<string, number>> {
  const rssAfterImport = (mod: string | undefined): Promise<number> =>
    new Promise((resolve) => {
      const code = `${mod ? `await import(${JSON.stringify(mod)});` : ''} await new Promise((r) => setTimeout(r, 1000)); const s = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8'); process.stdout.write(/VmRSS:\\s+(\\d+)/.exec(s)[1]);`;
      const c = spawn(NODE, ['--input-type=module', '-e', code], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', () => resolve(Number(out) || NaN));
    });
  const base = await rssAfterImport(undefined);
  const out: Record<string, number> = {};
  for (const m of MODULES) out[m] = mib((await rssAfterImport(m)) - base);
  return out;
}
