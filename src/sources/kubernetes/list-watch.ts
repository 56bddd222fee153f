// A reflector for a small set of objects: list (with resourceVersion) then watch from it,
// resuming after timeouts/disconnects, relisting on 410 Gone, backing off with jitter on
// failures, and a watchdog that relists when the stream goes silent (not even a bookmark).
// Its state changes are events (onState) that logs and metrics read.
//
// Backoff, as client-go's reflector: a failure streak grows the delay up to the cap, and only a
// watch that carried data (an event or a bookmark) or stayed open HEALTHY_WATCH_MS ends the
// streak. A request that was merely sent, or a watch the server accepted and closed at once,
// proves nothing: a fleet of agents must not hammer an API server that is down or refusing.
import { EventEmitter } from 'node:events';
import { AgentError } from '../../errors.ts';
import { KubeBadResponse, type KubeClient, type WatchHandle } from '../kube-client.ts';

export type KubeObject = Record<string, unknown> & { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

export type WatchState =
  /** Listed, and the server accepted the watch. */
  | 'connected'
  /** Listing again: first start, 410 Gone, or after the watchdog fired. */
  | 'relisting'
  /** The watch delivered nothing (not even a bookmark) for `watchdogMs`; it is cut and a relist follows. */
  | 'stalled'
  /** A request failed (network, 429, 5xx, a 2xx that is not the API server's answer); retrying after `retryInMs`. */
  | 'disconnected'
  /** 403: RBAC denies a request; retrying after `retryInMs` in case the Role gets fixed. */
  | 'forbidden'
  /** `maxConsecutiveFailures` reached: the watcher stopped. */
  | 'gave-up'
  | 'stopped';

export interface WatchStateEvent {
  readonly state: WatchState;
  /** Which watch, e.g. "secrets okteto/okteto-dockerconfig-static". */
  readonly watch: string;
  readonly error?: AgentError;
  readonly retryInMs?: number;
  /** Consecutive failures so far. */
  readonly failures: number;
}

export interface WatchTuning {
  /** First retry delay after a failure (default 500 ms). */
  initialBackoffMs?: number;
  /** Retry delay cap (default 30 s). */
  maxBackoffMs?: number;
  /** Relist when nothing arrived for this long (default 5 min; bookmarks count). */
  watchdogMs?: number;
  /** Server-side watch lifetime, randomized in [t, 2t) like client-go (default 300 s). */
  watchTimeoutSeconds?: number;
  /** Stop after this many consecutive failures (default: never). */
  maxConsecutiveFailures?: number;
  /** [0, 1) source for jitter; injectable for tests. */
  random?: () => number;
  /** Milliseconds that never step (durations); injectable for tests. */
  monotonic?: () => number;
}

/** A watch open this long proves the server healthy even without an event (a quiet watch with no bookmarks). */
export const HEALTHY_WATCH_MS = 30_000;

/** The RBAC rule a request needs, to name it in a 403 error. */
export interface RbacRule {
  readonly apiGroup: string;
  readonly resource: string;
  readonly namespace: string;
  readonly resourceName?: string;
}

interface ListResult {
  readonly items: readonly KubeObject[];
  readonly resourceVersion: string;
}

export interface ListWatchOptions {
  readonly client: KubeClient;
  /** Collection path for the list and the watch, e.g. /api/v1/namespaces/okteto/secrets. */
  readonly path: string;
  readonly fieldSelector?: string;
  /** Human name of this watch for events and errors. */
  readonly description: string;
  readonly rbac: RbacRule;
  readonly tuning?: WatchTuning;
  /** The Accept headers of the list and of the watch (default JSON objects); e.g. metadata only. */
  readonly accept?: { readonly list: string; readonly watch: string };
}

export interface ListWatchEvents {
  /** The full current set of objects (by namespace/name) after every change. */
  sync: [items: ReadonlyMap<string, KubeObject>];
  state: [event: WatchStateEvent];
}

/** Delay before retry `attempt` (1-based): exponential, capped, with "equal jitter" (half fixed, half random). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (base / 2) * random());
}

function statusCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** The 403 error, naming the exact rule to add to the Role. */
export function forbiddenError(rule: RbacRule, verbs: readonly string[], cause?: unknown): AgentError {
  const names = rule.resourceName ? `, resourceNames: ["${rule.resourceName}"]` : '';
  return new AgentError('NRC_E_K8S_FORBIDDEN', {
    subject: `${rule.resource}${rule.resourceName ? `/${rule.resourceName}` : ''} in ${rule.namespace}`,
    detail: `Missing rule in a Role in namespace "${rule.namespace}": {apiGroups: ["${rule.apiGroup}"], resources: ["${rule.resource}"]${names}, verbs: [${verbs.map((v) => `"${v}"`).join(', ')}]}.`,
    cause,
  });
}

function objectKey(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

/**
 * One list of a collection: its items and the resourceVersion to watch from. Anything but a list
 * with a resourceVersion is refused: read as "no objects" it would wipe the node's credentials.
 */
async function listObjects(client: KubeClient, path: string, fieldSelector: string | undefined, accept?: string): Promise<ListResult> {
  const res = await client.request<unknown>('GET', path, { query: { fieldSelector }, ...(accept ? { accept } : {}) });
  const list = typeof res === 'object' && res !== null && !Array.isArray(res) ? (res as { kind?: unknown; items?: unknown; metadata?: { resourceVersion?: unknown } }) : undefined;
  const items = list?.items === null ? [] : list?.items; // a Go nil slice serializes as null
  const rv = list?.metadata?.resourceVersion;
  if (!list || !Array.isArray(items) || typeof rv !== 'string' || rv === '' || (typeof list.kind === 'string' && !list.kind.endsWith('List'))) {
    throw new KubeBadResponse(200, 'not a list with a resourceVersion');
  }
  return { items: items.filter((o): o is KubeObject => typeof o === 'object' && o !== null), resourceVersion: rv };
}

class Gone extends Error {
  readonly code = 410;
}

export class ListWatch extends EventEmitter<ListWatchEvents> {
  private readonly opts: ListWatchOptions;
  private readonly t: Required<WatchTuning>;
  private readonly items = new Map<string, KubeObject>();
  private resourceVersion: string | undefined;
  private stopped = false;
  private failures = 0;
  private abort: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private synced = false;
  private watchStarted = false;
  /** 410 Gone answers in a row with no event between them: past one, a failing server, not an expired resourceVersion. */
  private gones = 0;
  /** Watch (re)starts after the first one; a metric. */
  restarts = 0;
  state: WatchState = 'relisting';

  constructor(opts: ListWatchOptions) {
    super();
    this.opts = opts;
    const t = opts.tuning ?? {};
    this.t = {
      initialBackoffMs: t.initialBackoffMs ?? 500,
      maxBackoffMs: t.maxBackoffMs ?? 30_000,
      watchdogMs: t.watchdogMs ?? 300_000,
      watchTimeoutSeconds: t.watchTimeoutSeconds ?? 300,
      maxConsecutiveFailures: t.maxConsecutiveFailures ?? Number.POSITIVE_INFINITY,
      random: t.random ?? Math.random,
      monotonic: t.monotonic ?? (() => performance.now()),
    };
  }

  /** True once the first list succeeded. */
  get hasSynced(): boolean {
    return this.synced;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.();
    this.wake?.();
    await this.loop;
    this.setState({ state: 'stopped', watch: this.opts.description, failures: this.failures });
  }

  private setState(e: WatchStateEvent): void {
    this.state = e.state;
    this.emit('state', e);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          this.setState({ state: 'relisting', watch: this.opts.description, failures: this.failures });
          const res = await listObjects(this.opts.client, this.opts.path, this.opts.fieldSelector, this.opts.accept?.list);
          if (this.stopped) return;
          this.items.clear();
          for (const o of res.items) this.items.set(objectKey(o), o);
          this.resourceVersion = res.resourceVersion;
          needList = false;
          this.synced = true;
          this.emit('sync', this.items);
        }
        if (this.watchStarted) this.restarts++;
        this.watchStarted = true;
        const outcome = await this.watchOnce();
        if (this.stopped) return;
        if (outcome === 'stalled') {
          this.setState({ state: 'stalled', watch: this.opts.description, failures: this.failures });
          needList = true;
        }
        // 'ended' (server timeout, clean close): resume from the last resourceVersion at once.
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof Gone) {
          needList = true;
          if (++this.gones <= 1) continue;
        }
        this.failures++;
        const code = statusCode(err);
        const forbidden = code === 403;
        const error = forbidden
          ? forbiddenError(this.opts.rbac, ['get', 'list', 'watch'], err)
          : err instanceof KubeBadResponse
            ? new AgentError('NRC_E_K8S_BAD_RESPONSE', { subject: this.opts.description, detail: `(${err.message})`, cause: err })
            : new AgentError('NRC_E_K8S_UNAVAILABLE', {
                subject: this.opts.description,
                detail: code ? `(HTTP ${code})` : `(${errorName(err)})`,
                cause: err,
              });
        if (this.failures >= this.t.maxConsecutiveFailures) {
          this.setState({ state: 'gave-up', watch: this.opts.description, error, failures: this.failures });
          return;
        }
        // A 429's or 503's Retry-After is honoured up to the cap (the API server's own priority and fairness asks for it).
        const retryAfter = Math.min(this.t.maxBackoffMs, retryAfterOf(err) ?? 0);
        const retryInMs = Math.max(retryAfter, backoffDelay(this.failures, this.t.initialBackoffMs, this.t.maxBackoffMs, this.t.random));
        this.setState({ state: forbidden ? 'forbidden' : 'disconnected', watch: this.opts.description, error, retryInMs, failures: this.failures });
        await this.sleep(retryInMs);
      }
    }
  }

  /** One watch request; resolves 'ended' on a clean end, 'stalled' when the watchdog cut it; throws on failure. */
  private async watchOnce(): Promise<'ended' | 'stalled'> {
    // The client has no timer of its own: the watchdog owns silence detection (a bookmark-less
    // quiet watch is normal on a real cluster).
    const timeoutSeconds = Math.round(this.t.watchTimeoutSeconds * (1 + this.t.random()));
    return new Promise<'ended' | 'stalled'>((resolve, reject) => {
      let settled = false;
      let gotData = false;
      let controller: WatchHandle | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      const started = this.t.monotonic();
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.abort = undefined;
        controller?.abort();
        fn();
      };
      const armWatchdog = (): void => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => finish(() => resolve('stalled')), this.t.watchdogMs);
      };
      this.abort = () => finish(() => resolve('ended'));
      armWatchdog();
      const onOpen = (): void => {
        if (settled) return;
        this.setState({ state: 'connected', watch: this.opts.description, failures: this.failures });
      };
      const onEvent = (type: string, obj: KubeObject): void => {
        if (settled) return;
        armWatchdog();
        const rv = obj?.metadata?.resourceVersion;
        if (type !== 'ERROR' && !gotData) {
          gotData = true;
          this.failures = 0; // the server delivered: the failure streak is over
          this.gones = 0;
        }
        switch (type) {
          case 'ADDED':
          case 'MODIFIED':
            this.items.set(objectKey(obj), obj);
            if (rv) this.resourceVersion = rv;
            this.emit('sync', this.items);
            break;
          case 'DELETED':
            this.items.delete(objectKey(obj));
            if (rv) this.resourceVersion = rv;
            this.emit('sync', this.items);
            break;
          case 'BOOKMARK':
            if (rv) this.resourceVersion = rv;
            break;
          case 'ERROR': {
            const code = (obj as { code?: unknown }).code;
            if (code === 410) finish(() => reject(new Gone()));
            else finish(() => reject(Object.assign(new Error(String((obj as { message?: unknown }).message ?? 'watch error')), { code })));
            break;
          }
        }
      };
      const onDone = (err: unknown): void => {
        if (err && !isAbort(err)) return finish(() => reject(err));
        if (gotData) return finish(() => resolve('ended'));
        // Closed without a single event: healthy only if it stayed open a while (a quiet watch that
        // timed out); a server or proxy that accepts and closes at once is failing: back off.
        if (this.t.monotonic() - started >= Math.min(HEALTHY_WATCH_MS, timeoutSeconds * 1000)) {
          this.failures = 0;
          return finish(() => resolve('ended'));
        }
        finish(() => reject(new Error('watch closed early')));
      };
      this.opts.client
        .watch(
          this.opts.path,
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds,
            ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
          },
          onEvent,
          onDone,
          onOpen,
          this.opts.accept?.watch,
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish(() => reject(err)),
        );
    });
  }
}

function retryAfterOf(err: unknown): number | undefined {
  const v = typeof err === 'object' && err !== null ? (err as { retryAfterMs?: unknown }).retryAfterMs : undefined;
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

/**
 * A watch of ONE Secret by name: a metadata.name field selector, so that RBAC can grant exactly
 * that name (resourceNames). Its 'sync' items hold it under `namespace/name`, or nothing.
 */
export function secretByName(client: KubeClient, namespace: string, name: string, tuning?: WatchTuning): ListWatch {
  return new ListWatch({
    client,
    path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
    fieldSelector: `metadata.name=${name}`,
    description: `secrets ${namespace}/${name}`,
    rbac: { apiGroup: '', resource: 'secrets', namespace, resourceName: name },
    ...(tuning ? { tuning } : {}),
  });
}

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

function errorName(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown } };
  if (typeof e.cause?.code === 'string') return e.cause.code;
  if (typeof e.code === 'string') return e.code;
  return typeof e.name === 'string' ? e.name : 'Error';
}
