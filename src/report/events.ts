// Kubernetes Events, as the node agent (about its Node) and the broker (about each Registry) send
// them: a limit per subject and per window, so that a fleet-wide failure does not flood etcd, and
// one core/v1 Event body. Only codes, subjects and fixed texts go in: never a secret.
import type { KubeClient } from '../sources/kube-client.ts';

/** At most one Event per key in `intervalMs`, and at most `max` per window of that length in all. */
export class EventLimiter {
  private readonly lastAt = new Map<string, number>();
  private windowStart = 0;
  private windowCount = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly max: number,
  ) {}

  /** Whether an Event for `key` may go now (`nowMs`, on any one clock); if so, it is counted. */
  allow(key: string, nowMs: number): boolean {
    const last = this.lastAt.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) return false;
    if (nowMs - this.windowStart >= this.intervalMs) {
      this.windowStart = nowMs;
      this.windowCount = 0;
    }
    if (this.windowCount >= this.max) return false;
    this.windowCount++;
    this.lastAt.set(key, nowMs);
    return true;
  }

  /** The Event for `key` could not be created: the next one may try again at once. */
  forget(key: string): void {
    this.lastAt.delete(key);
  }
}

export interface EventSpec {
  readonly namespace: string;
  /** The object's name, as the Event's generateName prefix. */
  readonly name: string;
  readonly involvedObject: Readonly<Record<string, string>>;
  readonly type: 'Warning' | 'Normal';
  readonly reason: string;
  readonly message: string;
  readonly component: string;
  readonly instance: string;
  /** source.host, for an Event about a Node. */
  readonly host?: string;
  readonly action: string;
  readonly at: Date;
}

/** Creates one core/v1 Event (count 1; first and last timestamps `at`), its message cut to 1,024 characters. */
export async function createEvent(client: KubeClient, e: EventSpec, timeoutMs?: number): Promise<void> {
  const at = e.at.toISOString();
  await client.request('POST', `/api/v1/namespaces/${encodeURIComponent(e.namespace)}/events`, {
    body: {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${e.name}.nrc.`, namespace: e.namespace },
      involvedObject: e.involvedObject,
      reason: e.reason,
      message: e.message.slice(0, 1024),
      type: e.type,
      source: { component: e.component, ...(e.host !== undefined ? { host: e.host } : {}) },
      reportingComponent: e.component,
      reportingInstance: e.instance,
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
      action: e.action,
    },
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
}
