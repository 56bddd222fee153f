// Shared helpers of the reliability suite (test/reliability): sample nodes under a temp host
// root, byte-for-byte tree snapshots, inputs, a capturing logger and the secret scanner.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from '../../src/log.ts';
import { expect } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { secretsOf } from '../../src/model/secret-forms.ts';

export const REPO = path.resolve(import.meta.dirname, '../..');

export const CONTAINERD_CONFIG_V2 = `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`;

/** A foreign entry the node had before the agent came: it must survive everything. */
export const FOREIGN_AUTHS = { 'foreign.example.com': { auth: Buffer.from('someone:else').toString('base64') } };

export const TEST_CA = `-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUReliabilityTestCaNotARealCertificate0wCgYIKoZI
-----END CERTIFICATE-----
`;

export interface SampleHost {
  readonly root: string;
  /** A directory beside the host root for inputs (docker config, registry config). */
  readonly inputs: string;
  real(hostPath: string): string;
  remove(): void;
}

/**
 * A node's filesystem under a temp host root: containerd with config_path, Docker's and
 * CRI-O's config directories, a kubelet root dir and a kubelet config.json another tool wrote.
 */
export function makeSampleHost(opts: { base?: string; foreignKubeletConfig?: boolean } = {}): SampleHost {
  const top = fs.mkdtempSync(path.join(opts.base ?? os.tmpdir(), 'nrc-rel-'));
  const root = path.join(top, 'host');
  const inputs = path.join(top, 'inputs');
  for (const d of ['etc/containerd/certs.d', 'etc/docker', 'etc/containers', 'var/lib/kubelet/pods', 'root']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.mkdirSync(inputs);
  fs.writeFileSync(path.join(root, 'etc/containerd/config.toml'), CONTAINERD_CONFIG_V2);
  if (opts.foreignKubeletConfig ?? true) {
    fs.writeFileSync(path.join(root, 'var/lib/kubelet/config.json'), `${JSON.stringify({ auths: FOREIGN_AUTHS }, null, 2)}\n`, { mode: 0o640 });
  }
  return {
    root,
    inputs,
    real: (p) => path.join(root, p),
    remove: () => fs.rmSync(top, { recursive: true, force: true }),
  };
}

export interface TreeEntry {
  readonly type: 'file' | 'dir' | 'symlink' | 'other';
  readonly mode: number;
  readonly content?: string;
}

/** Every entry under a directory with its type, mode and content (base64), to compare byte for byte. */
export function snapshotTree(dir: string): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, r));
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        out[r] = { type: 'dir', mode };
        walk(r);
      } else if (st.isFile()) out[r] = { type: 'file', mode, content: fs.readFileSync(path.join(dir, r)).toString('base64') };
      else if (st.isSymbolicLink()) out[r] = { type: 'symlink', mode: 0, content: fs.readlinkSync(path.join(dir, r)) };
      else out[r] = { type: 'other', mode };
    }
  };
  walk('');
  return out;
}

/** Temp files of the atomic writer left anywhere under a directory. */
export function strayTemps(dir: string): string[] {
  return Object.keys(snapshotTree(dir)).filter((p) => path.basename(p).includes('.nrc-tmp-'));
}

export interface TestCredential {
  readonly key: string;
  readonly username: string;
  readonly password: string;
}

/** A docker config JSON with "auth" fields, as `kubectl create secret docker-registry` makes. */
export function dockerConfigJson(creds: readonly TestCredential[]): string {
  const auths: Record<string, { auth: string }> = {};
  for (const c of creds) auths[c.key] = { auth: encodeAuth(c.username, c.password) };
  return JSON.stringify({ auths });
}

/** Registry config giving every host a CA and the Basic auth header (so hosts.toml carries the credential). */
export function registryToml(hosts: readonly string[]): string {
  return hosts.map((h) => `[registry."${h}"]\nca = """${TEST_CA}"""\nauth_header = true\n`).join('\n');
}

/** Every form a credential may leak in (the agent's own list: password, base64 auth, which is also the Basic header's value). */
export function secretForms(creds: readonly TestCredential[]): string[] {
  return secretsOf(creds).filter((s) => s.length >= 6);
}

/** Fails, naming the first leak without printing it whole, if any secret occurs in the text. */
export function expectNoSecrets(text: string, secrets: readonly string[], where: string): void {
  for (const s of secrets) {
    const i = text.indexOf(s);
    if (i >= 0) expect.fail(`a secret (${s.slice(0, 3)}…, ${s.length} chars) leaked into ${where} at offset ${i}`);
  }
}

/** The agent's own logger (src/log.ts: its redaction, its format) at debug level, keeping every line for scanning. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger('debug', stream), lines };
}

/** Polls a condition (no fixed sleeps); fails with the message after the timeout. */
export async function waitFor(cond: () => boolean, message: string, timeoutMs = 15_000, everyMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) expect.fail(`timed out: ${message}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function tryReadJson(file: string): unknown {
  try {
    return readJson(file);
  } catch {
    return undefined;
  }
}

/**
 * An entry point bundled once per test file (esbuild), so that a process starts fast: the tsx
 * loader costs seconds per process on a loaded 2-core machine, and these tests start hundreds.
 */
const bundles = new Map<string, string>();
export function bundle(entry: string): string {
  const done = bundles.get(entry);
  if (done) return done;
  // One fixed, world-readable place (rebuilt by every test file, renamed into place), so runs leave no litter.
  const out = path.join(os.tmpdir(), 'nrc-reliability-bundles');
  fs.mkdirSync(out, { recursive: true });
  const final = path.join(out, `${path.basename(entry, '.ts')}.mjs`);
  const file = `${final}.${process.pid}.tmp.mjs`;
  // Bundle everything (no externals) so the bundle runs from anywhere, as any uid.
  execFileSync(path.join(REPO, 'node_modules/.bin/esbuild'), [
    path.join(REPO, entry), '--bundle', '--platform=node', '--format=esm', '--target=node24', `--outfile=${file}`, '--log-level=error',
    "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  ], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.chmodSync(out, 0o755);
  fs.chmodSync(file, 0o644);
  fs.renameSync(file, final);
  bundles.set(entry, final);
  return final;
}

/** The agent's real CLI (src/cli.ts), bundled. */
export const bundledCli = (): string => bundle('src/cli.ts');

/** The project's Node 24 (the `node` dev dependency), not whatever node is on PATH. */
export const NODE = path.join(REPO, 'node_modules/.bin/node');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a CLI command of the bundled agent to completion. */
export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; uid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, opts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The Node binary a process of another uid can run: the project's own when that uid can reach
 * it, else a copy in a world-readable temp directory (a CI clone may sit under a 0700 folder).
 */
const nodeForUid = new Map<number, string>();
function nodeFor(uid: number | undefined): string {
  if (uid === undefined) return NODE;
  const known = nodeForUid.get(uid);
  if (known) return known;
  let bin = NODE;
  if (spawnSync(NODE, ['-e', '0'], { uid, gid: uid, stdio: 'ignore' }).status !== 0) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nrc-rel-node-'));
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    fs.chmodSync(dir, 0o755);
    bin = path.join(dir, 'node');
    fs.copyFileSync(fs.realpathSync(NODE), bin);
    fs.chmodSync(bin, 0o755);
  }
  nodeForUid.set(uid, bin);
  return bin;
}

export function spawnCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; uid?: number } = {}): ChildProcess {
  const env = { ...process.env, NRC_LOG_LEVEL: 'info', ...opts.env };
  return spawn(nodeFor(opts.uid), [bundledCli(), ...args], { cwd: os.tmpdir(), env, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}) });
}
