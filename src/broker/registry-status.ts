// The broker leader's report on each Registry, where operators look: conditions Resolved and
// Effective, a few status fields (type, host, effective node count, token expiry, last refresh, a
// masked hint) for `kubectl get registries`, and Events on each failure and recovery.
// Coexisting with the platform's controller: server-side apply on the status subresource with the
// broker's own field manager, carrying only the fields and condition types the broker owns, never
// forced. The platform's own conditions and fields are never in the apply, so never touched; a
// conflict (another manager owns what the broker would write) is reported, not overridden.
// Effective: ONE metadata-only watch of the Nodes (names and annotations: no spec, no status, no
// secret) for the whole broker. A node counts for a Registry when the broker write it applied
// (Node annotation broker-generation) is at least the one that brought the Registry's current
// credential (Secret annotation `since`), and its configuration is effective (issue 22).
// Rate: every change only marks the reporter dirty; a flush applies at most one status per
// Registry per interval, and only when its content changed, so 1,000 nodes changing state is a
// few writes, not 1,000.
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { systemClock, type Clock } from '../model/clock.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { quoteSubject } from '../model/registry-key.ts';
import { maskValue } from '../plan/mask.ts';
import { createEvent, EventLimiter } from '../report/events.ts';
import { ANNOTATION_BROKER_GENERATION, ANNOTATION_EFFECTIVE, parseEffective } from '../report/node-annotations.ts';
import { KubeApiError, type KubeClient } from '../sources/kube-client.ts';
import { type KubeObject, ListWatch, type WatchStateEvent, type WatchTuning } from '../sources/kubernetes/list-watch.ts';
import { parseRegistry, REGISTRY_GROUP, REGISTRY_PLURAL, REGISTRY_VERSION, type RegistryRequest } from '../sources/kubernetes/registry-source.ts';
import { parseBrokerGeneration } from '../sources/kubernetes/secret-source.ts';
import type { Leadership } from './lease.ts';
import type { EntrySince } from './secret-writer.ts';

/** The broker's field manager on the Registry status (and its Secret's managed-by label value). */
export const STATUS_FIELD_MANAGER = 'node-registry-credentials-broker';
/** The broker's own object under `status` (the platform's fields stay beside it). */
export const STATUS_FIELD = 'nodeCredentials';
export const CONDITION_RESOLVED = 'Resolved';
export const CONDITION_EFFECTIVE = 'Effective';
/** Metadata only: the broker holds Node names and annotations, never their spec or status. */
export const NODE_METADATA_ACCEPT = {
  list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
  watch: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
} as const;

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
}

/** `status.nodeCredentials`: what the printer columns and `status` show. Never a secret. */
export interface NodeCredentialsStatus {
  readonly type: string;
  /** host[:port] as the kubelet matches it. */
  readonly host: string;
  /** "<effective>/<nodes>", e.g. 998/1000 (absent while the Nodes cannot be read). */
  readonly effective?: string;
  readonly effectiveNodes?: number;
  readonly nodes?: number;
  /** ECR kinds: when the current token expires (RFC 3339). */
  readonly expiresAt?: string;
  /** When the current credential was written to the broker's Secret (RFC 3339). */
  readonly lastRefreshTime?: string;
  /** `****` and the last 4 characters of the password or token; `****` alone when shorter than 12. */
  readonly hint?: string;
}

export interface RegistryStatus {
  readonly conditions: readonly Condition[];
  readonly fields: NodeCredentialsStatus;
}

/** What the broker resolved (merged credentials and errors of its sources) and what its Secret says. */
export interface Resolution {
  readonly credentials: readonly RegistryCredential[];
  readonly errors: readonly AgentError[];
}

/** One node as the metadata watch shows it. */
export interface NodeView {
  readonly generation?: number;
  readonly effective?: ReturnType<typeof parseEffective>;
}

/** The masked hint of a password or token: its last 4 characters only when it is long enough to spare them. */
export function credentialHint(value: string): string {
  return value.length >= 12 ? maskValue(value) : '****';
}

/** RFC 3339 to the second, as metav1.Time is written. */
const seconds = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

function kindOf(obj: KubeObject): string {
  const spec = (obj as { spec?: unknown }).spec;
  if (typeof spec !== 'object' || spec === null) return 'invalid';
  const kinds = ['static', 'awsIamUser', 'awsIamRole'].filter((k) => (spec as Record<string, unknown>)[k] !== undefined && (spec as Record<string, unknown>)[k] !== null);
  return kinds.length === 1 ? kinds[0]! : 'invalid';
}

/** The errors of the merged result that are about this Registry. */
function errorsOf(req: RegistryRequest, name: string, key: string, errors: readonly AgentError[]): AgentError[] {
  const subject = `registry ${quoteSubject(name)}`;
  return errors.filter((e) => {
    if (e.subject === subject) return true;
    // The broker's own service-account token (subject: the account) fails every awsIamRole registry.
    if (req.kind === 'awsIamRole' && e.code === 'NRC_E_ECR_SA_TOKEN_FAILED') return true;
    if (e.subject !== key && e.subject !== req.host) return false;
    // A duplicate is reported on the key; only the Registry that was ignored is not resolved.
    return e.code !== 'NRC_E_DUPLICATE_REGISTRY' || e.message.includes(`Registry ${quoteSubject(name)} was ignored`);
  });
}

/** A scoped Registry's reach, for its Resolved message: the list when short, else a count. */
export function scopeText(namespaces: readonly string[]): string {
  if (namespaces.length === 0) return 'Scoped to namespaces: none match (served nowhere).';
  const shown = namespaces.length <= 5 ? `: ${namespaces.join(', ')}` : ` (${namespaces.slice(0, 3).join(', ')}, …)`;
  return `Scoped to ${namespaces.length} namespace(s)${shown}; never written node-wide.`;
}

/** Counts the nodes on which a credential written at `since` is effective, and when the next pending one becomes so. */
export function countEffective(nodes: Iterable<NodeView>, since: number, now: number): { effective: number; nodes: number; pending: number; nextAt?: number } {
  let effective = 0;
  let total = 0;
  let pending = 0;
  let nextAt: number | undefined;
  for (const n of nodes) {
    total++;
    if (n.generation === undefined || n.generation < since || !n.effective) continue;
    const at = n.effective.at.getTime();
    if (n.effective.state === 'effective' || (n.effective.state === 'pending' && at <= now)) effective++;
    else if (n.effective.state === 'pending') {
      pending++;
      nextAt = nextAt === undefined ? at : Math.min(nextAt, at);
    }
  }
  return { effective, nodes: total, pending, ...(nextAt !== undefined ? { nextAt } : {}) };
}

/**
 * Pure: the status the broker wants on `obj`, its lastTransitionTimes kept from `previous` (the
 * broker's conditions as the object has them) when the status did not change.
 */
export function desiredStatus(
  obj: KubeObject,
  input: { resolution: Resolution | undefined; since: ReadonlyMap<string, EntrySince>; nodes: Iterable<NodeView> | undefined; now: number },
  previous: readonly Condition[],
): RegistryStatus & { nextAt?: number } {
  const name = obj.metadata?.name ?? '';
  const generation = (obj.metadata as { generation?: unknown } | undefined)?.generation;
  const observed = typeof generation === 'number' ? { observedGeneration: generation } : {};
  const condition = (type: string, status: ConditionStatus, reason: string, message: string): Condition => {
    const prev = previous.find((c) => c.type === type);
    const lastTransitionTime = prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : seconds(input.now);
    return { type, status, reason, message: message.slice(0, 1024), ...observed, lastTransitionTime };
  };
  const req = parseRegistry(obj);
  if (req instanceof AgentError) {
    return {
      conditions: [condition(CONDITION_RESOLVED, 'False', req.code, req.message), condition(CONDITION_EFFECTIVE, 'False', 'NotResolved', 'The Registry is not resolved: nothing to propagate.')],
      fields: { type: kindOf(obj), host: name },
    };
  }
  const key = req.kind === 'static' ? req.key : req.host;
  const cred = input.resolution?.credentials.find((c) => c.key === key);
  const errors = input.resolution ? errorsOf(req, name, key, input.resolution.errors) : [];
  let resolved: Condition;
  if (errors.length > 0) {
    const e = errors[0]!;
    resolved = condition(CONDITION_RESOLVED, 'False', e.code, `${e.message}${cred ? ' The last good credential is still served.' : ''}`);
  } else if (cred) {
    const what = req.kind === 'static' ? 'The user and password were read from their Secrets.' : `An ECR token was obtained${cred.expiresAt ? `; it expires at ${cred.expiresAt.toISOString()}` : ''}.`;
    resolved = condition(CONDITION_RESOLVED, 'True', 'Resolved', `${what}${cred.namespaces ? ` ${scopeText(cred.namespaces)}` : ''}`);
  } else {
    resolved = condition(CONDITION_RESOLVED, 'Unknown', 'Pending', 'Waiting for the first answer of its Secrets or of AWS.');
  }
  const since = cred ? input.since.get(key) : undefined;
  let effective: Condition;
  let counted: ReturnType<typeof countEffective> | undefined;
  if (!cred || !since) {
    effective = condition(CONDITION_EFFECTIVE, 'False', 'NotWritten', 'The credential is not in the broker\'s Secret yet.');
  } else if (!input.nodes) {
    effective = condition(CONDITION_EFFECTIVE, 'Unknown', 'NodesUnknown', 'The broker cannot read the Nodes (ClusterRole node-registry-credentials-broker: nodes list, watch).');
  } else {
    counted = countEffective(input.nodes, since.generation, input.now);
    const { effective: n, nodes: total, pending } = counted;
    const rest = total - n - pending;
    const detail = [pending ? `${pending} pending behind the kubelet's config.json cache` : '', rest ? `${rest} on an older credential, not written or not reporting` : ''].filter(Boolean).join(', ');
    effective =
      total > 0 && n === total
        ? condition(CONDITION_EFFECTIVE, 'True', 'EffectiveOnAllNodes', `The current credential is effective on all ${total} node(s).`)
        : condition(CONDITION_EFFECTIVE, 'False', 'Propagating', `The current credential is effective on ${n} of ${total} node(s)${detail ? ` (${detail})` : ''}.`);
  }
  const password = cred?.identityToken ?? cred?.password;
  const fields: NodeCredentialsStatus = {
    type: req.kind,
    host: req.host,
    ...(counted ? { effective: `${counted.effective}/${counted.nodes}`, effectiveNodes: counted.effective, nodes: counted.nodes } : {}),
    ...(cred?.expiresAt ? { expiresAt: seconds(cred.expiresAt.getTime()) } : {}),
    ...(since ? { lastRefreshTime: seconds(Date.parse(since.at)) } : {}),
    ...(password ? { hint: credentialHint(password) } : {}),
  };
  return { conditions: [resolved, effective], fields, ...(counted?.nextAt !== undefined ? { nextAt: counted.nextAt } : {}) };
}

/** The broker's part of an object's status, in a fixed key order (to compare it). */
function ownedOf(obj: KubeObject): RegistryStatus {
  const status = (obj as { status?: { conditions?: unknown; [STATUS_FIELD]?: unknown } }).status;
  const conditions = Array.isArray(status?.conditions) ? (status.conditions as Condition[]).filter((c) => c && (c.type === CONDITION_RESOLVED || c.type === CONDITION_EFFECTIVE)) : [];
  const fields = (typeof status?.[STATUS_FIELD] === 'object' && status[STATUS_FIELD] !== null ? status[STATUS_FIELD] : {}) as NodeCredentialsStatus;
  return { conditions, fields };
}

/** Whether resourceVersion `a` is older than `b` (etcd's are integers; anything else: not known to be). */
function olderThan(a: string | undefined, b: string): boolean {
  if (a === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return a.length < b.length || (a.length === b.length && a < b);
}

function canonical(s: RegistryStatus): string {
  const c = (x: Condition): unknown[] => [x.type, x.status, x.reason, x.message, x.observedGeneration, x.lastTransitionTime];
  const f = s.fields;
  const conditions = [...s.conditions].sort((a, b) => a.type.localeCompare(b.type)).map(c);
  return JSON.stringify([conditions, [f.type, f.host, f.effective, f.effectiveNodes, f.nodes, f.expiresAt, f.lastRefreshTime, f.hint]]);
}

export interface RegistryStatusOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly logger: Logger;
  readonly leadership?: Leadership;
  /** Who reports (Events' reportingInstance): the leader's identity by default. */
  readonly instance?: string;
  /** At most one status apply per Registry in this window (default 5 s). */
  readonly minIntervalMs?: number;
  /** Changes are gathered this long before a flush (default 1 s). */
  readonly debounceMs?: number;
  /** At most one Event per Registry, reason and code in this window (default 10 min)... */
  readonly eventIntervalMs?: number;
  /** ...and at most this many Events per window in total (default 20). */
  readonly maxEventsPerInterval?: number;
  /** false: no Node watch (Effective stays Unknown). */
  readonly watchNodes?: boolean;
  readonly tuning?: WatchTuning;
  readonly onState?: (e: WatchStateEvent) => void;
  readonly clock?: Clock;
  /** Each status apply (tests, the rate figures). */
  readonly onApply?: (name: string, status: RegistryStatus) => void;
}

/** The longest wait between two tries of a status apply that keeps failing. */
const RETRY_CAP_MS = 5 * 60_000;

/** Events are named for what happened; the code is in the message. */
export const EVENT_REASON_FAILED = 'ResolveFailed';
export const EVENT_REASON_RECOVERED = 'Resolved';

export class RegistryStatusReporter {
  private readonly opts: RegistryStatusOptions;
  private readonly clock: Clock;
  private readonly registries: ListWatch;
  private readonly nodes: ListWatch | undefined;
  private registryItems: ReadonlyMap<string, KubeObject> = new Map();
  private nodeItems: ReadonlyMap<string, KubeObject> | undefined;
  private resolution: Resolution | undefined;
  private since: ReadonlyMap<string, EntrySince> = new Map();
  /** By uid: the canonical status last applied, when (monotonic), and the resourceVersion it produced. */
  private readonly sent = new Map<string, { status: string; at: number; rv?: string; failures?: number; retryAt?: number }>();
  /** By uid: the Resolved condition last reported (Events on its changes). */
  private readonly resolvedSeen = new Map<string, { status: ConditionStatus; reason: string }>();
  private readonly eventLimit: EventLimiter;
  private timer: unknown;
  private timerDue = Infinity;
  private running = false;
  private flushing: Promise<void> = Promise.resolve();
  private lastFailure = '';

  constructor(opts: RegistryStatusOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.eventLimit = new EventLimiter(opts.eventIntervalMs ?? 600_000, opts.maxEventsPerInterval ?? 20);
    this.registries = new ListWatch({
      client: opts.client,
      path: `/apis/${REGISTRY_GROUP}/${REGISTRY_VERSION}/namespaces/${encodeURIComponent(opts.namespace)}/${REGISTRY_PLURAL}`,
      description: `${REGISTRY_PLURAL}.${REGISTRY_GROUP} in ${opts.namespace} (status)`,
      rbac: { apiGroup: REGISTRY_GROUP, resource: REGISTRY_PLURAL, namespace: opts.namespace },
      ...(opts.tuning ? { tuning: opts.tuning } : {}),
    });
    this.registries.on('sync', (items) => {
      this.registryItems = items;
      this.changed();
    });
    if (opts.onState) this.registries.on('state', opts.onState);
    if (opts.watchNodes !== false) {
      this.nodes = new ListWatch({
        client: opts.client,
        path: '/api/v1/nodes',
        description: 'nodes (metadata only)',
        rbac: { apiGroup: '', resource: 'nodes', namespace: '(cluster-scoped: ClusterRole)' },
        accept: NODE_METADATA_ACCEPT,
        ...(opts.tuning ? { tuning: opts.tuning } : {}),
      });
      this.nodes.on('sync', (items) => {
        this.nodeItems = items;
        this.changed();
      });
      if (opts.onState) this.nodes.on('state', opts.onState);
    }
  }

  start(): void {
    this.running = true;
    this.sent.clear();
    this.registries.start();
    this.nodes?.start();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    await Promise.all([this.registries.stop(), this.nodes?.stop()]);
    await this.flushing;
  }

  /** The broker's merged result, after each of its passes. */
  setResolution(r: Resolution): void {
    this.resolution = r;
    this.changed();
  }

  /** The `since` annotation of the broker's Secret, as its watch sees it. */
  setSince(since: ReadonlyMap<string, EntrySince>): void {
    if (JSON.stringify([...since]) === JSON.stringify([...this.since])) return;
    this.since = since;
    this.changed();
  }

  /** Resolves when no flush is running (tests). */
  idle(): Promise<void> {
    return this.flushing;
  }

  private changed(): void {
    this.schedule(this.opts.debounceMs ?? 1_000);
  }

  /** A flush in `ms`, unless one is due sooner. */
  private schedule(ms: number): void {
    if (!this.running) return;
    const due = this.clock.monotonic() + ms;
    if (this.timer !== undefined && this.timerDue <= due) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerDue = due;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.flushing = this.flushing.then(() => this.flush());
    }, ms);
  }

  private nodeViews(): NodeView[] | undefined {
    if (!this.nodeItems) return undefined;
    const out: NodeView[] = [];
    for (const n of this.nodeItems.values()) {
      const a = (n.metadata as { annotations?: Record<string, string> } | undefined)?.annotations ?? {};
      const generation = parseBrokerGeneration(a[ANNOTATION_BROKER_GENERATION]);
      const effective = parseEffective(a[ANNOTATION_EFFECTIVE]);
      out.push({ ...(generation !== undefined ? { generation } : {}), ...(effective ? { effective } : {}) });
    }
    return out;
  }

  /** The highest broker write counter a Node reports (0 when none, or the Nodes are not read). */
  maxNodeGeneration(): number {
    let max = 0;
    for (const n of this.nodeItems?.values() ?? []) {
      const g = parseBrokerGeneration((n.metadata as { annotations?: Record<string, string> } | undefined)?.annotations?.[ANNOTATION_BROKER_GENERATION]);
      if (g !== undefined && g > max) max = g;
    }
    return max;
  }

  private leads(): boolean {
    return this.running && (!this.opts.leadership || this.opts.leadership.holdsLease());
  }

  private async flush(): Promise<void> {
    if (!this.leads() || !this.registries.hasSynced) return;
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    const interval = this.opts.minIntervalMs ?? 5_000;
    const nodes = this.nodeViews();
    let next = Infinity;
    for (const obj of [...this.registryItems.values()]) {
      if (!this.leads()) return;
      const uid = (obj.metadata as { uid?: string } | undefined)?.uid ?? obj.metadata?.name ?? '';
      const current = ownedOf(obj);
      const want = desiredStatus(obj, { resolution: this.resolution, since: this.since, nodes, now }, current.conditions);
      if (want.nextAt !== undefined) next = Math.min(next, mono + Math.max(0, want.nextAt - now) + 1);
      const text = canonical(want);
      const sent = this.sent.get(uid);
      // Compared with the object as the watch shows it, unless the watch has not caught up with the
      // broker's own last apply yet; so a status wiped by another writer is put back, not assumed.
      const known = sent?.rv !== undefined && olderThan(obj.metadata?.resourceVersion, sent.rv) ? sent.status : canonical(current);
      if (text === known) continue;
      // Not before the interval since the last apply, or, after failures, its backoff.
      const notBefore = sent ? (sent.retryAt ?? sent.at + interval) : -Infinity;
      if (mono < notBefore) {
        next = Math.min(next, notBefore);
        continue;
      }
      const applied = await this.apply(obj, want);
      if (applied === false) {
        // A failing apply (API server down, a 409 from a CRD that is not ours) backs off with
        // jitter from the interval, doubling to RETRY_CAP_MS, never sooner than the interval.
        const failures = (sent?.failures ?? 0) + 1;
        const retryAt = mono + Math.min(RETRY_CAP_MS, interval * 2 ** (failures - 1)) * (1 + Math.random() / 2);
        this.sent.set(uid, { status: sent?.status ?? '', at: mono, failures, retryAt });
        next = Math.min(next, retryAt);
        continue;
      }
      this.sent.set(uid, { status: text, at: mono, ...(typeof applied === 'string' ? { rv: applied } : {}) });
      this.opts.onApply?.(obj.metadata?.name ?? '', want);
      await this.events(obj, uid, current.conditions, want.conditions);
    }
    // Forget deleted Registries.
    const uids = new Set([...this.registryItems.values()].map((o) => (o.metadata as { uid?: string } | undefined)?.uid ?? o.metadata?.name ?? ''));
    for (const uid of this.sent.keys()) if (!uids.has(uid)) this.sent.delete(uid);
    for (const uid of this.resolvedSeen.keys()) if (!uids.has(uid)) this.resolvedSeen.delete(uid);
    if (next !== Infinity) this.schedule(Math.max(0, next - this.clock.monotonic()));
  }

  /** Server-side apply of the broker's part of the status: never forced, so another manager's fields are never taken. */
  /** The resourceVersion it produced (true when unknown), or false when it failed. */
  private async apply(obj: KubeObject, want: RegistryStatus): Promise<string | boolean> {
    const name = obj.metadata?.name ?? '';
    const path = `/apis/${REGISTRY_GROUP}/${REGISTRY_VERSION}/namespaces/${encodeURIComponent(this.opts.namespace)}/${REGISTRY_PLURAL}/${encodeURIComponent(name)}/status`;
    const body = {
      apiVersion: `${REGISTRY_GROUP}/${REGISTRY_VERSION}`,
      kind: 'Registry',
      metadata: { name, namespace: this.opts.namespace },
      status: { conditions: want.conditions, [STATUS_FIELD]: want.fields },
    };
    try {
      const res = await this.opts.client.request<KubeObject | undefined>('PATCH', path, { body, contentType: 'application/apply-patch+yaml', query: { fieldManager: STATUS_FIELD_MANAGER }, timeoutMs: 10_000 });
      this.lastFailure = '';
      return res?.metadata?.resourceVersion ?? true;
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) return true; // deleted meanwhile
      this.failed(`apply the status of registry ${quoteSubject(name)}`, err);
      return false;
    }
  }

  /** A Warning Event when Resolved turns False (or its code changes), a Normal one when it recovers; deduplicated. */
  private async events(obj: KubeObject, uid: string, before: readonly Condition[], after: readonly Condition[]): Promise<void> {
    const now = this.clock.monotonic();
    const was = this.resolvedSeen.get(uid) ?? before.find((c) => c.type === CONDITION_RESOLVED);
    const is = after.find((c) => c.type === CONDITION_RESOLVED);
    if (!is) return;
    this.resolvedSeen.set(uid, { status: is.status, reason: is.reason });
    let event: { type: 'Warning' | 'Normal'; reason: string; message: string; key: string } | undefined;
    if (is.status === 'False' && (was?.status !== 'False' || was.reason !== is.reason)) {
      event = { type: 'Warning', reason: EVENT_REASON_FAILED, message: is.message, key: `${uid}\u0000failed\u0000${is.reason}` };
    } else if (is.status === 'True' && was?.status === 'False') {
      event = { type: 'Normal', reason: EVENT_REASON_RECOVERED, message: `Resolved again (it failed with ${was.reason}).`, key: `${uid}\u0000recovered\u0000${was.reason}` };
    }
    if (!event) return;
    if (!this.leads() || !this.eventLimit.allow(event.key, now)) return;
    const md = obj.metadata as { name?: string; uid?: string; resourceVersion?: string };
    try {
      await createEvent(
        this.opts.client,
        {
          namespace: this.opts.namespace,
          name: md.name ?? 'registry',
          involvedObject: { apiVersion: `${REGISTRY_GROUP}/${REGISTRY_VERSION}`, kind: 'Registry', name: md.name ?? '', namespace: this.opts.namespace, ...(md.uid ? { uid: md.uid } : {}) },
          type: event.type,
          reason: event.reason,
          message: event.message,
          component: STATUS_FIELD_MANAGER,
          instance: this.opts.instance ?? this.opts.leadership?.term().identity ?? STATUS_FIELD_MANAGER,
          action: 'Resolve',
          at: new Date(this.clock.now()),
        },
        10_000,
      );
    } catch (err) {
      this.eventLimit.forget(event.key);
      this.failed(`create an Event on registry ${quoteSubject(md.name ?? '')}`, err);
    }
  }

  /** Logged once per distinct failure while it lasts. */
  private failed(what: string, err: unknown): void {
    const status = err instanceof KubeApiError ? err.code : undefined;
    const e = new AgentError('NRC_E_REGISTRY_STATUS_FAILED', { subject: what.replace(/^.* registry /, 'registry '), detail: `(${what}${status ? `: HTTP ${status}` : ''})`, cause: err });
    const key = `${what}\u0000${status ?? ''}`;
    if (key === this.lastFailure) return this.opts.logger.debug({ code: e.code, subject: e.subject, status }, e.message);
    this.lastFailure = key;
    this.opts.logger.warn({ code: e.code, subject: e.subject, status }, e.message);
  }
}
