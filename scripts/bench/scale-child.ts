// One scale measurement in a fresh process (so peak RSS belongs to this size alone):
// `scale-child.ts COUNT HOST_ROOT` prints one JSON line. Run by scale.ts; not a test.
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { AgentError } from '../../src/errors.ts';
import { applyPlan } from '../../src/host/apply.ts';
import { HostFs } from '../../src/host/host-fs.ts';
import { planOnHost } from '../../src/reconcile/engine.ts';
import { DEFAULT_TARGET_OPTIONS } from '../../src/runtime/targets.ts';
import { secretToSnapshot } from '../../src/sources/kubernetes/secret-source.ts';
import { dockerConfig } from './lib.ts';

function rssKiB(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

const count = Number(process.argv[2]);
const root = process.argv[3]!;
const host = new HostFs(root);
const secret = () => ({
  apiVersion: 'v1',
  kind: 'Secret',
  type: 'kubernetes.io/dockerconfigjson',
  metadata: { name: 'okteto-dockerconfig-static', namespace: 'okteto' },
  data: { '.dockerconfigjson': Buffer.from(dockerConfig(count, 1)).toString('base64') },
});

const baselineKiB = rssKiB('VmRSS');
const secretBytes = Buffer.byteLength(dockerConfig(count, 1));

function pass(): { parseMs: number; planMs: number; applyMs: number; bytesWritten: number; operations: number; errors: number; credentials: number } {
  const t0 = performance.now();
  const snap = secretToSnapshot(secret(), 'secret:okteto/okteto-dockerconfig-static');
  const t1 = performance.now();
  const planned = planOnHost({ host, credentials: snap.credentials, hostOptions: new Map(), targetOptions: DEFAULT_TARGET_OPTIONS });
  if (planned instanceof AgentError) throw new Error(planned.code);
  const t2 = performance.now();
  const result = applyPlan(host, planned.record, planned.plan);
  const t3 = performance.now();
  return {
    parseMs: t1 - t0,
    planMs: t2 - t1,
    applyMs: t3 - t2,
    bytesWritten: result.bytesWritten,
    operations: result.done.length,
    errors: snap.errors.length + planned.plan.errors.length + result.errors.length,
    credentials: snap.credentials.length,
  };
}

const first = pass();
const again = pass();
process.stdout.write(`${JSON.stringify({ count, secretBytes, baselineKiB, peakKiB: rssKiB('VmHWM'), first, again })}\n`);
