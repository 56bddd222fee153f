// The broker's one output: a kubernetes.io/dockerconfigjson Secret holding every registry
// credential, written whole (one PUT with the resourceVersion it read, never a partial patch), only
// when its content changed, and only if the broker created it. Its annotations say when each
// ECR token expires, and which AWS credentials obtained it (a one-way fingerprint), so that a
// restarted or newly elected broker reuses the tokens instead of calling AWS again.
// Fenced: every write first asks the Leadership whether this replica still holds the Lease (and
// again right before the request), and stamps the term (leader identity, leaseTransitions), so
// that a new leader's first write moves the resourceVersion and a stale leader's PUT is a 409.
// Scoped credentials (issue 26) go ONLY into the data key scoped.json, never into
// .dockerconfigjson: agents that do not know scoped.json never see them. With nothing scoped
// there is no scoped.json at all, so the Secret is byte for byte what it was before.
import type { V1Secret } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { parseScoped, renderScoped, SCOPED_DATA_KEY, type ScopedEntry } from '../model/scope.ts';
import { decodeBase64 } from '../sources/dockerconfig.ts';
import type { StoredToken, TokenCache } from '../sources/ecr/index.ts';
import { type KubeAccess, KubeApiError, kubeClientOf } from '../sources/kube-client.ts';
import { EXPIRIES_ANNOTATION } from '../sources/kubernetes/defaults.ts';
import { BROKER_GENERATION_ANNOTATION, parseBrokerGeneration } from '../sources/kubernetes/secret-source.ts';
import { type KubeObject, secretByName, type WatchStateEvent, type WatchTuning } from '../sources/kubernetes/list-watch.ts';
import type { Leadership } from './lease.ts';

export { BROKER_GENERATION_ANNOTATION, EXPIRIES_ANNOTATION };

/**
 * JSON {"<registry key>": {"generation": n, "at": "<RFC 3339>"}}: the write (generation) at which
 * each entry's current value first appeared in the Secret, and when. A node that reports having
 * applied that generation has the current credential (Registry status, Effective). Derived from
 * the Secret itself at each write, so a new leader keeps it.
 */
export const SINCE_ANNOTATION = 'registry-credentials.okteto.com/since';

export interface EntrySince {
  readonly generation: number;
  readonly at: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `since` annotation of a Secret the broker wrote (entries that do not parse are left out). */
export function sinceOf(secret: V1Secret | undefined): Map<string, EntrySince> {
  const out = new Map<string, EntrySince>();
  let v: unknown;
  try {
    v = JSON.parse(secret?.metadata?.annotations?.[SINCE_ANNOTATION] ?? '{}');
  } catch {
    return out;
  }
  if (!isRecord(v)) return out;
  for (const [key, e] of Object.entries(v)) {
    if (isRecord(e) && typeof e['generation'] === 'number' && Number.isSafeInteger(e['generation']) && typeof e['at'] === 'string') out.set(key, { generation: e['generation'], at: e['at'] });
  }
  return out;
}

/**
 * The entries of the broker's data, each as its JSON text (to compare values without keeping
 * them): the auths of .dockerconfigjson, then scoped.json's entries (a change of scope is a new
 * value too: the nodes must apply it).
 */
function entriesOf(data: Record<string, string> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const raw = data?.[DOCKERCONFIG_KEY];
  const text = raw === undefined ? undefined : decodeBase64(raw);
  try {
    const doc: unknown = JSON.parse(text ?? '{}');
    const auths = isRecord(doc) ? doc['auths'] : undefined;
    if (isRecord(auths)) for (const [k, v] of Object.entries(auths)) out.set(k, JSON.stringify(v));
  } catch {
    // Not JSON: every entry counts as new.
  }
  for (const e of scopedOf(data).entries) if (!out.has(e.key)) out.set(e.key, JSON.stringify(e));
  return out;
}

/** scoped.json of the broker's data (no key: no entries); entries that do not parse are left out. */
function scopedOf(data: Record<string, string> | undefined): { entries: readonly ScopedEntry[] } {
  const raw = data?.[SCOPED_DATA_KEY];
  const text = raw === undefined ? undefined : decodeBase64(raw);
  return parseScoped(text, SCOPED_DATA_KEY).doc;
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const BROKER_MANAGER = 'node-registry-credentials-broker';
/** JSON {"<registry key>": "<fingerprint>"}: which AWS credentials obtained each token (sha256 prefix, one-way). */
export const FINGERPRINTS_ANNOTATION = 'registry-credentials.okteto.com/token-fingerprints';
/** When the broker last changed the Secret (RFC 3339). */
export const WRITTEN_AT_ANNOTATION = 'registry-credentials.okteto.com/written-at';
/** The fencing stamp: the identity of the leader that wrote the Secret ... */
export const LEADER_ANNOTATION = 'registry-credentials.okteto.com/leader';
/** ... and the Lease's leaseTransitions of its term (a same-named pod that leads again is a new term). */
export const LEADER_TRANSITIONS_ANNOTATION = 'registry-credentials.okteto.com/lease-transitions';
export const DOCKERCONFIG_KEY = '.dockerconfigjson';

/** What the broker wants the Secret to say. */
export interface BrokerContent {
  readonly credentials: readonly RegistryCredential[];
  /** Registry key → fingerprint of the AWS credentials of its token. */
  readonly fingerprints: ReadonlyMap<string, string>;
  /** The static Secret's namespace selectors, resolved (scoped.json `selectors`, for the node agents). */
  readonly selectors?: Readonly<Record<string, readonly string[]>>;
}

export type WriteOutcome = 'created' | 'updated' | 'unchanged';

export interface WriteResult {
  readonly outcome: WriteOutcome;
  /**
   * Set when the broker wrote the very content it had last written: the difference was someone
   * else's (the Secret deleted, or edited by hand or by a stale leader).
   */
  readonly repaired?: 'deleted' | 'edited';
}

interface Rendered {
  readonly data: Record<string, string>;
  readonly annotations: Record<string, string>;
}

/**
 * The Secret's data and annotations for `content`: stable bytes for the same content. A credential
 * with `namespaces` goes to scoped.json only; expiries and fingerprints cover both (token reuse).
 */
export function renderBrokerSecret(content: BrokerContent): Rendered {
  const sorted = [...content.credentials].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const auths: Record<string, Record<string, string>> = {};
  const expiries: Record<string, string> = {};
  const fingerprints: Record<string, string> = {};
  const scoped: ScopedEntry[] = [];
  for (const c of sorted) {
    if (c.expiresAt) expiries[c.key] = c.expiresAt.toISOString();
    const fp = content.fingerprints.get(c.key);
    if (fp) fingerprints[c.key] = fp;
    if (c.namespaces !== undefined) {
      scoped.push({ key: c.key, username: c.username, password: c.password, ...(c.identityToken ? { identitytoken: c.identityToken } : {}), namespaces: c.namespaces, source: c.source });
      continue;
    }
    auths[c.key] = {
      username: c.username,
      password: c.password,
      auth: Buffer.from(`${c.username}:${c.password}`).toString('base64'),
      ...(c.identityToken ? { identitytoken: c.identityToken } : {}),
    };
  }
  const selectors = content.selectors ?? {};
  const data: Record<string, string> = { [DOCKERCONFIG_KEY]: Buffer.from(JSON.stringify({ auths })).toString('base64') };
  // Only when something is scoped: otherwise the Secret stays exactly as before issue 26.
  if (scoped.length > 0 || Object.keys(selectors).length > 0) data[SCOPED_DATA_KEY] = Buffer.from(renderScoped({ entries: scoped, selectors })).toString('base64');
  return {
    data,
    annotations: { [EXPIRIES_ANNOTATION]: JSON.stringify(expiries), [FINGERPRINTS_ANNOTATION]: JSON.stringify(fingerprints) },
  };
}

/** Reads the ECR tokens back out of a Secret the broker wrote: entries that have an expiry and a fingerprint. */
export function tokensFromSecret(secret: V1Secret | undefined): { tokens: Map<string, StoredToken>; error?: string } {
  const tokens = new Map<string, StoredToken>();
  if (!secret) return { tokens };
  if (secret.metadata?.labels?.[MANAGED_BY_LABEL] !== BROKER_MANAGER) return { tokens, error: 'the Secret is not the broker\'s' };
  const parse = (text: string | undefined): Record<string, unknown> => {
    try {
      const v = JSON.parse(text ?? '{}') as unknown;
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  };
  const annotations = secret.metadata?.annotations ?? {};
  const expiries = parse(annotations[EXPIRIES_ANNOTATION]);
  const fingerprints = parse(annotations[FINGERPRINTS_ANNOTATION]);
  const raw = secret.data?.[DOCKERCONFIG_KEY];
  const text = raw === undefined ? undefined : decodeBase64(raw);
  const auths = parse(text)['auths'];
  if (typeof auths !== 'object' || auths === null) return { tokens, error: 'no auths in the Secret' };
  // A scoped Registry's token is reused like any other (it is in scoped.json, not in auths).
  const entries: [string, unknown][] = [...scopedOf(secret.data).entries.map((e): [string, unknown] => [e.key, e]), ...Object.entries(auths as Record<string, unknown>)];
  for (const [key, entry] of entries) {
    const e = entry as { username?: unknown; password?: unknown };
    const expiresAt = typeof expiries[key] === 'string' ? Date.parse(expiries[key]) : Number.NaN;
    const fingerprint = fingerprints[key];
    if (typeof e.username !== 'string' || typeof e.password !== 'string' || !Number.isFinite(expiresAt) || typeof fingerprint !== 'string') continue;
    tokens.set(key, { username: e.username, password: e.password, expiresAt, fingerprint });
  }
  return { tokens };
}

/** The one Secret the broker writes. Rejections carry the HTTP status as a numeric `code` (KubeApiError). */
export interface SecretStore {
  readonly description: string;
  /** undefined when absent. */
  get(): Promise<V1Secret | undefined>;
  create(secret: V1Secret): Promise<V1Secret>;
  /** A PUT carrying secret.metadata.resourceVersion: 409 when the Secret changed since that read. */
  replace(secret: V1Secret): Promise<V1Secret>;
  /** Calls `onChange` with the Secret (undefined: absent) after the first list and every change. */
  watch(onChange: (secret: V1Secret | undefined) => void, onState?: (e: WatchStateEvent) => void): { stop(): Promise<void> };
}

export interface KubernetesSecretStoreOptions {
  /** Each request's deadline (the whole request: a half-open connection fails it in time). */
  readonly timeoutMs?: number;
  readonly tuning?: WatchTuning;
}

/**
 * Beside a healthy Secret request's milliseconds, long; short enough that a half-open connection
 * fails a write in seconds, and the retry (1 s backoff) opens a fresh one.
 */
const SECRET_REQUEST_TIMEOUT_MS = 10_000;

/** Secret `namespace/name` through the project's KubeClient; its watch is a ListWatch on that one name (RBAC: secrets get/list/watch in the namespace). */
export function kubernetesSecretStore(access: KubeAccess, namespace: string, name: string, opts: KubernetesSecretStoreOptions = {}): SecretStore {
  const client = kubeClientOf(access);
  const timeoutMs = opts.timeoutMs ?? SECRET_REQUEST_TIMEOUT_MS;
  const collection = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  const item = `${collection}/${encodeURIComponent(name)}`;
  const description = `secrets ${namespace}/${name}`;
  return {
    description,
    async get() {
      try {
        return await client.request<V1Secret>('GET', item, { timeoutMs });
      } catch (err) {
        if (err instanceof KubeApiError && err.code === 404) return undefined;
        throw err;
      }
    },
    create: (secret) => client.request<V1Secret>('POST', collection, { body: secret, timeoutMs }),
    replace: (secret) => client.request<V1Secret>('PUT', item, { body: secret, timeoutMs }),
    watch(onChange, onState) {
      const lw = secretByName(client, namespace, name, opts.tuning);
      lw.on('sync', (items: ReadonlyMap<string, KubeObject>) => onChange(items.get(`${namespace}/${name}`) as V1Secret | undefined));
      if (onState) lw.on('state', onState);
      lw.start();
      return { stop: () => lw.stop() };
    },
  };
}

const httpStatus = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
};

/** Whether `secret` says what `want` says: its data whole, and every annotation the broker owns. */
function says(secret: V1Secret, want: Rendered): boolean {
  const annotations = secret.metadata?.annotations ?? {};
  return JSON.stringify(secret.data ?? {}) === JSON.stringify(want.data) && Object.entries(want.annotations).every(([k, v]) => annotations[k] === v);
}

const sameRendered = (a: Rendered | undefined, b: Rendered): boolean => a !== undefined && JSON.stringify(a) === JSON.stringify(b);

export interface SecretWriterOptions {
  readonly store: SecretStore;
  readonly namespace: string;
  readonly name: string;
  /** The fence: without it (a Broker outside an election: tests) every write is allowed and unstamped. */
  readonly leadership?: Leadership;
  /**
   * The highest write counter the nodes report (0: unknown): a Secret deleted by hand and recreated
   * by a new leader continues above it, so that no node counts as having the new content.
   */
  readonly generationFloor?: () => number;
}

export class BrokerSecretWriter {
  readonly namespace: string;
  readonly name: string;
  readonly store: SecretStore;
  private readonly leadership: Leadership | undefined;
  private readonly generationFloor: () => number;
  /** What this term last wrote or found in place; undefined before the first write of a term. */
  private lastWritten: Rendered | undefined;
  /** A create or replace on its way: its watch event may come before its answer. */
  private inflight: Rendered | undefined;
  /** The last write counter seen or written (a Secret deleted by hand does not restart it in this process). */
  private generation = 0;

  constructor(opts: SecretWriterOptions) {
    this.store = opts.store;
    this.namespace = opts.namespace;
    this.name = opts.name;
    this.leadership = opts.leadership;
    this.generationFloor = opts.generationFloor ?? (() => 0);
  }

  get subject(): string {
    return `secret ${this.namespace}/${this.name}`;
  }

  /** A new term: nothing written yet. */
  reset(): void {
    this.lastWritten = undefined;
    this.inflight = undefined;
  }

  /** The Secret as it is now (undefined when absent); AgentError when it cannot be read. */
  async read(): Promise<V1Secret | undefined | AgentError> {
    try {
      return await this.store.get();
    } catch (err) {
      return this.failed(err, 'get');
    }
  }

  /** The tokens of the Secret, as the ECR source's cache (saving is the write below: the Secret is the cache). */
  tokenCache(): TokenCache {
    return {
      location: this.subject,
      load: async () => {
        const s = await this.read();
        if (s instanceof AgentError) return { tokens: new Map(), error: s.code };
        return tokensFromSecret(s);
      },
      save: async () => undefined,
    };
  }

  /**
   * How `secret` (undefined: absent), as a watch saw it, differs from what this term last wrote;
   * undefined when it says the same (the events of the broker's own writes) or nothing was written yet.
   */
  drift(secret: V1Secret | undefined): 'deleted' | 'edited' | undefined {
    const ours = [this.lastWritten, this.inflight].filter((r): r is Rendered => r !== undefined);
    if (ours.length === 0) return undefined;
    if (!secret) return 'deleted';
    return ours.some((r) => says(secret, r)) ? undefined : 'edited';
  }

  /**
   * Writes `content` whole: creates the Secret, replaces it when its content differs (or when
   * `force`: a new leader's first write), or leaves it. Never while the fence says this replica
   * no longer holds the Lease.
   */
  async write(content: BrokerContent, now: Date, opts: { force?: boolean } = {}): Promise<WriteResult | AgentError> {
    const notLeader = this.fence();
    if (notLeader) return notLeader;
    const want = this.render(content);
    const current = await this.read();
    if (current instanceof AgentError) return current;
    // The very content it last wrote, yet the Secret differs: someone else changed it.
    const ownAgain = sameRendered(this.lastWritten, want);
    if (!current) {
      const counters = this.counters(undefined, want, now);
      const body: V1Secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/dockerconfigjson',
        metadata: {
          name: this.name,
          namespace: this.namespace,
          labels: { [MANAGED_BY_LABEL]: BROKER_MANAGER, 'app.kubernetes.io/name': 'node-registry-credentials' },
          annotations: { ...want.annotations, ...counters.annotations, [WRITTEN_AT_ANNOTATION]: now.toISOString() },
        },
        data: want.data,
      };
      const failed = await this.send(want, 'create', () => this.store.create(body));
      if (failed) return failed;
      this.generation = counters.generation;
      return ownAgain ? { outcome: 'created', repaired: 'deleted' } : { outcome: 'created' };
    }
    if (current.metadata?.labels?.[MANAGED_BY_LABEL] !== BROKER_MANAGER) {
      const by = current.metadata?.labels?.[MANAGED_BY_LABEL];
      return new AgentError('NRC_E_BROKER_SECRET_FOREIGN', { subject: this.subject, detail: by ? `(managed-by: ${JSON.stringify(by).slice(0, 80)})` : '(no managed-by label)' });
    }
    if (current.type !== 'kubernetes.io/dockerconfigjson') {
      return new AgentError('NRC_E_BROKER_SECRET_FOREIGN', { subject: this.subject, detail: `(type ${JSON.stringify(current.type ?? '').slice(0, 60)}; a Secret's type cannot change: delete it)` });
    }
    if (says(current, want) && !opts.force) {
      this.lastWritten = want;
      this.generation = Math.max(this.generation, parseBrokerGeneration(current.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]) ?? 0);
      return { outcome: 'unchanged' };
    }
    const annotations = current.metadata.annotations ?? {};
    const counters = this.counters(current, want, now);
    const body: V1Secret = {
      ...current,
      metadata: { ...current.metadata, annotations: { ...annotations, ...want.annotations, ...counters.annotations, [WRITTEN_AT_ANNOTATION]: now.toISOString() } },
      data: want.data,
    };
    // resourceVersion from the read: a concurrent writer (or a newer leader's stamp) makes this a 409, never a lost update.
    const failed = await this.send(want, 'update', () => this.store.replace(body));
    if (failed) return failed;
    this.generation = counters.generation;
    return ownAgain && !says(current, want) ? { outcome: 'updated', repaired: 'edited' } : { outcome: 'updated' };
  }

  /**
   * The next write counter (one more than the Secret's, so a new leader continues it) and, per
   * entry, the write at which its value first appeared: kept from `current` when the value is the
   * same, this write otherwise.
   */
  private counters(current: V1Secret | undefined, want: Rendered, now: Date): { generation: number; annotations: Record<string, string> } {
    const generation = Math.max(this.generation, this.generationFloor(), parseBrokerGeneration(current?.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]) ?? 0) + 1;
    const before = entriesOf(current?.data);
    const beforeSince = sinceOf(current);
    const since: Record<string, EntrySince> = {};
    for (const [key, entry] of entriesOf(want.data)) {
      const kept = beforeSince.get(key);
      since[key] = kept && before.get(key) === entry ? kept : { generation, at: now.toISOString() };
    }
    return { generation, annotations: { [BROKER_GENERATION_ANNOTATION]: String(generation), [SINCE_ANNOTATION]: JSON.stringify(since) } };
  }

  /** The rendered content with this term's stamp. */
  private render(content: BrokerContent): Rendered {
    const r = renderBrokerSecret(content);
    if (!this.leadership) return r;
    const term = this.leadership.term();
    return { data: r.data, annotations: { ...r.annotations, [LEADER_ANNOTATION]: term.identity, [LEADER_TRANSITIONS_ANNOTATION]: String(term.transitions) } };
  }

  /** The fence, checked again right before the request: the read may have waited through a pause. */
  private async send(want: Rendered, verb: string, request: () => Promise<V1Secret>): Promise<AgentError | undefined> {
    const notLeader = this.fence();
    if (notLeader) return notLeader;
    this.inflight = want;
    try {
      await request();
      this.lastWritten = want;
      return undefined;
    } catch (err) {
      return this.failed(err, verb);
    } finally {
      this.inflight = undefined;
    }
  }

  private fence(): AgentError | undefined {
    if (!this.leadership || this.leadership.holdsLease()) return undefined;
    return new AgentError('NRC_E_BROKER_NOT_LEADER', { subject: this.subject, detail: '(no Lease renewal within the renew deadline: not written)' });
  }

  private failed(err: unknown, verb: string): AgentError {
    const status = httpStatus(err);
    const code = status === 403 ? 'NRC_E_K8S_FORBIDDEN' : 'NRC_E_BROKER_WRITE_FAILED';
    return new AgentError(code, { subject: this.subject, detail: `(${verb}${status ? `: HTTP ${status}` : ''})`, cause: err });
  }
}
