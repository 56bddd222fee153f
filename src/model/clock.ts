/** Time and timers, injectable so that timing (ECR refresh, rate limits) is tested without waiting. */
export interface Clock {
  /** Wall time (ms since the epoch): for dates written or compared with other hosts' dates. */
  now(): number;
  /**
   * Milliseconds on a clock that an NTP step or a settimeofday never moves: for durations
   * (leases, deadlines, backoff), never for dates. Its origin is arbitrary.
   */
  monotonic(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  // CLOCK_MONOTONIC: keeps counting through SIGSTOP and a paused VM, is never stepped.
  monotonic: () => performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    t.unref();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};
