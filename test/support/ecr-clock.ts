import type { ManualClock } from './manual-clock.ts';
import type { EcrSource } from '../../src/sources/ecr/index.ts';

/**
 * Moves a manual clock forward by `ms`, one due timer at a time, letting the source settle
 * after each, so that refreshes which schedule new timers run in time order.
 */
export async function advanceSource(clock: ManualClock, s: EcrSource, ms: number): Promise<void> {
  const end = clock.now() + ms;
  for (;;) {
    const next = clock.nextAt();
    if (next === undefined || next > end) break;
    clock.advance(next - clock.now());
    await s.idle();
  }
  clock.advance(end - clock.now());
  await s.idle();
}
