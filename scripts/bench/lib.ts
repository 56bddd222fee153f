// Shared pieces of the benchmark: the agent build, a kubelet-style Secret volume, a watcher
// that timestamps when a target file first holds a given version, /proc readers and stats.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The Node 24 binary this script runs on (npm puts the pinned one first on PATH). */
export const NODE = process.execPath;
export const BUILD_DIR = join(REPO, 'bench-results', 'build');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const now = (): number => performance.now();

// ---------------------------------------------------------------- the agent under test

export interface AgentBuild {
  /** argv prefix that starts the CLI: [cli.js] (built, as in the image) or ['--import', 'tsx', src/cli.ts]. */
  readonly argv: readonly string[];
  readonly kind: 'dist' | 'tsx';
  readonly note: string;
}

/** The Node flags of the Dockerfile's ENTRYPOINT (between `node` and the script), so the bench runs the agent as the image does. */
export function imageNodeFlags(): string[] {
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(fs.readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
  const argv = m ? (JSON.parse(m[1]!) as string[]) : [];
  return argv.slice(1).filter((a) => a.startsWith('--'));
}

/**
 * Bundles src/ to bench-results/build/dist exactly like `npm run build` (the image runs
 * `node [ENTRYPOINT flags] dist/cli.js`), so the agent is measured without the tsx loader. Falls
 * back to tsx.
 */
export async function buildAgent(): Promise<AgentBuild> {
  const outDir = join(BUILD_DIR, 'dist');
  const { bundle } = await import('../build.ts');
  try {
    await bundle(outDir);
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : 'error';
    return { argv: ['--import', 'tsx', join(REPO, 'src', 'cli.ts')], kind: 'tsx', note: `the esbuild bundle failed (${why}); ran src/cli.ts through tsx (adds the loader to memory)` };
  }
  const flags = imageNodeFlags();
  return { argv: [...flags, join(outDir, 'cli.js')], kind: 'dist', note: `bundled with esbuild and run as the image runs it (node ${[...flags, 'dist/cli.js'].join(' ')})` };
}

export function runHelpHas(build: AgentBuild, flag: string): boolean {
  const r = spawnSync(NODE, [...build.argv, 'run', '--help'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  return (r.stdout ?? '').includes(`--${flag}`);
}

export interface SpawnedAgent {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stderr lines (pino JSON) seen so far are counted here by message. */
  readonly messages: Map<string, number>;
  /** Number of 'host file changed' lines whose path is the given host path. */
  changedCount(hostPath: string): number;
  stop(): Promise<void>;
}

/**
 * The Node and allocator settings the DaemonSet gives the agent's container (NODE_OPTIONS,
 * MALLOC_*), read from daemonset/base/daemonset.yaml so the bench runs the agent as a node does.
 */
export function daemonSetRuntimeEnv(): Record<string, string> {
  const doc = load(fs.readFileSync(join(REPO, 'daemonset/base/daemonset.yaml'), 'utf8')) as {
    spec?: { template?: { spec?: { containers?: { name?: string; env?: { name?: string; value?: unknown }[] }[] } } };
  };
  const agent = doc.spec?.template?.spec?.containers?.find((c) => c.name === 'agent');
  const out: Record<string, string> = {};
  for (const e of agent?.env ?? []) if (e.name && /^(NODE_OPTIONS|MALLOC_)/.test(e.name) && typeof e.value === 'string') out[e.name] = e.value;
  return out;
}

export function spawnAgent(build: AgentBuild, args: readonly string[], env: NodeJS.ProcessEnv = {}): SpawnedAgent {
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...daemonSetRuntimeEnv(), ...env };
  delete fullEnv['KUBERNETES_SERVICE_HOST'];
  const child = spawn(NODE, [...build.argv, 'run', ...args], { cwd: REPO, env: fullEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  const messages = new Map<string, number>();
  const changedPaths = new Map<string, number>();
  let buf = '';
  child.stderr?.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const o = JSON.parse(line) as { msg?: unknown; path?: unknown };
        const msg = typeof o.msg === 'string' ? o.msg : '?';
        messages.set(msg, (messages.get(msg) ?? 0) + 1);
        if (msg === 'host file changed' && typeof o.path === 'string') changedPaths.set(o.path, (changedPaths.get(o.path) ?? 0) + 1);
      } catch {
        messages.set('(non-JSON stderr)', (messages.get('(non-JSON stderr)') ?? 0) + 1);
      }
    }
  });
  return {
    child,
    pid: child.pid ?? -1,
    messages,
    changedCount: (p) => changedPaths.get(p) ?? 0,
    stop: () => stopChild(child),
  };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

// ---------------------------------------------------------------- inputs

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

export const registryName = (i: number): string => `r${i}.bench.example.com`;

/**
 * A dockerconfigjson with `count` registries whose credentials carry `version`. The values are
 * synthetic and never printed; the version is read back from the first registry's auth.
 */
export function dockerConfig(count: number, version: number): string {
  const auths: Record<string, { auth: string }> = {};
  for (let i = 0; i < count; i++) auths[registryName(i)] = { auth: b64(`bench:v${version}-${i}`) };
  return JSON.stringify({ auths });
}

/** The version the kubelet config.json currently holds, or undefined (missing, partial, other). */
export function versionIn(bytes: Buffer): number | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { auths?: Record<string, { auth?: string }> };
    const auth = doc.auths?.[registryName(0)]?.auth;
    if (typeof auth !== 'string') return undefined;
    const m = /^bench:v(\d+)-0$/.exec(Buffer.from(auth, 'base64').toString('utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Secret volume as the kubelet's AtomicWriter lays it out: `..<timestamp>/` holds the keys,
 * `..data` is a symlink to it, every key at the top is a symlink through `..data`. An update
 * writes a new timestamped directory, points `..data_tmp` at it, renames it over `..data`
 * (the one atomic step) and removes the old directory.
 */
export class KubeletSecretVolume {
  private current: string | undefined;
  private seq = 0;
  constructor(readonly dir: string, private readonly key = '.dockerconfigjson') {
    fs.mkdirSync(dir, { recursive: true });
  }

  get file(): string {
    return join(this.dir, this.key);
  }

  update(content: string): void {
    const stamp = `..bench_${process.pid}_${++this.seq}`;
    const tsDir = join(this.dir, stamp);
    fs.mkdirSync(tsDir);
    fs.writeFileSync(join(tsDir, this.key), content, { mode: 0o644 });
    const tmp = join(this.dir, '..data_tmp');
    fs.symlinkSync(stamp, tmp);
    fs.renameSync(tmp, join(this.dir, '..data'));
    if (!fs.existsSync(this.file)) fs.symlinkSync(join('..data', this.key), this.file);
    if (this.current) fs.rmSync(join(this.dir, this.current), { recursive: true, force: true });
    this.current = stamp;
  }
}

/**
 * Timestamps, for every version, the first moment the target file held that version or a later
 * one. Driven by inotify on the target's directory (the agent renames into place; cp rewrites in
 * place) with a 25 ms poll as a safety net, so a missed event costs at most 25 ms.
 */
export class VersionWatcher {
  private seen = 0;
  private readonly waiters: { version: number; resolve: (t: number) => void }[] = [];
  private readonly watcher: fs.FSWatcher;
  private readonly poll: NodeJS.Timeout;
  reads = 0;

  constructor(private readonly file: string) {
    const dir = join(file, '..');
    fs.mkdirSync(dir, { recursive: true });
    this.watcher = fs.watch(dir, () => this.check());
    this.poll = setInterval(() => this.check(), 25);
    this.check();
  }

  get latest(): number {
    return this.seen;
  }

  private check(): void {
    const t = now();
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.file);
    } catch {
      return;
    }
    this.reads++;
    const v = versionIn(bytes);
    if (v === undefined || v <= this.seen) return;
    this.seen = v;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.version <= v) {
        this.waiters.splice(i, 1);
        w.resolve(t);
      }
    }
  }

  /** Resolves with the time the file first held `version` or later; undefined after timeoutMs. */
  waitFor(version: number, timeoutMs: number): Promise<number | undefined> {
    if (this.seen >= version) return Promise.resolve(now());
    return new Promise((resolve) => {
      const w = { version, resolve: (t: number) => (clearTimeout(timer), resolve(t)) };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  close(): void {
    this.watcher.close();
    clearInterval(this.poll);
  }
}

/** A temporary node: the kubelet directory and containerd with config_path (hosts.toml target). */
export async function makeHostRoot(prefix: string): Promise<{ root: string; kubeletConfig: string; cleanup: () => Promise<void> }> {
  const base = await mkdtemp(join(benchTmp(), `${prefix}-`));
  const root = join(base, 'host');
  fs.mkdirSync(join(root, 'var/lib/kubelet'), { recursive: true });
  fs.mkdirSync(join(root, 'etc/containerd'), { recursive: true });
  fs.mkdirSync(join(root, 'root/.docker'), { recursive: true });
  fs.writeFileSync(join(root, 'etc/containerd/config.toml'), 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n');
  return { root, kubeletConfig: join(root, 'var/lib/kubelet/config.json'), cleanup: () => rm(base, { recursive: true, force: true }) };
}

/** Temporary files go next to the repo's checkout (same disk as the work tree), not tmpfs. */
export function benchTmp(): string {
  const d = join(BUILD_DIR, 'tmp');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

export { tmpdir };

// ---------------------------------------------------------------- /proc

export interface ProcSample {
  readonly rssKiB: number;
  readonly hwmKiB: number;
  /** utime + stime in clock ticks (USER_HZ, 100/s on Linux). */
  readonly cpuTicks: number;
  /** Voluntary + involuntary context switches summed over every thread: how often it woke. */
  readonly ctxSwitches: number;
  readonly threads: number;
}

function statusField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

export function sampleProc(pid: number): ProcSample {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(rest[11]) + Number(rest[12]);
  let ctx = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const t = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      ctx += statusField(t, 'voluntary_ctxt_switches') + statusField(t, 'nonvoluntary_ctxt_switches');
    } catch {
      // thread exited
    }
  }
  return { rssKiB: statusField(status, 'VmRSS'), hwmKiB: statusField(status, 'VmHWM'), cpuTicks, ctxSwitches: ctx, threads: statusField(status, 'Threads') };
}

// ---------------------------------------------------------------- stats and formatting

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Dist {
  readonly n: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

export function dist(values: readonly number[]): Dist {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, mean };
}

export const round = (v: number, digits = 1): number => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v);
export const mib = (kib: number): number => round(kib / 1024, 1);

export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(3, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(cells[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join('\n');
}

/** Waits until `cond()` is true, polling; false after timeoutMs. */
export async function until(cond: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const end = now() + timeoutMs;
  while (now() < end) {
    if (cond()) return true;
    await sleep(everyMs);
  }
  return cond();
}
