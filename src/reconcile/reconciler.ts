import { EventEmitter } from 'node:events';
import { AgentError } from '../errors.ts';
import type { HostFs } from '../host/host-fs.ts';
import type { Logger } from '../log.ts';
import type { Source, SourceSnapshot } from '../model/credential.ts';
import type { ApplyReport } from '../model/apply-report.ts';
import type { HostOptions } from '../model/host-options.ts';
import type { TargetOptions } from '../runtime/targets.ts';
import { DriftWatch, expectedAfterApply } from './drift-watch.ts';
import type { CredentialGate } from '../check/gate.ts';
import { configurationHash } from '../report/configuration-hash.ts';
import { mergeSnapshots, reconcileOnce } from './engine.ts';

/**
 * Planner errors that are faults of the host, not of the input (a directory or symlink where a
 * file goes, an unreadable path): retried with backoff like a failed write, so the agent recovers
 * by itself soon after the fault is gone.
 */
const HOST_FAULTS: ReadonlySet<string> = new Set(['NRC_E_TARGET_NOT_FILE', 'NRC_E_UNSAFE_PATH', 'NRC_E_WRITE_FAILED']);

export interface ReconcilerOptions {
  readonly host: HostFs;
  /** In precedence order: for one registry, the first source that provides it wins. */
  readonly sources: readonly Source[];
  readonly hostOptions: ReadonlyMap<string, HostOptions>;
  readonly hostOptionErrors?: readonly AgentError[];
  readonly targetOptions: TargetOptions;
  readonly logger: Logger;
  /** Coalesces bursts of source changes into one apply. */
  readonly debounceMs?: number;
  /** Re-checks the host this often (with jitter) to repair drift. */
  readonly resyncMs?: number;
  readonly maxBackoffMs?: number;
  readonly random?: () => number;
  /** Watch the managed host files and repair them when another writer changes them (default true). */
  readonly watchDrift?: boolean;
  readonly driftDebounceMs?: number;
  /** Checks credentials against their registries and applies the check policy (--check-credentials). */
  readonly gate?: CredentialGate;
}

export interface ReconcilerEvents {
  applied: [ApplyReport];
  waiting: [AgentError];
}

/**
 * Wires sources to the host: keeps each source's last good snapshot, waits until every
 * source has delivered one (so a slow source never removes what it provided), then
 * debounces changes into snapshot → plan → apply, retrying failed writes with backoff.
 */
export class Reconciler extends EventEmitter<ReconcilerEvents> {
  private readonly snapshots = new Map<string, SourceSnapshot>();
  private readonly latestErrors = new Map<string, readonly AgentError[]>();
  private debounce: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private running = false;
  private again = false;
  private drift: DriftWatch | undefined;
  /** When the pass now pending was first asked for. */
  private pendingSince: number | undefined;
  applies = 0;
  /** Host files written (write operations carried out) and their bytes, since start. */
  writes = 0;
  bytesWritten = 0;
  /** Passes started because a managed host file was changed by someone else. */
  driftRepairs = 0;
  lastReport: ApplyReport | undefined;

  constructor(private readonly o: ReconcilerOptions) {
    super();
  }

  async start(): Promise<void> {
    for (const source of this.o.sources) {
      await source.start((snap) => this.onSnapshot(source.name, snap));
    }
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.debounce);
    clearTimeout(this.resync);
    await this.drift?.close();
    await Promise.all(this.o.sources.map((s) => s.stop().catch(() => undefined)));
  }

  private onSnapshot(name: string, snap: SourceSnapshot): void {
    this.latestErrors.set(name, snap.errors);
    if (snap.ok) this.snapshots.set(name, snap);
    else {
      for (const e of snap.errors) this.o.logger.error({ code: e.code, subject: e.subject, source: name }, e.message);
      if (this.snapshots.has(name)) this.o.logger.warn({ source: name }, 'keeping the last good configuration of this source');
    }
    this.trigger(this.o.debounceMs ?? 200);
  }

  /** Asks for a pass soon; bursts of triggers collapse into one. */
  trigger(delayMs = 0): void {
    if (this.stopped) return;
    // A pending pass is postponed by each new trigger, but not forever: a steady stream of
    // changes (a Secret updated every 100 ms) still reaches the node within maxWait.
    const now = Date.now();
    const maxWait = Math.max(1000, 5 * (this.o.debounceMs ?? 200));
    const delay = this.pendingSince === undefined ? delayMs : Math.min(delayMs, Math.max(0, this.pendingSince + maxWait - now));
    this.pendingSince ??= now;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.pendingSince = undefined;
      void this.pass();
    }, delay);
  }

  private scheduleResync(): void {
    const base = this.o.resyncMs ?? 60_000;
    const rnd = this.o.random ?? Math.random;
    clearTimeout(this.resync);
    this.resync = setTimeout(() => {
      this.trigger();
      this.scheduleResync();
    }, base * (0.8 + 0.4 * rnd()));
    this.resync.unref();
  }

  private async pass(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      this.applyNow();
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.trigger();
      }
    }
  }

  private applyNow(): void {
    const missing = this.o.sources.filter((s) => !this.snapshots.has(s.name)).map((s) => s.name);
    if (missing.length > 0) {
      const err = new AgentError('NRC_E_SOURCE_NOT_READY', { subject: missing.join(', ') });
      this.o.logger.warn({ code: err.code, sources: missing }, err.message);
      this.emit('waiting', err);
      return;
    }
    const ordered = this.o.sources.map((s) => this.snapshots.get(s.name)!);
    const merged = mergeSnapshots(ordered);
    const gated = this.o.gate ? this.o.gate.filter(merged.credentials) : { credentials: merged.credentials, errors: [] };
    const credentials = gated.credentials;
    const sourceErrors = [...[...this.latestErrors.values()].flat(), ...gated.errors];
    const outcome = reconcileOnce({ host: this.o.host, credentials, hostOptions: this.o.hostOptions, targetOptions: this.o.targetOptions });
    const at = new Date();
    const hash = configurationHash(credentials, this.o.hostOptions);
    const expiries = new Map(credentials.filter((c) => c.expiresAt !== undefined).map((c) => [c.key, c.expiresAt!] as const));
    const base = { at, hash, registries: credentials.length, expiries };
    if (outcome instanceof AgentError) {
      this.report({ ...base, changes: [], bytesWritten: 0, errors: [...sourceErrors, outcome], hostOk: false });
      return;
    }
    const hostErrors = outcome.result.errors;
    this.writes += outcome.result.done.filter((op) => op.op === 'write').length;
    this.bytesWritten += outcome.result.bytesWritten;
    if (this.o.watchDrift ?? true) {
      this.drift ??= new DriftWatch({
        host: this.o.host,
        ...(this.o.driftDebounceMs !== undefined ? { debounceMs: this.o.driftDebounceMs } : {}),
        onDrift: (paths) => {
          this.driftRepairs++;
          this.o.logger.warn({ paths }, 'a managed host file was changed by someone else; restoring the agent\'s entries');
          this.trigger();
        },
      });
      this.drift.update(expectedAfterApply(outcome.plan, outcome.snapshot, outcome.result.done));
    }
    const errors = [...sourceErrors, ...(this.o.hostOptionErrors ?? []), ...outcome.errors];
    const changes = outcome.plan.changes.filter((c) => outcome.result.done.some((op) => op.path === c.path));
    this.report({ ...base, changes, bytesWritten: outcome.result.bytesWritten, errors, hostOk: hostErrors.length === 0 && !outcome.plan.errors.some((e) => HOST_FAULTS.has(e.code)) });
  }

  private report(r: ApplyReport): void {
    this.applies++;
    this.lastReport = r;
    for (const c of r.changes) this.o.logger.info({ path: c.path, change: c.change, added: c.added, updated: c.updated, removed: c.removed }, 'host file changed');
    for (const e of r.errors) this.o.logger.error({ code: e.code, subject: e.subject }, e.message);
    if (r.changes.length > 0) {
      this.o.logger.info({ registries: r.registries, files: r.changes.length, bytesWritten: r.bytesWritten, applies: this.applies, writesTotal: this.writes, bytesWrittenTotal: this.bytesWritten }, 'applied');
    }
    if (r.hostOk) {
      this.failures = 0;
    } else {
      // Disk full, read-only, permissions: retry with capped exponential backoff and jitter.
      this.failures++;
      const cap = this.o.maxBackoffMs ?? 60_000;
      const delay = Math.min(cap, 500 * 2 ** (this.failures - 1)) * (0.5 + (this.o.random ?? Math.random)() / 2);
      this.o.logger.warn({ retryInMs: Math.round(delay), failures: this.failures }, 'apply failed; retrying');
      this.trigger(delay);
    }
    this.emit('applied', r);
  }
}
