import { EventEmitter } from 'node:events';
import { AgentError } from '../errors.ts';
import type { HostFs } from '../host/host-fs.ts';
import type { Logger } from '../log.ts';
import type { RegistryCredential, Source, SourceSnapshot } from '../model/credential.ts';
import type { ApplyReport } from '../model/apply-report.ts';
import type { HostOptions } from '../model/host-options.ts';
import type { TargetOptions } from '../runtime/targets.ts';
import { DriftWatch, expectedAfterApply } from './drift-watch.ts';
import type { CredentialGate } from '../check/gate.ts';
import { configurationHash, configurationHashKnown, configurationMaterial } from '../report/configuration-hash.ts';
import { mergeSnapshots, reconcileOnce } from './engine.ts';

/**
 * Planner errors that are faults of the host, not of the input (a directory or symlink where a
 * file goes, an unreadable path): retried with backoff like a failed write, so the agent recovers
 * by itself soon after the fault is gone.
 */
const HOST_FAULTS: ReadonlySet<string> = new Set(['NRC_E_TARGET_NOT_FILE', 'NRC_E_UNSAFE_PATH', 'NRC_E_WRITE_FAILED']);

/**
 * At most one new configuration hash a second: scrypt costs ~100 ms of CPU, and a Secret changed
 * many times a second must not keep a core of the node busy. The files are written at once; only
 * the report (metrics, the Node annotation) waits.
 */
const HASH_INTERVAL_MS = 1000;

export interface ReconcilerOptions {
  readonly host: HostFs;
  /** In precedence order: for one registry, the first source that provides it wins. */
  readonly sources: readonly Source[];
  readonly hostOptions: ReadonlyMap<string, HostOptions>;
  readonly hostOptionErrors?: readonly AgentError[];
  readonly targetOptions: TargetOptions;
  readonly logger: Logger;
  /**
   * A change after a quiet spell applies at once; changes that pile up while a pass is pending
   * (a burst) are coalesced until none came for this long (at most max(5 s, 25x) after it began), then applied.
   */
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

/** An applied pass: its report, once the configuration hash (off the event loop) is known. */
interface PendingReport {
  readonly credentials: readonly RegistryCredential[];
  readonly build: (hash: string) => ApplyReport;
}

export interface ReconcilerEvents {
  applied: [ApplyReport];
  waiting: [AgentError];
}

/**
 * Wires sources to the host: keeps each source's last good snapshot, waits until every
 * source has delivered one (so a slow source never removes what it provided), then turns
 * changes into snapshot → plan → apply (the first at once, a burst coalesced), retrying failed
 * writes with backoff.
 */
export class Reconciler extends EventEmitter<ReconcilerEvents> {
  private readonly snapshots = new Map<string, SourceSnapshot>();
  private readonly latestErrors = new Map<string, readonly AgentError[]>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** When the pass now pending runs (undefined: none pending). */
  private dueAt: number | undefined;
  /** Source changes the pending pass will take. */
  private pendingChanges = 0;
  /** When the burst being coalesced began (undefined: no burst). */
  private burstSince: number | undefined;
  private resync: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  /** Passes applied whose report (it waits for the configuration hash) is not out yet, oldest first. */
  private unreported: PendingReport[] = [];
  private hashing = false;
  private lastHashAt = Number.NEGATIVE_INFINITY;
  private hashWait: NodeJS.Timeout | undefined;
  private drift: DriftWatch | undefined;
  applies = 0;
  /** Host files written (write operations carried out) and their bytes, since start. */
  writes = 0;
  bytesWritten = 0;
  /** Passes started because a managed host file was changed by someone else. */
  driftRepairs = 0;
  lastReport: ApplyReport | undefined;

  private targetOptions: TargetOptions;

  constructor(private readonly o: ReconcilerOptions) {
    super();
    this.targetOptions = o.targetOptions;
  }

  async start(): Promise<void> {
    for (const source of this.o.sources) {
      await source.start((snap) => this.onSnapshot(source.name, snap));
    }
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelPending();
    clearTimeout(this.hashWait);
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
    this.changed();
  }

  /** True while a pass is pending, or applied but not yet reported. */
  get running(): boolean {
    return this.dueAt !== undefined || this.hashing || this.unreported.length > 0;
  }

  /**
   * A source changed. Applied at once when nothing is pending; a second change that lands while a
   * pass is still pending marks a burst: the pass then waits until no change came for debounceMs,
   * but never longer than maxWait after the burst began, so a Secret rewritten without pause still
   * reaches the node, and a burst costs at most the leading write and this one.
   */
  private changed(): void {
    if (this.stopped) return;
    const now = Date.now();
    const debounce = this.o.debounceMs ?? 200;
    if (this.burstSince === undefined && this.dueAt !== undefined && this.dueAt <= now && this.pendingChanges > 0) {
      this.burstSince = now;
      this.o.logger.debug({ debounceMs: debounce }, 'changes arrive faster than they are applied: coalescing the burst');
    }
    this.pendingChanges++;
    if (this.burstSince === undefined) return this.schedule(now, true);
    // 5 s: decoding each of 10,000 watch events of a burst takes ~3.6 s without the JIT (the DaemonSet's --jitless).
    const maxWait = Math.max(5000, 25 * debounce);
    this.schedule(Math.min(now + debounce, this.burstSince + maxWait), false);
  }

  /** Where the outputs go from the next pass on (namespace scoping decided after start), and that pass at once. */
  setTargetOptions(t: TargetOptions): void {
    this.targetOptions = t;
    this.trigger();
  }

  /** Asks for a pass within delayMs (drift, resync, a retry after a failed write). */
  trigger(delayMs = 0): void {
    if (this.stopped) return;
    this.schedule(Date.now() + delayMs, true);
  }

  /** Pending pass at `at`; `earlierOnly` keeps a pending pass that is due sooner. */
  private schedule(at: number, earlierOnly: boolean): void {
    if (earlierOnly && this.dueAt !== undefined && this.dueAt <= at) return;
    this.cancelPending();
    this.dueAt = at;
    const run = (): void => {
      this.timer = undefined;
      this.immediate = undefined;
      this.dueAt = undefined;
      this.pendingChanges = 0;
      this.burstSince = undefined;
      this.pass();
    };
    const delay = at - Date.now();
    // setImmediate: changes delivered in the same I/O turn (one read of a watch stream) join it.
    if (delay <= 0) this.immediate = setImmediate(run);
    else this.timer = setTimeout(run, delay);
  }

  private cancelPending(): void {
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.dueAt = undefined;
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

  /** Plans and writes now; the report follows once the configuration hash is computed. */
  private pass(): void {
    const pending = this.applyNow();
    if (!pending) return;
    this.unreported.push(pending);
    if (!this.hashing) void this.flushReports();
  }

  /**
   * One scrypt at a time: each takes 16 MiB, which the allocator of a thread-pool thread may keep,
   * so hashes run side by side grew the agent by tens of MiB. Passes applied meanwhile are
   * reported together, with the hash of the newest configuration (the one the node holds).
   */
  private async flushReports(): Promise<void> {
    this.hashing = true;
    try {
      while (this.unreported.length > 0 && !this.stopped) {
        const newest = this.unreported.at(-1)!;
        let material = configurationMaterial(newest.credentials, this.o.hostOptions);
        const wait = this.lastHashAt + HASH_INTERVAL_MS - Date.now();
        if (wait > 0 && !configurationHashKnown(material)) {
          await new Promise<void>((resolve) => (this.hashWait = setTimeout(resolve, wait)));
          if (this.stopped) return;
        }
        const batch = this.unreported.splice(0);
        // Passes applied during the wait: the newest of them is the configuration the node holds.
        if (batch.at(-1) !== newest) material = configurationMaterial(batch.at(-1)!.credentials, this.o.hostOptions);
        const known = configurationHashKnown(material);
        const hash = await configurationHash(material);
        if (!known) this.lastHashAt = Date.now();
        if (this.stopped) return;
        const reports = batch.map((p) => p.build(hash));
        const last = reports.at(-1)!;
        this.report({ ...last, changes: reports.flatMap((r) => r.changes), bytesWritten: reports.reduce((n, r) => n + r.bytesWritten, 0) }, batch.length);
      }
    } catch (err) {
      this.o.logger.error({ error: err instanceof Error ? err.message : 'error' }, 'report failed');
    } finally {
      this.hashing = false;
      this.unreported = [];
    }
  }

  private applyNow(): PendingReport | undefined {
    const missing = this.o.sources.filter((s) => !this.snapshots.has(s.name)).map((s) => s.name);
    if (missing.length > 0) {
      const err = new AgentError('NRC_E_SOURCE_NOT_READY', { subject: missing.join(', ') });
      this.o.logger.warn({ code: err.code, sources: missing }, err.message);
      this.emit('waiting', err);
      return undefined;
    }
    const ordered = this.o.sources.map((s) => this.snapshots.get(s.name)!);
    const merged = mergeSnapshots(ordered);
    const gated = this.o.gate ? this.o.gate.filter(merged.credentials) : { credentials: merged.credentials, errors: [] };
    const credentials = gated.credentials;
    const sourceErrors = [...[...this.latestErrors.values()].flat(), ...gated.errors];
    const outcome = reconcileOnce({ host: this.o.host, credentials, hostOptions: this.o.hostOptions, targetOptions: this.o.targetOptions });
    const at = new Date();
    const expiries = new Map(credentials.filter((c) => c.expiresAt !== undefined).map((c) => [c.key, c.expiresAt!] as const));
    const base = { at, registries: credentials.length, expiries };
    if (outcome instanceof AgentError) {
      return { credentials, build: (hash) => ({ ...base, hash, changes: [], bytesWritten: 0, errors: [...sourceErrors, outcome], hostOk: false }) };
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
    const hostOk = hostErrors.length === 0 && !outcome.plan.errors.some((e) => HOST_FAULTS.has(e.code));
    const targets = outcome.detected.targets;
    return { credentials, build: (hash) => ({ ...base, hash, changes, bytesWritten: outcome.result.bytesWritten, errors, hostOk, targets }) };
  }

  /** `passes`: how many passes this report covers (they were applied while a hash was computed). */
  private report(r: ApplyReport, passes: number): void {
    this.applies += passes;
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
