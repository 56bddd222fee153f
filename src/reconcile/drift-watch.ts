import { createHash } from 'node:crypto';
import { statSync, watch, type FSWatcher } from 'node:fs';
import { posix } from 'node:path';
import type { HostFs } from '../host/host-fs.ts';
import type { FileState, HostSnapshot } from '../model/host-state.ts';
import type { OwnershipRecord } from '../plan/ownership.ts';
import type { Operation, Plan } from '../plan/types.ts';

/**
 * What a managed host path should hold once an apply is done: its bytes, or undefined when it
 * should not exist. Paths whose state is not a plain file or absence (a directory in the way,
 * a symlink, unreadable) are not watched: they are faults the next pass reports, not drift.
 */
export type ExpectedFiles = ReadonlyMap<string, Uint8Array | undefined>;

/** Files the agent writes or merges into, according to a record. */
export function managedPaths(record: OwnershipRecord | undefined): string[] {
  if (!record) return [];
  return [...new Set([...Object.keys(record.jsonFiles), ...Object.keys(record.files)])].sort();
}

/**
 * The host as the agent left it after an apply, computed from what it planned and did rather
 * than read back, so that another writer racing the apply still shows up as drift.
 */
export function expectedAfterApply(plan: Plan, snapshot: HostSnapshot, done: readonly Operation[]): ExpectedFiles {
  const out = new Map<string, Uint8Array | undefined>();
  // Only what the agent owns from now on: a file handed back to its owner is no longer watched.
  const paths = new Set(managedPaths(plan.record));
  for (const path of paths) {
    const st: FileState = snapshot.get(path) ?? { kind: 'missing' };
    if (st.kind === 'file') out.set(path, st.bytes);
    else if (st.kind === 'missing') out.set(path, undefined);
  }
  for (const op of done) {
    if (!paths.has(op.path)) continue;
    if (op.op === 'write') out.set(op.path, op.bytes);
    else if (op.op === 'delete') out.set(op.path, undefined);
  }
  return out;
}

const fileFingerprint = (bytes: Uint8Array): string => `file:${createHash('sha256').update(bytes).digest('hex')}`;

function fingerprint(st: FileState): string {
  return st.kind === 'file' ? fileFingerprint(st.bytes) : st.kind;
}

function expectedFingerprint(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? 'missing' : fileFingerprint(bytes);
}

export interface DriftWatchOptions {
  readonly host: HostFs;
  /** Called (debounced) with the managed paths whose content is not what the agent left. */
  readonly onDrift: (paths: readonly string[]) => void;
  /** Coalesces the events of one edit (editors write, rename, chmod) into one check. */
  readonly debounceMs?: number;
}

/** The directory's inode, so that a directory removed and made again is watched again. */
function inode(dir: string): number | undefined {
  try {
    return statSync(dir).ino;
  } catch {
    return undefined;
  }
}

/**
 * Watches the directories of the files the agent manages (fs.watch: inotify on each directory,
 * no recursion, events by name; chokidar cost 0.6 MiB at rest on every node for the same,
 * docs/benchmarks.md) and reports when one of them no longer holds what the agent last wrote: rewritten,
 * deleted, or merged into by another writer. The agent's own writes are not drift: every event
 * only triggers a comparison of the files' content with what the last apply left there.
 */
export class DriftWatch {
  private readonly watchers = new Map<string, { readonly watcher: FSWatcher; readonly ino: number }>();
  /** Real paths whose events matter: the managed files and the watched directories themselves. */
  private relevant = new Set<string>();
  private expected = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** How many times drift was found (for logs and tests). */
  drifts = 0;
  /** How many comparisons ran (tests: events on files the agent does not manage cause none). */
  checks = 0;

  constructor(private readonly o: DriftWatchOptions) {}

  /** Sets what the managed files should hold now, and watches their directories. */
  update(expected: ExpectedFiles): void {
    if (this.closed) return;
    this.expected = new Map([...expected].map(([p, b]) => [p, expectedFingerprint(b)]));
    const dirs = new Set<string>();
    for (const path of this.expected.keys()) {
      const dir = posix.dirname(path);
      // The parent too, so that removing the file's whole directory is seen.
      for (const d of [dir, posix.dirname(dir)]) if (this.o.host.stat(d).kind === 'directory') dirs.add(this.o.host.real(d));
    }
    // Other files share these directories (the credential provider plugin touches one beside the
    // agent's state at every pull): their events wake nothing.
    this.relevant = new Set([...[...this.expected.keys()].map((p) => this.o.host.real(p)), ...dirs]);
    for (const [dir, w] of this.watchers) if (!dirs.has(dir) || inode(dir) !== w.ino) this.unwatch(dir);
    for (const dir of dirs) if (!this.watchers.has(dir)) this.watchDir(dir);
    // Something may have changed between the apply and now, before the watch saw it.
    this.schedule();
  }

  private unwatch(dir: string): void {
    this.watchers.get(dir)?.watcher.close();
    this.watchers.delete(dir);
  }

  private watchDir(dir: string): void {
    const ino = inode(dir);
    if (ino === undefined) return;
    try {
      // Not persistent: the watch never keeps the process alive on its own.
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        // The directory itself removed (its own name, and gone): this watch is dead, the next
        // update() watches the one the repair makes (possibly at the same inode number).
        if (name === posix.basename(dir) && inode(dir) !== ino) this.unwatch(dir);
        if (name === null || this.relevant.has(posix.join(dir, name))) this.schedule();
      });
      watcher.on('error', () => this.schedule());
      this.watchers.set(dir, { watcher, ino });
    } catch {
      // Unwatchable (permissions): the periodic resync still repairs it.
    }
  }

  /** Compares the managed files with what the last apply left; returns the paths that differ. */
  check(): string[] {
    const drifted: string[] = [];
    for (const [path, want] of this.expected) if (fingerprint(this.o.host.stat(path)) !== want) drifted.push(path);
    return drifted;
  }

  /** The first event starts the timer and later ones join it, so a writer that never stops cannot postpone the check forever. */
  private schedule(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      this.checks++;
      const drifted = this.check();
      if (drifted.length === 0) return;
      this.drifts++;
      this.o.onDrift(drifted);
    }, this.o.debounceMs ?? 100);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const { watcher } of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }
}
