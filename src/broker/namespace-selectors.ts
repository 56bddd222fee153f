// The broker leader's namespace selectors (scoped registries, docs/kubernetes.md#scoped-registries):
// the API server evaluates each selector (a namespaces list with labelSelector, metadata only), so
// the semantics are exactly Kubernetes' and no selector parser of ours can differ from it.
// Re-resolution: ONE metadata-only namespace watch, running only while some selector is in use;
// its changes are debounced (a storm of namespace events is one pass) and a pass runs only when a
// namespace's name or labels changed (annotation and status churn costs nothing).
import type { Logger } from '../log.ts';
import { systemClock, type Clock } from '../model/clock.ts';
import { sortedDistinct as sorted, type SelectorFailure, type SelectorResolver } from '../model/scope.ts';
import { KubeApiError, type KubeClient } from '../sources/kube-client.ts';
import { type KubeObject, ListWatch, type WatchStateEvent, type WatchTuning } from '../sources/kubernetes/list-watch.ts';
import { NODE_METADATA_ACCEPT } from './registry-status.ts';

export interface NamespaceSelectorsOptions {
  readonly client: KubeClient;
  readonly logger: Logger;
  /** Namespace changes gathered this long before one re-resolution (default 1 s)... */
  readonly debounceMs?: number;
  /** ...but a steady storm still re-resolves this often (default 5 s). */
  readonly maxDelayMs?: number;
  readonly tuning?: WatchTuning;
  readonly onState?: (e: WatchStateEvent) => void;
  readonly clock?: Clock;
}

const NAMESPACES = '/api/v1/namespaces';
const REQUEST_TIMEOUT_MS = 10_000;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;

type Result = readonly string[] | SelectorFailure;

export class NamespaceSelectors implements SelectorResolver {
  private readonly opts: NamespaceSelectorsOptions;
  private readonly clock: Clock;
  private readonly owners = new Map<string, readonly string[]>();
  private readonly results = new Map<string, Result>();
  private readonly listeners = new Set<() => void>();
  private watch: ListWatch | undefined;
  /** Each namespace's resourceVersion and labels as last seen (undefined: the watch has not listed yet). */
  private labels: Labels | undefined;
  private running = false;
  private timer: unknown;
  private pendingSince: number | undefined;
  private retryTimer: unknown;
  private failures = 0;
  private chain: Promise<void> = Promise.resolve();
  private lastLogged = '';
  /** Re-resolutions of every selector in use (tests: one per storm). */
  passes = 0;
  /** Namespace list requests sent. */
  requests = 0;

  constructor(opts: NamespaceSelectorsOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
  }

  /** The selectors in use by any owner, sorted. */
  get selectors(): string[] {
    return sorted([...this.owners.values()].flat());
  }

  /** Whether the namespace watch runs (only while a selector is in use). */
  get watching(): boolean {
    return this.watch !== undefined;
  }

  start(): void {
    this.running = true;
    this.sync();
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of [this.timer, this.retryTimer]) if (t !== undefined) this.clock.clearTimer(t);
    this.timer = this.retryTimer = this.pendingSince = undefined;
    const w = this.watch;
    this.watch = undefined;
    this.labels = undefined;
    // A new term resolves afresh: a namespace may have changed while another replica led.
    this.results.clear();
    await w?.stop();
    await this.chain;
  }

  use(owner: string, selectors: readonly string[]): void {
    const next = sorted(selectors);
    if (JSON.stringify(next) === JSON.stringify(this.owners.get(owner) ?? [])) return;
    if (next.length === 0) this.owners.delete(owner);
    else this.owners.set(owner, next);
    this.sync();
  }

  lookup(selector: string): Result | undefined {
    return this.results.get(selector);
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves when no resolution is running (tests). */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Drops selectors no longer used, resolves new ones at once, runs the watch only while any is in use. */
  private sync(): void {
    const wanted = new Set(this.selectors);
    for (const s of [...this.results.keys()]) if (!wanted.has(s)) this.results.delete(s);
    if (!this.running) return;
    const fresh = [...wanted].filter((s) => !this.results.has(s));
    if (fresh.length > 0) this.enqueue(fresh, false);
    if (wanted.size > 0 && !this.watch) this.startWatch();
    if (wanted.size === 0 && this.watch) {
      const w = this.watch;
      this.watch = undefined;
      this.labels = undefined;
      if (this.timer !== undefined) this.clock.clearTimer(this.timer);
      this.timer = this.pendingSince = undefined;
      void w.stop();
    }
  }

  private startWatch(): void {
    const w = new ListWatch({
      client: this.opts.client,
      path: NAMESPACES,
      description: 'namespaces (metadata only)',
      rbac: { apiGroup: '', resource: 'namespaces', namespace: '(cluster-scoped: ClusterRole)' },
      accept: NODE_METADATA_ACCEPT,
      ...(this.opts.tuning ? { tuning: this.opts.tuning } : {}),
    });
    w.on('sync', (items) => {
      if (this.watch !== w) return;
      // The first list after the watch starts also passes once: a namespace may have changed
      // between the first resolution of a selector and the watch's list.
      const next = labelsOf(items, this.labels);
      const changed = !this.labels || next.changed;
      this.labels = next.labels;
      if (changed) this.debounce();
    });
    if (this.opts.onState) w.on('state', this.opts.onState);
    this.watch = w;
    w.start();
  }

  private debounce(): void {
    if (!this.running) return;
    const now = this.clock.monotonic();
    this.pendingSince ??= now;
    const due = Math.min(now + (this.opts.debounceMs ?? 1_000), this.pendingSince + (this.opts.maxDelayMs ?? 5_000));
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = this.clock.setTimer(() => {
      this.timer = this.pendingSince = undefined;
      this.enqueue(this.selectors, true);
    }, Math.max(0, due - now));
  }

  private enqueue(selectors: readonly string[], pass: boolean): void {
    this.chain = this.chain.then(() => this.resolve(selectors, pass));
  }

  /** One list per selector; listeners hear once per batch, and only of a change. */
  private async resolve(selectors: readonly string[], pass: boolean): Promise<void> {
    if (!this.running) return;
    if (pass) this.passes++;
    let changed = false;
    let retry = false;
    for (const selector of selectors) {
      if (!this.running || !this.selectors.includes(selector)) continue;
      const before = this.results.get(selector);
      const got = await this.list(selector);
      if (!this.running || !this.selectors.includes(selector)) continue;
      // The API server unreachable: a selector keeps its last namespaces (a blip never narrows or widens a scope).
      const next = got.code === 'NRC_E_K8S_UNAVAILABLE' && before !== undefined && Array.isArray(before) ? before : got.result;
      if (got.code === 'NRC_E_K8S_UNAVAILABLE') retry = true;
      if (JSON.stringify(next) !== JSON.stringify(before)) {
        this.results.set(selector, next);
        changed = true;
      }
    }
    if (retry) this.scheduleRetry();
    else this.failures = 0;
    // One line per pass: a storm of namespace events shows up as one (and `changed` says whether it mattered).
    if (pass) this.opts.logger.info({ selectors: selectors.length, changed, pass: this.passes }, 'namespaces changed: resolved the namespace selectors again');
    if (changed) for (const fn of [...this.listeners]) fn();
  }

  private scheduleRetry(): void {
    if (!this.running || this.retryTimer !== undefined) return;
    this.failures++;
    const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 10));
    this.retryTimer = this.clock.setTimer(() => {
      this.retryTimer = undefined;
      this.enqueue(this.selectors, false);
    }, Math.round(base * (0.75 + Math.random() / 2)));
  }

  /** The namespaces `selector` matches, as the API server says. */
  private async list(selector: string): Promise<{ result: Result; code?: SelectorFailure['code'] }> {
    this.requests++;
    const fail = (code: SelectorFailure['code'], detail: string): { result: Result; code: SelectorFailure['code'] } => {
      const key = `${code}\u0000${selector}`;
      if (key !== this.lastLogged) {
        this.lastLogged = key;
        this.opts.logger.warn({ code, selector }, `namespace selector ${JSON.stringify(selector)}: ${detail}`);
      }
      return { result: { code, detail }, code };
    };
    try {
      const res = await this.opts.client.request<unknown>('GET', NAMESPACES, { query: { labelSelector: selector }, accept: NODE_METADATA_ACCEPT.list, timeoutMs: REQUEST_TIMEOUT_MS });
      const items = (res as { items?: unknown } | undefined)?.items;
      if (items !== null && items !== undefined && !Array.isArray(items)) return fail('NRC_E_K8S_UNAVAILABLE', 'the API server answered the namespaces list with something that is not a list.');
      const names = (Array.isArray(items) ? items : []).map((o) => (o as KubeObject).metadata?.name).filter((n): n is string => typeof n === 'string');
      if (this.lastLogged.endsWith(`\u0000${selector}`)) this.lastLogged = '';
      return { result: sorted(names) };
    } catch (err) {
      const status = err instanceof KubeApiError ? err.code : undefined;
      const message = err instanceof KubeApiError && typeof (err.body as { message?: unknown } | undefined)?.message === 'string' ? String((err.body as { message: string }).message).slice(0, 300) : '';
      if (status === 400 || status === 422) return fail('NRC_E_SCOPE_INVALID', `the API server refused the namespace selector ${JSON.stringify(selector.slice(0, 200))}${message ? ` (${message})` : ''}.`);
      if (status === 403) return fail('NRC_E_K8S_FORBIDDEN', 'the broker may not list namespaces: add {apiGroups: [""], resources: ["namespaces"], verbs: ["list", "watch"]} to the ClusterRole node-registry-credentials-broker.');
      return fail('NRC_E_K8S_UNAVAILABLE', `the namespaces list failed (${status ? `HTTP ${status}` : ((err as Error | undefined)?.name ?? 'error')}); retrying.`);
    }
  }
}

type Labels = Map<string, { rv: string | undefined; labels: string }>;

/**
 * Every namespace's labels (what a selector can see), and whether a name or a label set changed
 * since `before`. Labels are compared only for objects whose resourceVersion moved: each watch
 * event costs a map walk, not a serialization of every namespace.
 */
function labelsOf(items: ReadonlyMap<string, KubeObject>, before: Labels | undefined): { labels: Labels; changed: boolean } {
  const labels: Labels = new Map();
  let changed = before === undefined || before.size !== items.size;
  for (const o of items.values()) {
    const md = o.metadata as { name?: string; resourceVersion?: string; labels?: Record<string, string> } | undefined;
    const name = md?.name ?? '';
    const prev = before?.get(name);
    if (prev && md?.resourceVersion !== undefined && prev.rv === md.resourceVersion) {
      labels.set(name, prev);
      continue;
    }
    const text = JSON.stringify(Object.entries(md?.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (prev?.labels !== text) changed = true;
    labels.set(name, { rv: md?.resourceVersion, labels: text });
  }
  return { labels, changed };
}
