// A reflector for a small set of objects: list (with resourceVersion) then watch from it,
// resuming after timeouts/disconnects, relisting on 410 Gone, backing off with jitter on
// failures, and a watchdog that relists when the stream goes silent (not even a bookmark).
// Its state changes are events (onState) that logs and metrics read.
import { EventEmitter } from 'node:events';
import { AgentError } from '../../errors.ts';
import type { KubeClient, WatchHandle } from '../kube-client.ts';

export type KubeObject = Record<string, unknown> & { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

export type WatchState =
  /** Listed and watching. */
  | 'connected'
  /** Listing again: first start, 410 Gone, or after the watchdog fired. */
  | 'relisting'
  /** The watch delivered nothing (not even a bookmark) for `watchdogMs`; it is cut and a relist follows. */
  | 'stalled'
  /** A request failed (network, 5xx); retrying after `retryInMs`. */
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
}

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

/** One list of a collection: its items and the resourceVersion to watch from. */
async function listObjects(client: KubeClient, path: string, fieldSelector: string | undefined): Promise<ListResult> {
  const res = await client.request<{ items?: KubeObject[]; metadata?: { resourceVersion?: string } }>('GET', path, { query: { fieldSelector } });
  return { items: res.items ?? [], resourceVersion: res.metadata?.resourceVersion ?? '' };
}

class Gone extends Error {}

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
          const res = await listObjects(this.opts.client, this.opts.path, this.opts.fieldSelector);
          if (this.stopped) return;
          this.items.clear();
          for (const o of res.items) this.items.set(objectKey(o), o);
          this.resourceVersion = res.resourceVersion;
          needList = false;
          this.synced = true;
          this.emit('sync', this.items);
        }
        this.setState({ state: 'connected', watch: this.opts.description, failures: this.failures });
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
          continue;
        }
        this.failures++;
        const code = statusCode(err);
        const forbidden = code === 403;
        const error = forbidden
          ? forbiddenError(this.opts.rbac, ['get', 'list', 'watch'], err)
          : new AgentError('NRC_E_K8S_UNAVAILABLE', {
              subject: this.opts.description,
              detail: code ? `(HTTP ${code})` : `(${errorName(err)})`,
              cause: err,
            });
        if (this.failures >= this.t.maxConsecutiveFailures) {
          this.setState({ state: 'gave-up', watch: this.opts.description, error, failures: this.failures });
          return;
        }
        const retryInMs = backoffDelay(this.failures, this.t.initialBackoffMs, this.t.maxBackoffMs, this.t.random);
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
      const started = Date.now();
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
      const onEvent = (type: string, obj: KubeObject): void => {
        if (settled) return;
        armWatchdog();
        if (!gotData) {
          gotData = true;
          this.failures = 0;
        }
        const rv = obj?.metadata?.resourceVersion;
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
        if (err && !isAbort(err)) finish(() => reject(err));
        // A watch that closes at once with nothing in it is a failing server: back off.
        else if (!gotData && Date.now() - started < 1000) finish(() => reject(new Error('watch closed immediately')));
        else finish(() => resolve('ended'));
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
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
            else if (!gotData) this.failures = 0; // the server accepted the watch
          },
          (err: unknown) => finish(() => reject(err)),
        );
    });
  }
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
