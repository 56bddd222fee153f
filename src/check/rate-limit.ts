import type { Clock } from '../model/clock.ts';

/** The part of the clock a token bucket reads: milliseconds since the epoch, injected so tests need no timers. */
export type NowClock = Pick<Clock, 'now'>;

/** A token bucket: `burst` tokens, one more every `intervalMs`. Never waits: callers peek and take. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly burst: number,
    private readonly intervalMs: number,
    private readonly clock: NowClock,
  ) {
    this.tokens = burst;
    this.updatedAt = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    if (this.intervalMs > 0) this.tokens = Math.min(this.burst, this.tokens + (now - this.updatedAt) / this.intervalMs);
    else this.tokens = this.burst;
    this.updatedAt = now;
  }

  /** True when a token is available now. */
  peek(): boolean {
    this.refill();
    return this.tokens >= 1;
  }

  take(): boolean {
    if (!this.peek()) return false;
    this.tokens -= 1;
    return true;
  }
}
