// Section 3: 1 … 10,000 registries in one Secret: parse, plan and apply on a fresh node, then
// the same input again, which must write nothing. Each size runs in its own process.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { makeHostRoot, mib, NODE, REPO, round } from './lib.ts';

export interface ScaleRow {
  readonly registries: number;
  readonly secretKiB: number;
  readonly parseMs: number;
  readonly planMs: number;
  readonly applyMs: number;
  readonly totalMs: number;
  readonly bytesWritten: number;
  readonly reapplyMs: number;
  readonly reapplyBytesWritten: number;
  readonly peakRssMiB: number;
  readonly peakOverBaselineMiB: number;
  readonly errors: number;
}

export interface ScaleResult {
  readonly rows: ScaleRow[];
  readonly reapplyWritesNothing: boolean;
  readonly notes: string[];
}

interface Pass {
  parseMs: number;
  planMs: number;
  applyMs: number;
  bytesWritten: number;
  errors: number;
  credentials: number;
}
interface ChildOut {
  count: number;
  secretBytes: number;
  baselineKiB: number;
  peakKiB: number;
  first: Pass;
  again: Pass;
}

function runChild(count: number, root: string, timeoutMs: number): Promise<ChildOut> {
  return new Promise((resolve, reject) => {
    const c = spawn(NODE, ['--import', 'tsx', join(REPO, 'scripts/bench/scale-child.ts'), String(count), root], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (code) => {
      clearTimeout(t);
      try {
        resolve(JSON.parse(out) as ChildOut);
      } catch {
        reject(new Error(`scale child for ${count} registries failed (exit ${code}): ${err.split('\n').slice(0, 3).join(' ')}`));
      }
    });
  });
}

export async function scaleSection(sizes: readonly number[], timeoutMs: number): Promise<ScaleResult> {
  const rows: ScaleRow[] = [];
  const notes: string[] = [];
  for (const n of sizes) {
    const host = await makeHostRoot(`scale-${n}`);
    try {
      const o = await runChild(n, host.root, timeoutMs);
      if (o.first.credentials !== n) notes.push(`${n}: the Secret yielded ${o.first.credentials} credentials`);
      const total = o.first.parseMs + o.first.planMs + o.first.applyMs;
      rows.push({
        registries: n,
        secretKiB: round(o.secretBytes / 1024, 1),
        parseMs: round(o.first.parseMs),
        planMs: round(o.first.planMs),
        applyMs: round(o.first.applyMs),
        totalMs: round(total),
        bytesWritten: o.first.bytesWritten,
        reapplyMs: round(o.again.parseMs + o.again.planMs + o.again.applyMs),
        reapplyBytesWritten: o.again.bytesWritten,
        peakRssMiB: mib(o.peakKiB),
        peakOverBaselineMiB: mib(o.peakKiB - o.baselineKiB),
        errors: o.first.errors,
      });
    } catch (e) {
      notes.push((e as Error).message);
    } finally {
      await host.cleanup();
    }
  }
  const reapplyWritesNothing = rows.length === sizes.length && rows.every((r) => r.reapplyBytesWritten === 0);
  if (!reapplyWritesNothing) notes.push('ASSERTION FAILED: a re-apply of unchanged input wrote bytes (or a size did not finish)');
  return { rows, reapplyWritesNothing, notes };
}
