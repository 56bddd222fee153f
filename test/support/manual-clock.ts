import type { Clock } from '../../src/model/clock.ts';

/**
 * A clock that moves only when told to; `advance` fires due timers in time order. `step` moves the
 * wall clock alone (an NTP step, a VM resumed with a stale clock): monotonic time and timers do not.
 * `paused` freezes it as SIGSTOP freezes a process (advance does nothing); `thaw(ms)` then moves
 * both clocks by the pause at once and fires every overdue timer LATE, in order, as a resumed
 * process sees them (advance would run them at their due times).
 */
export class ManualClock implements Clock {
  private t: number;
  /** Wall minus monotonic: changed by step() only. */
  private wallOffset: number;
  private seq = 0;
  paused = false;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = 0;
    this.wallOffset = start;
  }
  now(): number {
    return this.t + this.wallOffset;
  }
  monotonic(): number {
    return this.t;
  }
  /** Steps the wall clock by `ms` (negative: back); monotonic time and pending timers stay. */
  step(ms: number): void {
    this.wallOffset += ms;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** When the next timer fires (wall time, comparable with now()), if any. */
  nextAt(): number | undefined {
    let min: number | undefined;
    for (const { at } of this.timers.values()) if (min === undefined || at < min) min = at;
    return min === undefined ? undefined : min + this.wallOffset;
  }
  advance(ms: number): void {
    if (this.paused) return;
    const end = this.t + ms;
    this.fireUntil(end, true);
    this.t = end;
  }
  thaw(ms: number): void {
    this.paused = false;
    this.t += ms;
    this.fireUntil(this.t, false);
  }
  private fireUntil(end: number, onTime: boolean): void {
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) return;
      this.timers.delete(next[0]);
      if (onTime) this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
  }
}
