// Follows whether the node's configuration is effective (report/effective.ts decides) between
// passes: while it is pending, the kubelet's config.json is stat'ed (a read shows in its access
// time) until the kubelet reads it or its cache lifetime has run out: every 5 s in the first
// 30 s after a write (a new node's startup taint waits on it), every 20 s after that, and once at
// the deadline itself. No timer runs once it is effective.
import type { HostFs } from '../host/host-fs.ts';
import type { ApplyReport } from '../model/apply-report.ts';
import type { Targets } from '../model/targets.ts';
import { decideEffective, KUBELET_CONFIG_CACHE_MS, nextCheckMs } from '../report/effective.ts';
import type { EffectiveState } from '../report/node-annotations.ts';

/** Every few seconds, not every second: a pending state lasts up to 5 minutes after each write (issue 23's wake-ups). */
const POLL_MS = 5000;
/**
 * After the first 30 s, every 20 s: each look wakes an idle agent, and 5 s all along kept the
 * first minute after a write above 20 wake-ups (issue 23, docs/benchmarks.md).
 */
const SLOW_POLL_MS = 20_000;
const FAST_FOR_MS = 30_000;

export interface EffectiveObserverOptions {
  readonly host: HostFs;
  readonly mode: 'config-json' | 'provider';
  /** Called when the state changes between passes (a pass's own state is returned by applied()). */
  readonly onChange: (s: EffectiveState) => void;
  /** The poll during the first 30 s after a write. */
  readonly pollMs?: number;
  /** The poll after that, until the deadline (which is always looked at on time). */
  readonly slowPollMs?: number;
  readonly now?: () => number;
}

export class EffectiveObserver {
  private last: { written: boolean; passAt: number; targets: Targets | undefined } | undefined;
  private kubeletChangedAt: number | undefined;
  private state: EffectiveState | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: EffectiveObserverOptions) {
    this.now = o.now ?? Date.now;
  }

  /** After each pass: its state (also remembered for the checks that follow). */
  applied(r: ApplyReport): EffectiveState {
    const kubelet = r.targets?.kubeletConfig;
    if (kubelet !== undefined && r.changes.some((c) => c.path === kubelet)) this.kubeletChangedAt = r.at.getTime();
    this.last = { written: r.hostOk, passAt: r.at.getTime(), targets: r.targets ?? this.last?.targets };
    this.state = this.decide();
    this.schedule();
    return this.state;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private decide(): EffectiveState {
    const l = this.last!;
    const t = l.targets;
    const provider = this.o.mode === 'provider' && t?.providerResponse !== undefined ? this.o.host.times(t.providerResponse) : undefined;
    return decideEffective({
      written: l.written,
      passAt: l.passAt,
      mode: this.o.mode,
      kubeletFile: this.o.mode === 'config-json' && t ? this.o.host.times(t.kubeletConfig) : undefined,
      kubeletChangedAt: this.kubeletChangedAt,
      atimeTrusted: this.o.host.atimeTrusted,
      providerWrittenAt: provider?.mtimeMs,
      hostsToml: t?.containerdHostsDir !== undefined,
      nowMs: this.now(),
    });
  }

  /** A pending state's deadline is its write plus the kubelet's cache lifetime. */
  private pollMs(s: EffectiveState): number {
    const sinceWrite = this.now() - (s.at.getTime() - KUBELET_CONFIG_CACHE_MS);
    return sinceWrite < FAST_FOR_MS ? (this.o.pollMs ?? POLL_MS) : (this.o.slowPollMs ?? SLOW_POLL_MS);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const wait = this.state ? nextCheckMs(this.state, this.now(), this.pollMs(this.state)) : undefined;
    if (wait === undefined) return;
    this.timer = setTimeout(() => {
      const before = this.state;
      this.state = this.decide();
      if (before === undefined || before.state !== this.state.state || before.at.getTime() !== this.state.at.getTime()) this.o.onChange(this.state);
      this.schedule();
    }, wait);
    this.timer.unref();
  }
}
