// Section 2: the agent at rest (10 registries, nothing changing) against a bare Node process
// started the same way, side by side: RSS, CPU time and wake-ups over the same window.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { type AgentBuild, daemonSetRuntimeEnv, dockerConfig, KubeletSecretVolume, makeHostRoot, mib, NODE, now, type ProcSample, REPO, round, sampleProc, sleep, spawnAgent, stopChild, until, VersionWatcher } from './lib.ts';
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

export interface IdleResult {
  readonly seconds: number;
  readonly rows: IdleRow[];
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
  // The same without the image's ENTRYPOINT flags (--no-node-snapshot): what they save at rest.
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

  // The bare runtime, started the same way (same binary, cwd and environment).
  const bare = spawn(NODE, ['-e', 'setInterval(()=>{}, 1e9)'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  // What any agent of this design loads, and nothing else: node:https, an HTTP server, one scrypt
  // hash and fs/promises, with the agent's Node flags and environment. The floor of the ratio.
  const floor = spawn(NODE, [...flags, '-e', FLOOR], {
    cwd: REPO,
    env: { ...process.env, ...daemonSetRuntimeEnv() },
    stdio: ['ignore', 'ignore', 'pipe'],
  });

  const ok = await until(() => watchM.latest >= 1 && watchK.latest >= 1 && (watchR?.latest ?? 1) >= 1 && (watchP?.latest ?? 1) >= 1, 30_000, 50);
  if (!ok) notes.push('an agent did not write its first configuration within 30 s');
  watchM.close();
  watchK.close();
  watchR?.close();
  watchP?.close();
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
  const before = pids.map(([, pid]) => sampleProc(pid));
  const t0 = now();
  const [moduleRssMiB] = await Promise.all([moduleCosts(), sleep(seconds * 1000)]);
  const after = pids.map(([, pid]) => sampleProc(pid));
  const elapsed = (now() - t0) / 1000;
  const rows = pids.map(([name], i) => row(name, before[i]!, after[i]!, elapsed));
  const bareRss = rows[0]!.rssMiB;
  const withRatio = rows.map((r, i) => (i === 0 ? r : { ...r, rssRatio: round(r.rssMiB / bareRss, 2) }));

  await Promise.all([agentM.stop(), agentP?.stop(), agentK.stop(), typeof real === 'string' ? undefined : real.stop(), stopChild(bare), stopChild(floor)]);
  await api.stop();
  await Promise.all([hostM.cleanup(), hostK.cleanup(), hostP?.cleanup()]);
  return { seconds: round(elapsed, 1), rows: withRatio, moduleRssMiB, targetMemoryRatio: 1.3, notes };
}

const FLOOR = [
  "require('node:https');",
  "require('node:http').createServer(() => {}).listen(0, '127.0.0.1');",
  "require('node:crypto').scrypt('x', 'salt', 64, { N: 16384, r: 8, p: 1, maxmem: 64 * 2 ** 20 }, () => {});",
  "require('node:fs/promises').readFile('/proc/self/status');",
  'setInterval(() => {}, 1e9);',
].join(' ');

const MODULES = ['@kubernetes/client-node', '@aws-sdk/client-ecr', 'pino', 'diff', 'smol-toml', 'chokidar'];

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
