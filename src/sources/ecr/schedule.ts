// Pure timing decisions for ECR token refresh. The source and the fleet simulation both use
// these functions, so the simulation measures what the agent really does.

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

export interface SchedulePolicy {
  /** Refresh no later than this long before expiresAt. */
  readonly refreshMarginMs: number;
  /** Refresh at this fraction of the remaining lifetime... */
  readonly refreshFraction: number;
  /** ...spread by ± this fraction of that delay, so that nodes drift apart. */
  readonly refreshJitter: number;
  /** First retry after a failure; doubles with each failure up to the cap. */
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  /** Throttling backs off further: the whole fleet shares one quota. */
  readonly throttleBackoffBaseMs: number;
  readonly throttleBackoffCapMs: number;
  /** The fleet-wide rate the startup spread aims for (calls/s per account and region). */
  readonly startupTargetRatePerSecond: number;
  readonly startupSpreadMinMs: number;
  readonly startupSpreadMaxMs: number;
}

export const DEFAULT_POLICY: SchedulePolicy = {
  refreshMarginMs: HOUR,
  refreshFraction: 0.5,
  refreshJitter: 0.1,
  backoffBaseMs: 5 * SECOND,
  backoffCapMs: 5 * MINUTE,
  throttleBackoffBaseMs: 30 * SECOND,
  throttleBackoffCapMs: 15 * MINUTE,
  // Well under the published 20/s: independent uniform starts arrive like a Poisson process, and
  // at a mean of 6/s no single second reaches 20 (at 8/s some do, see docs/ecr.md).
  startupTargetRatePerSecond: 6,
  startupSpreadMinMs: 10 * SECOND,
  startupSpreadMaxMs: 30 * MINUTE,
};

/** A uniform random number in [0, 1). */
export type Random = () => number;

/**
 * Delay until the next refresh of a token that is valid for `remainingMs` more: about half the
 * remaining lifetime ± jitter, but never later than `refreshMarginMs` before expiry. A token that
 * is already inside the margin is refreshed soon (spread over a few minutes, never after expiry).
 */
export function refreshDelayMs(remainingMs: number, random: Random, policy: SchedulePolicy = DEFAULT_POLICY): number {
  if (remainingMs <= 0) return 0;
  const latest = remainingMs - policy.refreshMarginMs;
  if (latest <= 0) return Math.floor(random() * Math.min(remainingMs / 4, 5 * MINUTE));
  const base = remainingMs * policy.refreshFraction;
  const jittered = base * (1 + policy.refreshJitter * (2 * random() - 1));
  return Math.floor(Math.max(0, Math.min(jittered, latest)));
}

/**
 * Delay before retry number `failures` (1 = first failure): exponential, capped, with jitter in
 * [d/2, d) so that retries never bunch up and never come back instantly.
 */
export function backoffDelayMs(failures: number, throttled: boolean, random: Random, policy: SchedulePolicy = DEFAULT_POLICY): number {
  const base = throttled ? policy.throttleBackoffBaseMs : policy.backoffBaseMs;
  const cap = throttled ? policy.throttleBackoffCapMs : policy.backoffCapMs;
  const exp = Math.min(cap, base * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.floor(exp / 2 + (random() * exp) / 2);
}

/**
 * The window over which agents that start together spread their first call. A fleet of N nodes
 * needs at least N / rate seconds to stay under the rate, so the window grows with the fleet size
 * (bounded): 100 nodes get their tokens within 17 s, 10,000 nodes within ~28 minutes (the
 * quota alone needs 8 minutes for them). A node that just joined (`newNode`) skips this.
 */
export function startupSpreadMs(fleetSize: number, policy: SchedulePolicy = DEFAULT_POLICY): number {
  const needed = (Math.max(1, fleetSize) / policy.startupTargetRatePerSecond) * SECOND;
  return Math.min(policy.startupSpreadMaxMs, Math.max(policy.startupSpreadMinMs, needed));
}

/** Delay of an agent's first call for a registry it has no valid token for. */
export function startupDelayMs(fleetSize: number, random: Random, policy: SchedulePolicy = DEFAULT_POLICY): number {
  return Math.floor(random() * startupSpreadMs(fleetSize, policy));
}
