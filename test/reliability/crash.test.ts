// Crash safety: the agent is SIGKILLed at random moments while it applies changing input.
// After every kill each host file is the complete old or the complete new content, valid JSON
// or TOML; the agent's temp files are never taken for config; the next apply converges; and a
// cleanup at the end gives back the original host byte for byte.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCommand, type Io } from '../../src/commands/oneshot.ts';
import { COMMON_FLAGS, INPUT_FLAGS, parseFlags } from '../../src/commands/options.ts';
import { canonical } from '../../src/plan/json.ts';
import {
  bundle,
  dockerConfigJson,
  expectNoSecrets,
  makeSampleHost,
  NODE,
  registryToml,
  runCli,
  secretForms,
  spawnCli,
  waitFor,
  snapshotTree,
  strayTemps,
  type SampleHost,
  type TestCredential,
} from '../support/reliability-host.ts';

const KILLS = Number(process.env['NRC_RELIABILITY_KILLS'] ?? 200);
const HOSTS = ['reg-a.example.com:5000', 'reg-b.example.com', 'reg-c.example.com'];
// Which registries each input generation has; the last ones grow config.json to widen the write window.
const GENERATIONS: readonly { hosts: readonly string[]; hub: boolean; fillers: number }[] = [
  { hosts: HOSTS, hub: true, fillers: 40 },
  { hosts: [HOSTS[0]!], hub: false, fillers: 40 },
  { hosts: [HOSTS[1]!, HOSTS[2]!], hub: true, fillers: 0 },
  { hosts: [], hub: false, fillers: 0 },
  { hosts: HOSTS, hub: true, fillers: 400 },
  { hosts: [HOSTS[2]!], hub: false, fillers: 5 },
];

function credentialsOf(gen: number): TestCredential[] {
  const g = GENERATIONS[gen]!;
  const creds: TestCredential[] = g.hosts.map((h, i) => ({ key: h, username: `user-${i}`, password: `crash-pw-${gen}-${i}-Zq8x` }));
  if (g.hub) creds.push({ key: 'https://index.docker.io/v1/', username: 'hubuser', password: `crash-hub-token-${gen}-Kd2w` });
  for (let i = 0; i < g.fillers; i++) creds.push({ key: `filler-${i}.example.com`, username: `u${i}`, password: `crash-filler-${gen}-${i}-Pp4r` });
  return creds;
}

/** Every file the agent may write in this test. */
const TRACKED = [
  '/var/lib/kubelet/config.json',
  '/root/.docker/config.json',
  ...HOSTS.flatMap((h) => [
    `/etc/containerd/certs.d/${h}/hosts.toml`,
    `/etc/containerd/certs.d/${h}/ca.crt`,
    `/etc/docker/certs.d/${h}/ca.crt`,
    `/etc/containers/certs.d/${h}/ca.crt`,
  ]),
];

/** A file's content as a comparable value: 'missing', canonical JSON, or its bytes; 'INVALID: …' when it does not parse. */
function fileState(host: SampleHost, hostPath: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(host.real(hostPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  if (hostPath.endsWith('.json')) {
    try {
      return `json:${canonical(JSON.parse(bytes.toString('utf8')))}`;
    } catch {
      return `INVALID JSON (${bytes.byteLength} bytes)`;
    }
  }
  if (hostPath.endsWith('.toml')) {
    try {
      parseToml(bytes.toString('utf8'));
    } catch {
      return `INVALID TOML (${bytes.byteLength} bytes)`;
    }
  }
  return `bytes:${bytes.toString('base64')}`;
}

const hostState = (host: SampleHost): Record<string, string> => Object.fromEntries(TRACKED.map((p) => [p, fileState(host, p)]));

const quietIo = (sink: string[]): Io => ({ out: (t) => sink.push(t), err: (t) => sink.push(t) });

function applyInProcess(host: SampleHost, inputs: string, gen: number, sink: string[]): number {
  const flags = parseFlags(
    ['--host-root', host.root, '--dockerconfig', path.join(inputs, `gen-${gen}.json`), '--registry-config', path.join(inputs, `gen-${gen}.toml`)],
    [...COMMON_FLAGS, ...INPUT_FLAGS],
    {},
  );
  return applyCommand(flags, quietIo(sink));
}

interface KillOutcome {
  readonly lastBegin: number | undefined;
  readonly lastDone: number | undefined;
  readonly stderr: string;
}

/** Starts the worker at generation `first`, SIGKILLs it `delayMs` after it is ready. */
function runAndKill(worker: string, host: SampleHost, inputs: string, first: number, delayMs: number): Promise<KillOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [worker, host.root, inputs, String(first), String(GENERATIONS.length)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let armed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (!armed && out.includes('ready\n')) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`worker ended without the kill (${signal ?? _code}): ${stderr.slice(0, 500)}`));
      const begins = [...out.matchAll(/^begin (\d+)$/gm)].map((m) => Number(m[1]));
      const dones = [...out.matchAll(/^done (\d+) (\d+)$/gm)];
      for (const d of dones) if (d[2] !== '0') return reject(new Error(`an apply failed with exit ${d[2]}: ${stderr.slice(0, 500)}`));
      resolve({ lastBegin: begins.at(-1), lastDone: dones.length ? Number(dones.at(-1)![1]) : undefined, stderr });
    });
  });
}

describe('crash safety: SIGKILL at random moments of applies with changing input', () => {
  let host: SampleHost;
  let inputs: string;
  let worker: string;
  const reference: Record<string, string>[] = [];
  const allSecrets = GENERATIONS.flatMap((_, g) => secretForms(credentialsOf(g)));

  beforeAll(() => {
    worker = bundle('test/support/reliability-crash-worker.ts');
    host = makeSampleHost();
    inputs = host.inputs;
    GENERATIONS.forEach((g, i) => {
      fs.writeFileSync(path.join(inputs, `gen-${i}.json`), dockerConfigJson(credentialsOf(i)));
      fs.writeFileSync(path.join(inputs, `gen-${i}.toml`), registryToml(g.hosts));
    });
    // What each generation looks like on a node that never saw a crash.
    for (let g = 0; g < GENERATIONS.length; g++) {
      const fresh = makeSampleHost();
      try {
        expect(applyInProcess(fresh, inputs, g, [])).toBe(0);
        reference.push(hostState(fresh));
      } finally {
        fresh.remove();
      }
    }
  });
  afterAll(() => host?.remove());

  it(`keeps every file whole across ${KILLS} kills, converges after each, and cleanup restores the original host`, async () => {
    const original = snapshotTree(host.root);
    const originalState = hostState(host);
    // Generations differ file by file, so the test can tell old from new.
    expect(new Set(reference.map((r) => r['/var/lib/kubelet/config.json'])).size).toBe(GENERATIONS.length);

    let before = originalState;
    let next = 0;
    let killedMidApply = 0;
    let mixed = 0;
    const captured: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      // Mostly short delays (inside the first applies), sometimes long ones (deep into the loop).
      const delay = Math.random() < 0.8 ? Math.floor(Math.random() * 40) : Math.floor(Math.random() * 300);
      const outcome = await runAndKill(worker, host, inputs, next, delay);
      captured.push(outcome.stderr);
      const old = outcome.lastDone !== undefined ? reference[outcome.lastDone]! : before;
      const now = hostState(host);
      if (outcome.lastBegin !== undefined && outcome.lastBegin !== outcome.lastDone) killedMidApply++;
      for (const p of TRACKED) {
        const allowed = [old[p]];
        if (outcome.lastBegin !== undefined) allowed.push(reference[outcome.lastBegin]![p]);
        if (!allowed.includes(now[p])) {
          expect.fail(`after kill ${k} (begin ${outcome.lastBegin}, done ${outcome.lastDone}) ${p} is neither the old nor the new content: ${now[p]!.slice(0, 120)}`);
        }
      }
      if (outcome.lastBegin !== undefined && TRACKED.some((p) => now[p] !== old[p]) && TRACKED.some((p) => now[p] !== reference[outcome.lastBegin!]![p])) mixed++;
      // Leftover temp files are hidden names no runtime reads as config (hosts.toml, *.crt, *.cert, *.key, config.json).
      for (const t of strayTemps(host.root)) {
        const base = path.basename(t);
        expect(base.startsWith('.'), t).toBe(true);
        expect(/\.(crt|cert|key|toml|json)$/.test(base), t).toBe(false);
      }
      // The next run converges to the right state, whatever the kill left.
      next = (outcome.lastBegin ?? next) + 1;
      const gen = next % GENERATIONS.length;
      const sink: string[] = [];
      expect(applyInProcess(host, inputs, gen, sink), sink.join('')).toBe(0);
      captured.push(...sink);
      expect(hostState(host)).toEqual(reference[gen]);
      before = reference[gen]!;
      next++;
    }
    // The kills must have hit applies in flight, or the test proved nothing.
    expect(killedMidApply).toBeGreaterThan(KILLS / 4);
    console.log(`crash: ${KILLS} kills, ${killedMidApply} during an apply, ${mixed} left some files old and some new`);

    const cleanup = await runCli(['cleanup', '--host-root', host.root]);
    expect(cleanup.code, cleanup.stderr).toBe(0);
    expect(snapshotTree(host.root)).toEqual(original);
    for (const text of [...captured, cleanup.stdout, cleanup.stderr]) expectNoSecrets(text, allSecrets, 'the output of an apply');
  });

  it('the real `run` process, SIGKILLed while it follows a changing Secret, restarts into the right state', async () => {
    const RUN_KILLS = 6;
    const original = snapshotTree(host.root);
    const input = path.join(inputs, 'live.json');
    const options = path.join(inputs, 'live.toml');
    fs.writeFileSync(options, registryToml(HOSTS));
    fs.writeFileSync(input, fs.readFileSync(path.join(inputs, 'gen-0.json')));
    let out = '';
    for (let k = 0; k < RUN_KILLS; k++) {
      const child = spawnCli(['run', '--host-root', host.root, '--dockerconfig', input, '--registry-config', options, '--debounce-ms', '0', '--log-level', 'warn']);
      child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
      const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
      await waitFor(() => fileState(host, '/var/lib/kubelet/config.json') === reference[k % GENERATIONS.length]!['/var/lib/kubelet/config.json'], `run ${k} applied its first input`, 30_000);
      // Feed it new inputs as fast as it takes them, and kill it in the middle of that.
      const killAt = Date.now() + Math.floor(Math.random() * 150);
      for (let g = k + 1; Date.now() < killAt || g === k + 1; g++) {
        fs.writeFileSync(`${input}.tmp`, fs.readFileSync(path.join(inputs, `gen-${g % GENERATIONS.length}.json`)));
        fs.renameSync(`${input}.tmp`, input);
        await new Promise((r) => setTimeout(r, 5));
      }
      child.kill('SIGKILL');
      await closed;
      for (const p of TRACKED) expect(fileState(host, p), p).not.toMatch(/^INVALID/);
      // The next start takes this input and converges to it.
      fs.writeFileSync(input, fs.readFileSync(path.join(inputs, `gen-${(k + 1) % GENERATIONS.length}.json`)));
    }
    // Info level: its 'running' line says it has started. The host may already hold the target state
    // (the last killed run can get there), so converged files alone do not mean it is up yet.
    const last = spawnCli(['run', '--host-root', host.root, '--dockerconfig', input, '--registry-config', path.join(inputs, `gen-${RUN_KILLS % GENERATIONS.length}.toml`), '--log-level', 'info']);
    last.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const lastClosed = new Promise<number | null>((resolve) => last.on('close', (c) => resolve(c)));
    try {
      await waitFor(() => out.includes('running: following the sources') && TRACKED.every((p) => fileState(host, p) === reference[RUN_KILLS % GENERATIONS.length]![p]), 'converged after the kills', 30_000);
    } finally {
      last.kill('SIGTERM');
    }
    expect(await lastClosed).toBe(0);
    const cleanup = await runCli(['cleanup', '--host-root', host.root]);
    expect(cleanup.code, cleanup.stderr).toBe(0);
    const after = snapshotTree(host.root);
    expect(after).toEqual(original);
    expectNoSecrets(out, allSecrets, 'run logs');
  });
});
