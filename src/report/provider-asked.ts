// Provider mode: whether the kubelet really asks the credential provider plugin, observed on the
// node. The plugin touches PROVIDER_ASKED_PATH at each valid request; `run` reads its mtime (the
// last request) after its passes, at most once per resync interval, and turns it into the metric
// and the Node annotation's rarely-changing state. Pure: the caller reads the file and the clock.
import type { ProviderAsked } from './node-annotations.ts';

export interface ProviderAskedObservation extends ProviderAsked {
  /** The last request on record (the file's mtime), undefined when there is none. */
  readonly lastRequestAt: Date | undefined;
}

/**
 * The rule of the annotation: the reference is the agent's first observation in provider mode (it
 * follows the agent's first provider-mode pass, i.e. its first provider write). A request at or
 * after it makes the state `asking`, dated by the first such request seen, and it stays so (later
 * requests do not change the value) until the file disappears. A request on record from before it
 * only is `stale` (dated by that request); no file is `not-asked-yet`.
 */
export class ProviderAskedTracker {
  private reference: number | undefined;
  private askingSince: Date | undefined;
  private observedAt = Number.NEGATIVE_INFINITY;
  private last: ProviderAskedObservation | undefined;

  /** `minIntervalMs`: the file is read at most this often (the resync interval's lower bound). */
  constructor(private readonly minIntervalMs: number) {}

  /** The observation at `nowMs`, reading the last request time with `read` only when one is due. */
  observe(nowMs: number, read: () => Date | undefined): ProviderAskedObservation {
    if (this.last !== undefined && nowMs - this.observedAt < this.minIntervalMs) return this.last;
    this.observedAt = nowMs;
    this.reference ??= nowMs;
    const lastRequestAt = read();
    if (lastRequestAt === undefined) {
      this.askingSince = undefined;
      this.last = { state: 'not-asked-yet', lastRequestAt };
    } else if (this.askingSince !== undefined || lastRequestAt.getTime() >= this.reference) {
      this.askingSince ??= lastRequestAt;
      this.last = { state: 'asking', at: this.askingSince, lastRequestAt };
    } else {
      this.last = { state: 'stale', at: lastRequestAt, lastRequestAt };
    }
    return this.last;
  }
}
