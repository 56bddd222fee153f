// Makes each node's result visible from the cluster: annotations on the Node (hash of the
// applied configuration, time, last error codes) and rate-limited Warning Events for failures.
// Only codes, subjects (registry hosts, file paths) and fixed texts are sent: never a secret.
import { AgentError, ERROR_CODES } from '../errors.ts';
import type { PublishedReport } from '../model/apply-report.ts';
import { type KubeAccess, type KubeClient, kubeClientOf } from '../sources/kube-client.ts';

import { ANNOTATION_AT, ANNOTATION_ERRORS, ANNOTATION_HASH, ANNOTATION_PREFIX, ANNOTATION_PROVIDER_ASKED, ANNOTATION_TOKEN_EXPIRIES, formatProviderAsked, formatTokenExpiries, type ProviderAsked } from './node-annotations.ts';

export { ANNOTATION_AT, ANNOTATION_ERRORS, ANNOTATION_HASH, ANNOTATION_PREFIX, ANNOTATION_PROVIDER_ASKED };

/** A pass's report plus, in provider mode, whether the kubelet asks the plugin (absent: not provider mode). */
export type NodeReport = PublishedReport & { readonly providerAsked?: ProviderAsked };
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
  private readonly interval: number;
  private readonly maxEvents: number;
  private readonly now: () => Date;
  private lastAnnotations: string | undefined;
  private lastProviderAsked: string | null | undefined;
  private readonly lastEventAt = new Map<string, number>();
  private windowStart = 0;
  private windowCount = 0;

  constructor(opts: NodeStatusOptions) {
    this.opts = opts;
    this.client = kubeClientOf(opts.kubeConfig);
    this.interval = opts.eventIntervalMs ?? 600_000;
    this.maxEvents = opts.maxEventsPerInterval ?? 5;
    this.now = opts.now ?? (() => new Date());
  }

  /** Called by the reconciler after each apply; never throws. */
  async reportApply(result: NodeReport): Promise<void> {
    await Promise.all([this.annotate(result), this.events(result)]);
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
    // The provider state is compared on its own: its change alone must not move applied-at,
    // which `status` uses to find the newest configuration.
    const asked = result.providerAsked ? formatProviderAsked(result.providerAsked) : null;
    const appliedChanged = key !== this.lastAnnotations;
    if (!appliedChanged && asked === this.lastProviderAsked) return;
    const patch: Record<string, string | null> = appliedChanged ? { ...annotations, [ANNOTATION_AT]: result.at.toISOString() } : {};
    patch[ANNOTATION_PROVIDER_ASKED] = asked;
    try {
      await this.client.request('PATCH', `/api/v1/nodes/${encodeURIComponent(this.opts.nodeName)}`, { body: { metadata: { annotations: patch } }, contentType: 'application/merge-patch+json' });
      this.lastAnnotations = key;
      this.lastProviderAsked = asked;
    } catch (err) {
      this.fail('patch Node annotations', err);
    }
  }

  private async events(result: PublishedReport): Promise<void> {
    const now = this.now().getTime();
    if (now - this.windowStart >= this.interval) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    for (const e of result.errors) {
      const key = `${e.code}\u0000${e.subject ?? ''}`;
      const last = this.lastEventAt.get(key);
      if (last !== undefined && now - last < this.interval) continue;
      if (this.windowCount >= this.maxEvents) return;
      this.windowCount++;
      this.lastEventAt.set(key, now);
      const at = new Date(now).toISOString();
      try {
        const namespace = this.opts.eventNamespace ?? NODE_EVENT_NAMESPACE;
        await this.client.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, {
          body: {
            apiVersion: 'v1',
            kind: 'Event',
            metadata: { generateName: `${this.opts.nodeName}.nrc.`, namespace },
            // uid = node name, as the kubelet sets it for its own Node events.
            involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.opts.nodeName, uid: this.opts.nodeName },
            reason: EVENT_REASON,
            message: describe(e.code, e.subject).slice(0, 1024),
            type: 'Warning',
            source: { component: this.opts.component ?? 'node-registry-credentials', host: this.opts.nodeName },
            reportingComponent: this.opts.component ?? 'node-registry-credentials',
            reportingInstance: this.opts.nodeName,
            firstTimestamp: at,
            lastTimestamp: at,
            count: 1,
            action: 'Apply',
          },
        });
      } catch (err) {
        this.lastEventAt.delete(key);
        this.fail('create Event', err);
      }
    }
  }
}
