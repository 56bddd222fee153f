import * as fs from 'node:fs';
import { posix } from 'node:path';
import { AgentError, asAgentError } from '../errors.ts';
import { RECORD_PATH } from '../model/state-paths.ts';
import { isEmptyRecord, mergeRecords, parseRecord, serializeRecord, type OwnershipRecord } from '../plan/ownership.ts';
import type { Operation, Plan } from '../plan/types.ts';
import { removeStaleTemps, removeStaleTempsIn, writeFileAtomicSync, unlinkDurably } from './atomic.ts';
import type { HostFs } from './host-fs.ts';

export interface ApplyResult {
  /** Operations that were carried out. */
  readonly done: readonly Operation[];
  readonly errors: readonly AgentError[];
  readonly bytesWritten: number;
}

/** Reads the ownership record; a corrupt one is an error, never an empty record. */
export function readRecord(host: HostFs): OwnershipRecord | AgentError {
  const st = host.stat(RECORD_PATH);
  if (st.kind === 'missing') return parseRecord(undefined);
  if (st.kind !== 'file') return new AgentError('NRC_E_STATE_CORRUPT', { subject: RECORD_PATH, detail: `(it is a ${st.kind})` });
  return parseRecord(st.bytes);
}

function writeRecord(host: HostFs, record: OwnershipRecord): void {
  writeFileAtomicSync(host.real(RECORD_PATH), serializeRecord(record), { mode: 0o600 });
}

/** Re-checks at the moment of writing that the parent is a real directory, not a symlink. */
function assertSafeParent(host: HostFs, path: string): void {
  const parent = host.stat(posix.dirname(path));
  if (parent.kind === 'symlink') throw new AgentError('NRC_E_UNSAFE_PATH', { subject: posix.dirname(path) });
  if (parent.kind !== 'directory') throw new AgentError('NRC_E_TARGET_NOT_FILE', { subject: posix.dirname(path), detail: '(parent is not a directory)' });
  const self = host.stat(path);
  if (self.kind === 'symlink') throw new AgentError('NRC_E_UNSAFE_PATH', { subject: path });
  if (self.kind === 'directory' || self.kind === 'other') throw new AgentError('NRC_E_TARGET_NOT_FILE', { subject: path });
}

function run(host: HostFs, op: Operation): number {
  switch (op.op) {
    case 'mkdir': {
      assertSafeParent(host, op.path);
      try {
        fs.mkdirSync(host.real(op.path), { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      return 0;
    }
    case 'write':
      assertSafeParent(host, op.path);
      writeFileAtomicSync(host.real(op.path), op.bytes, {
        mode: op.mode,
        ...(op.uid !== undefined ? { uid: op.uid } : {}),
        ...(op.gid !== undefined ? { gid: op.gid } : {}),
      });
      return op.bytes.byteLength;
    case 'delete':
      assertSafeParent(host, op.path);
      removeStaleTemps(host.real(op.path));
      try {
        unlinkDurably(host.real(op.path));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      return 0;
    case 'rmdir':
      try {
        // A temp file of a writer killed mid-write would keep the directory forever.
        if (host.stat(op.path).kind === 'directory') {
          removeStaleTempsIn(host.real(op.path));
          fs.rmdirSync(host.real(op.path));
        }
      } catch (err) {
        // Someone else put files in it, or it is a mount point (EBUSY; EROFS when the mount's parent
        // is read-only, as the DaemonSet mounts the state directory): it stays, harmlessly empty.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EBUSY' && code !== 'EROFS' && code !== 'ENOENT') throw err;
      }
      return 0;
  }
}

/**
 * Carries out a plan. The record is written first as the union of the old and new ownership,
 * so a crash at any point leaves a record that covers every file on disk.
 */
export function applyPlan(host: HostFs, previous: OwnershipRecord, plan: Plan): ApplyResult {
  const done: Operation[] = [];
  const errors: AgentError[] = [];
  let bytesWritten = 0;
  const ops = plan.operations;
  if (ops.length === 0 && plan.record && JSON.stringify(plan.record) === JSON.stringify(previous)) return { done, errors, bytesWritten };

  const mkdirs = ops.filter((o) => o.op === 'mkdir');
  const rest = ops.filter((o) => o.op !== 'mkdir' && o.op !== 'rmdir');
  const rmdirs = ops.filter((o) => o.op === 'rmdir');
  const attempt = (op: Operation): boolean => {
    try {
      bytesWritten += run(host, op);
      done.push(op);
      return true;
    } catch (err) {
      errors.push(asAgentError(err, 'NRC_E_WRITE_FAILED', op.path));
      return false;
    }
  };

  // Only the record's own directory is made before the record: a directory made before the
  // record names it would look foreign after a crash, and the agent would never manage it again.
  const isStateDir = (o: Operation): boolean => RECORD_PATH.startsWith(`${o.path}/`);
  for (const op of mkdirs.filter(isStateDir)) if (!attempt(op)) return { done, errors, bytesWritten };
  const intent = mergeRecords(previous, plan.record ?? previous);
  if (!isEmptyRecord(intent)) {
    try {
      writeRecord(host, intent);
    } catch (err) {
      // Without a durable record nothing is changed: the host stays exactly as it was.
      errors.push(asAgentError(err, 'NRC_E_WRITE_FAILED', RECORD_PATH));
      return { done, errors, bytesWritten };
    }
  }
  // A directory that cannot be made (read-only /etc, ...) skips only the files in it: the other
  // targets (the kubelet's config.json) are still written. The union record stays on disk.
  const failedDirs: string[] = [];
  const underFailed = (o: Operation): boolean => failedDirs.some((d) => o.path.startsWith(`${d}/`));
  for (const op of mkdirs.filter((o) => !isStateDir(o))) if (!underFailed(op) && !attempt(op)) failedDirs.push(op.path);
  let failed = failedDirs.length > 0;
  for (const op of rest) if (!underFailed(op) && !attempt(op)) failed = true;
  // Directories go before the record stops naming them: a crash in between must not leave a
  // directory of the agent's that looks foreign (the record's own directory goes last).
  if (!failed) for (const op of rmdirs.filter((o) => !isStateDir(o))) attempt(op);
  try {
    if (failed) {
      // Keep the union: some old files may still be there and some new ones may not.
    } else if (plan.record) {
      writeRecord(host, plan.record);
    } else if (host.stat(RECORD_PATH).kind === 'file') {
      unlinkDurably(host.real(RECORD_PATH));
    }
  } catch (err) {
    errors.push(asAgentError(err, 'NRC_E_WRITE_FAILED', RECORD_PATH));
    failed = true;
  }
  if (!failed) for (const op of rmdirs.filter(isStateDir)) attempt(op);
  return { done, errors, bytesWritten };
}
