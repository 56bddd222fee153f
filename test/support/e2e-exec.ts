// Running host commands for the e2e suite, with a readable step log.
import { spawn } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly input?: string | Buffer;
  /** Shown in the log instead of the argv (for commands that carry a password). */
  readonly display?: string;
}

/** Prints a step of the scenario so a CI log shows what was proven. */
export function step(message: string): void {
  process.stdout.write(`\n[e2e] ${message}\n`);
}

export function note(message: string): void {
  process.stdout.write(`[e2e]   ${message}\n`);
}

/** Runs a command to completion; never throws for a non-zero exit (the caller asserts). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // a command may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** Runs a command and throws with its output when it fails. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const shown = opts.display ?? [cmd, ...args].join(' ');
    throw new Error(`command failed (exit ${r.code}): ${shown}\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

/** The last lines of a command's output, for messages and logs. */
export function tail(text: string, lines = 6): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}
