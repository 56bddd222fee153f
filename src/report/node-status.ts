// Makes each node's result visible from the cluster: annotations on the Node (hash of the
// applied configuration, time, last error codes) and rate-limited Warning Events for failures.
// Only codes, subjects (registry hosts, file paths) and fixed texts are sent: never a secret.
import { AgentError, ERROR_CODES } from '../errors.ts';
import type { PublishedReport } from '../model/apply-report.ts';
import { type KubeAccess, type KubeClient, kubeClientOf } from '../sources/kube-client.ts';
import { createEvent, EventLimiter } from './events.ts';

import {
  ANNOTATION_AT,
  ANNOTATION_BROKER_GENERATION,
  ANNOTATION_EFFECTIVE,
  ANNOTATION_ERRORS,
  ANNOTATION_HASH,
  ANNOTATION_PREFIX,
  ANNOTATION_PROVIDER_ASKED,
  ANNOTATION_TOKEN_EXPIRIES,
  type EffectiveState,
  formatEffective,
  formatProviderAsked,
  formatTokenExpiries,
  type ProviderAsked,
} from './node-annotations.ts';

export { ANNOTATION_AT, ANNOTATION_BROKER_GENERATION, ANNOTATION_EFFECTIVE, ANNOTATION_ERRORS, ANNOTATION_HASH, ANNOTATION_PREFIX, ANNOTATION_PROVIDER_ASKED };

/**
 * A pass's report plus, in provider mode, whether the kubelet asks the plugin (absent: not
 * provider mode), and whether the configuration is effective yet.
 */
export type NodeReport = PublishedReport & {
  readonly providerAsked?: ProviderAsked;
  readonly effective?: EffectiveState;
  /** The write counter of the broker's Secret this pass applied (absent: not using the broker's Secret). */
  readonly brokerGeneration?: number;
};

interface NodeTaint {
  readonly key: string;
  readonly value?: string;
  readonly effect: string;
  readonly timeAdded?: string;
}
interface NodeObject {
  readonly spec?: { readonly taints?: readonly NodeTaint[] };
}
export const EVENT_REASON = 'RegistryCredentialsError';

/**
 * Where Events about this node go. The API server validates that an Event's namespace matches its
 * involvedObject's, and a Node has none: only `default` is accepted (as for the kubelet's own Node
 * events). Found against the real kube-apiserver: Events in the agent's namespace were refused (422).
 */
export const NODE_EVENT_NAMESPACE = 'default';

export interface NodeStatusOptions {
  readonly kubeConfig: KubeAccess;
  readonly nodeName: string;
  /**
   * Namespace the Events are created in (default `default`, NODE_EVENT_NAMESPACE: the API server
   * refuses an Event about a cluster-scoped object such as a Node in any other namespace, except
   * kube-system for new-style Events; `kubectl describe node` shows them).
   */
  readonly eventNamespace?: string;
  /** At most one Event per error code and subject in this window (default 10 min). */
  readonly eventIntervalMs?: number;
  /** At most this many Events per window in total (default 5): a fleet-wide failure must not flood etcd. */
  readonly maxEventsPerInterval?: number;
  readonly now?: () => Date;
  /** Reporting failures (they never fail the apply). */
  readonly onError?: (err: AgentError) => void;
  /** Names the component in Events. */
  readonly component?: string;
  /**
   * The startup taint's key: once the configuration is effective, every taint with this key is
   * removed from the Node (the admission policy allows exactly that). Undefined or '': none.
   */
  readonly startupTaint?: string;
  /** Called once the startup taint has been removed (or was found absent once effective). */
  readonly onStartupTaint?: (outcome: 'removed' | 'absent') => void;
}

const MAX_ANNOTATION_ERRORS = 10;

function describe(code: string, subject: string | undefined): string {
  const info = (ERROR_CODES as Record<string, { summary: string; fix: string } | undefined>)[code];
  const where = subject ? ` [${subject}]` : '';
  return info ? `${code}${where}: ${info.summary} Fix: ${info.fix}` : `${code}${where}`;
}

export class NodeStatusReporter {
  private readonly client: KubeClient;
  private readonly opts: NodeStatusOptions;
  private readonly now: () => Date;
  private lastAnnotations: string | undefined;
  private lastSide: string | undefined;
  private lastResult: NodeReport | undefined;
  /** The startup taint is dealt with (removed, or found absent when effective): no more checks. */
  private taintDone = false;
  private taintRetries = 0;
  private taintTimer: NodeJS.Timeout | undefined;
  private readonly eventLimit: EventLimiter;

  constructor(opts: NodeStatusOptions) {
    this.opts = opts;
    this.client = kubeClientOf(opts.kubeConfig);
    this.eventLimit = new EventLimiter(opts.eventIntervalMs ?? 600_000, opts.maxEventsPerInterval ?? 5);
    this.now = opts.now ?? (() => new Date());
  }

  /** Called by the reconciler after each apply; never throws. */
  async reportApply(result: NodeReport): Promise<void> {
    this.lastResult = result;
    await Promise.all([this.annotate(result), this.events(result)]);
  }

  /** A change of the effective state between passes (config.json read by the kubelet, or its cache lifetime over). */
  async reportEffective(effective: EffectiveState): Promise<void> {
    if (!this.lastResult) return;
    this.lastResult = { ...this.lastResult, effective };
    await this.annotate(this.lastResult);
  }

  private fail(what: string, err: unknown): void {
    const code = (err as { code?: unknown }).code;
    const detail = code === 403 ? `${what}: 403 Forbidden (RBAC).` : `${what}${typeof code === 'number' ? ` (HTTP ${code})` : ''}.`;
    this.opts.onError?.(new AgentError('NRC_E_NODE_STATUS_FAILED', { subject: `node ${this.opts.nodeName}`, detail, cause: err }));
  }

  private async annotate(result: NodeReport): Promise<void> {
    const codes = [...new Set(result.errors.map((e) => e.code))].sort().slice(0, MAX_ANNOTATION_ERRORS);
    const annotations: Record<string, string | null> = {
      [ANNOTATION_HASH]: result.hash,
      [ANNOTATION_ERRORS]: codes.length ? codes.join(',') : null,
      [ANNOTATION_TOKEN_EXPIRIES]: formatTokenExpiries(result.expiries ?? new Map()),
    };
    // Skip identical reports (periodic resyncs) so a fleet does not patch Nodes for nothing;
    // applied-at changes only when the hash or the errors do.
    const key = JSON.stringify(annotations);
    // The provider and effective states are compared on their own: their change alone must not
    // move applied-at, which `status` uses to find the newest configuration.
    const side: Record<string, string | null> = {
      [ANNOTATION_PROVIDER_ASKED]: result.providerAsked ? formatProviderAsked(result.providerAsked) : null,
      [ANNOTATION_EFFECTIVE]: result.effective ? formatEffective(result.effective) : null,
      [ANNOTATION_BROKER_GENERATION]: result.brokerGeneration !== undefined ? String(result.brokerGeneration) : null,
    };
    const sideKey = JSON.stringify(side);
    const appliedChanged = key !== this.lastAnnotations;
    if (!appliedChanged && sideKey === this.lastSide) return;
    const patch: Record<string, string | null> = appliedChanged ? { ...annotations, [ANNOTATION_AT]: result.at.toISOString(), ...side } : side;
    let node: NodeObject;
    try {
      node = await this.client.request<NodeObject>('PATCH', this.nodePath, { body: { metadata: { annotations: patch } }, contentType: 'application/merge-patch+json' });
      this.lastAnnotations = key;
      this.lastSide = sideKey;
    } catch (err) {
      this.fail('patch Node annotations', err);
      return;
    }
    if (result.effective?.state === 'effective') await this.liftStartupTaint(node);
  }

  /**
   * Removes the startup taint, the Node as the annotation patch returned it being the current one.
   * A JSON patch that tests each taint it removes: if the taints changed meanwhile, it fails (422)
   * and the next report tries again; nothing else of the Node is sent.
   */
  private async liftStartupTaint(node: NodeObject): Promise<void> {
    const key = this.opts.startupTaint;
    if (!key || this.taintDone) return;
    const taints = node.spec?.taints ?? [];
    const at = taints.flatMap((t, i) => (t.key === key ? [i] : []));
    if (at.length === 0) {
      this.taintDone = true;
      this.opts.onStartupTaint?.('absent');
      return;
    }
    // From the end, so that each index stays valid after the removals before it.
    const ops = at.reverse().flatMap((i) => [
      { op: 'test', path: `/spec/taints/${i}`, value: taints[i] },
      { op: 'remove', path: `/spec/taints/${i}` },
    ]);
    try {
      await this.client.request('PATCH', this.nodePath, { body: ops, contentType: 'application/json-patch+json' });
      this.taintDone = true;
      this.opts.onStartupTaint?.('removed');
    } catch (err) {
      // A 422 when the taints changed meanwhile (the node lifecycle controller lifts its own at the
      // same moment): read the Node again and retry.
      this.fail(`remove the startup taint ${key}`, err);
      this.retryStartupTaint();
    }
  }

  /** Reads the Node again (an empty patch returns it) and retries, backing off with jitter to 30 s. */
  private retryStartupTaint(): void {
    this.taintRetries++;
    clearTimeout(this.taintTimer);
    this.taintTimer = setTimeout(async () => {
      try {
        await this.liftStartupTaint(await this.client.request<NodeObject>('PATCH', this.nodePath, { body: {}, contentType: 'application/merge-patch+json' }));
      } catch (err) {
        this.fail('read the Node for its startup taint', err);
        this.retryStartupTaint();
      }
    }, Math.min(30_000, 500 * 2 ** this.taintRetries) * (0.5 + Math.random() / 2));
    this.taintTimer.unref();
  }

  private get nodePath(): string {
    return `/api/v1/nodes/${encodeURIComponent(this.opts.nodeName)}`;
  }

  /** Stops a pending retry of the startup taint's removal. */
  stop(): void {
    clearTimeout(this.taintTimer);
  }

  private async events(result: PublishedReport): Promise<void> {
    const now = this.now();
    for (const e of result.errors) {
      const key = `${e.code}\u0000${e.subject ?? ''}`;
      if (!this.eventLimit.allow(key, now.getTime())) continue;
      try {
        await createEvent(this.client, {
          namespace: this.opts.eventNamespace ?? NODE_EVENT_NAMESPACE,
          name: this.opts.nodeName,
          // uid = node name, as the kubelet sets it for its own Node events.
          involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.opts.nodeName, uid: this.opts.nodeName },
          type: 'Warning',
          reason: EVENT_REASON,
          message: describe(e.code, e.subject),
          component: this.opts.component ?? 'node-registry-credentials',
          instance: this.opts.nodeName,
          host: this.opts.nodeName,
          action: 'Apply',
          at: now,
        });
      } catch (err) {
        this.eventLimit.forget(key);
        this.fail('create Event', err);
      }
    }
  }
}
