// Registry resources (admin.okteto.com/v1, plural `registries`) → credentials.
// One watch for the registries of the namespace, plus one watch PER referenced Secret name
// (field selector metadata.name): the agent never reads other Secrets of the namespace, and
// the Role can list the referenced names in resourceNames. See docs/kubernetes.md "Fleet design".
// A Registry limited to namespaces (annotations, model/scope.ts) yields a credential with
// `namespaces` set, resolved through a SelectorResolver (the broker's); without one (a node agent
// reading Registry resources itself) it yields an error, never a node-wide credential.
import { AgentError } from '../../errors.ts';
import type { RegistryCredential, Source, SourceSnapshot } from '../../model/credential.ts';
import { normalizeRegistryKey, quoteSubject, validateRegistryHost } from '../../model/registry-key.ts';
import { isSelectorFailure, registryScope, resolveScope, type ScopeRequest, type SelectorResolver } from '../../model/scope.ts';
import { decodeBase64 } from '../dockerconfig.ts';
import type { EcrRegistrySpec } from '../ecr/types.ts';
import { type KubeAccess, type KubeClient, kubeClientOf } from '../kube-client.ts';
import { type KubeObject, ListWatch, secretByName, type WatchState, type WatchStateEvent, type WatchTuning } from './list-watch.ts';

export const REGISTRY_GROUP = 'admin.okteto.com';
export const REGISTRY_VERSION = 'v1';
export const REGISTRY_PLURAL = 'registries';

export interface RegistrySourceOptions {
  readonly kubeConfig: KubeAccess;
  /** Namespace of the Registry resources and of the Secrets they reference (default okteto). */
  readonly namespace?: string;
  readonly tuning?: WatchTuning;
  readonly onState?: (e: WatchStateEvent) => void;
  /**
   * Receives every awsIamUser/awsIamRole registry (secrets resolved) whenever that set changes.
   * Without it such registries are reported as NRC_E_REGISTRY_KIND_UNSUPPORTED.
   */
  readonly onEcrRegistries?: (specs: EcrRegistrySpec[]) => void;
  /**
   * A node agent of the per-node ECR variant: only what the node's own identity can serve.
   * awsIamRole goes to the ECR source (the agent's own service account); static registries are
   * skipped (the platform's Secret carries them) and their Secrets never read; awsIamUser is
   * refused (its long-lived keys are read by the broker alone).
   */
  readonly nodeIdentityOnly?: boolean;
  /** Resolves the namespace selectors of scoped Registries (the broker's); without it a scoped Registry is refused. */
  readonly scopes?: SelectorResolver;
  /**
   * Receives, whenever it changes, every scoped ECR Registry (awsIamUser, awsIamRole) that
   * resolved, by host: its name and namespaces. The ECR source knows nothing of scopes: the broker
   * puts them on the tokens it writes (static credentials carry `namespaces` themselves).
   */
  readonly onScopes?: (scopes: ReadonlyMap<string, ResolvedScope>) => void;
}

export interface ResolvedScope {
  /** The Registry's metadata.name. */
  readonly registry: string;
  readonly namespaces: readonly string[];
}

export interface SecretRef {
  readonly name: string;
  readonly key: string;
}

/** What one Registry asks for, before Secrets are resolved; `scope` set: limited to namespaces. */
export type RegistryRequest = { scope?: ScopeRequest } & (
  | { kind: 'static'; registry: string; host: string; key: string; user: SecretRef; password: SecretRef }
  | { kind: 'awsIamUser'; registry: string; host: string; accessKeyId: SecretRef; secretAccessKey: SecretRef }
  | { kind: 'awsIamRole'; registry: string; host: string; roleArn: string; audience: string }
);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function secretRef(v: unknown): SecretRef | undefined {
  if (!isObject(v)) return undefined;
  const { name, key } = v;
  return typeof name === 'string' && name !== '' && typeof key === 'string' && key !== '' ? { name, key } : undefined;
}

/**
 * Validates one Registry object; never puts spec values other than its name into errors. An
 * unreadable scope annotation is an error for the whole Registry (configured nowhere).
 */
export function parseRegistry(obj: KubeObject): RegistryRequest | AgentError {
  const req = parseSpec(obj);
  if (req instanceof AgentError) return req;
  const annotations = (obj.metadata as { annotations?: Record<string, string> } | undefined)?.annotations;
  const scope = registryScope(annotations, `registry ${quoteSubject(obj.metadata?.name ?? '')}`);
  if (scope instanceof AgentError) return scope;
  return scope ? { ...req, scope } : req;
}

function parseSpec(obj: KubeObject): RegistryRequest | AgentError {
  const name = obj.metadata?.name ?? '';
  const subject = `registry ${quoteSubject(name)}`;
  const invalid = (detail: string): AgentError => new AgentError('NRC_E_REGISTRY_SPEC_INVALID', { subject, detail });
  const spec = (obj as { spec?: unknown }).spec;
  if (!isObject(spec)) return invalid('spec is missing.');
  const kinds = (['static', 'awsIamUser', 'awsIamRole'] as const).filter((k) => spec[k] !== undefined && spec[k] !== null);
  if (kinds.length !== 1) return invalid(`Expected exactly one of static, awsIamUser, awsIamRole; found ${kinds.length}.`);
  const kind = kinds[0]!;
  const body = spec[kind];
  if (!isObject(body)) return invalid(`spec.${kind} is not an object.`);
  let hostText = name;
  if (kind === 'static' && body['port'] !== undefined && body['port'] !== null) {
    const port = body['port'];
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return invalid('spec.static.port must be an integer 1-65535.');
    hostText = `${name}:${port}`;
  }
  const host = validateRegistryHost(hostText);
  if (host instanceof AgentError) return host;
  switch (kind) {
    case 'static': {
      const normalized = normalizeRegistryKey(host);
      if (normalized instanceof AgentError) return normalized;
      const user = secretRef(body['userSecretRef']);
      const password = secretRef(body['passwordSecretRef']);
      if (!user || !password) return invalid('spec.static needs userSecretRef and passwordSecretRef, each {name, key}.');
      return { kind, registry: name, host: normalized.host, key: normalized.key, user, password };
    }
    case 'awsIamUser': {
      const accessKeyId = secretRef(body['accessKeyIDSecretRef']);
      const secretAccessKey = secretRef(body['secretAccessKeySecretRef']);
      if (!accessKeyId || !secretAccessKey) return invalid('spec.awsIamUser needs accessKeyIDSecretRef and secretAccessKeySecretRef, each {name, key}.');
      return { kind, registry: name, host, accessKeyId, secretAccessKey };
    }
    case 'awsIamRole': {
      const roleArn = body['roleARN'];
      const audience = body['audience'];
      if (typeof roleArn !== 'string' || roleArn === '' || typeof audience !== 'string' || audience === '') {
        return invalid('spec.awsIamRole needs roleARN and audience (strings).');
      }
      return { kind, registry: name, host, roleArn, audience };
    }
  }
}

/** The Secret names a request reads. */
function refsOf(r: RegistryRequest): SecretRef[] {
  if (r.kind === 'static') return [r.user, r.password];
  if (r.kind === 'awsIamUser') return [r.accessKeyId, r.secretAccessKey];
  return [];
}

interface SecretWatch {
  readonly watch: ListWatch;
  state: WatchState;
  error: AgentError | undefined;
  secret: KubeObject | undefined;
}

export class KubernetesRegistrySource implements Source {
  readonly name: string;
  private readonly opts: RegistrySourceOptions;
  private readonly namespace: string;
  private readonly client: KubeClient;
  private readonly registries: ListWatch;
  private registryItems: readonly KubeObject[] = [];
  private registriesError: AgentError | undefined;
  private readonly secretWatches = new Map<string, SecretWatch>();
  /** Per registry: the last credential built from readable Secrets, kept while a Secret watch fails. */
  private readonly lastGood = new Map<string, RegistryCredential>();
  private lastFingerprint: string | undefined;
  private lastEcr: string | undefined;
  private emitFn: ((s: SourceSnapshot) => void) | undefined;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  private lastScopes: string | undefined;

  constructor(opts: RegistrySourceOptions) {
    this.opts = opts;
    this.namespace = opts.namespace ?? 'okteto';
    this.name = `registries:${this.namespace}`;
    this.client = kubeClientOf(opts.kubeConfig);
    this.registries = new ListWatch({
      client: this.client,
      path: `/apis/${REGISTRY_GROUP}/${REGISTRY_VERSION}/namespaces/${encodeURIComponent(this.namespace)}/${REGISTRY_PLURAL}`,
      description: `${REGISTRY_PLURAL}.${REGISTRY_GROUP} in ${this.namespace}`,
      rbac: { apiGroup: REGISTRY_GROUP, resource: REGISTRY_PLURAL, namespace: this.namespace },
      ...(opts.tuning ? { tuning: opts.tuning } : {}),
    });
    this.registries.on('sync', (items) => {
      this.registryItems = [...items.values()];
      this.registriesError = undefined;
      this.syncSecretWatches();
      this.opts.scopes?.use(this.name, this.selectorsInUse());
      this.recompute();
    });
    this.registries.on('state', (e) => {
      opts.onState?.(e);
      if (e.error && !this.registries.hasSynced) {
        this.registriesError = e.error;
        this.recompute();
      }
    });
  }

  /** Watch restarts of every watch of this source (metric). */
  get watchRestarts(): number {
    let n = this.registries.restarts;
    for (const w of this.secretWatches.values()) n += w.watch.restarts;
    return n;
  }

  /** Names of the Secrets watched right now (one watch each). */
  get watchedSecrets(): string[] {
    return [...this.secretWatches.keys()].sort();
  }

  async start(emit: (s: SourceSnapshot) => void): Promise<void> {
    this.emitFn = emit;
    this.unsubscribe = this.opts.scopes?.subscribe(() => this.recompute());
    this.registries.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.opts.scopes?.use(this.name, []);
    await Promise.all([this.registries.stop(), ...[...this.secretWatches.values()].map((w) => w.watch.stop())]);
    this.secretWatches.clear();
    this.emitFn = undefined;
  }

  private requests(): (RegistryRequest | AgentError)[] {
    return this.registryItems.map(parseRegistry);
  }

  /** The namespace selectors of the scoped Registries (resolved by `scopes`). */
  private selectorsInUse(): string[] {
    const out: string[] = [];
    for (const r of this.requests()) if (!(r instanceof AgentError) && r.scope?.namespaceSelector !== undefined) out.push(r.scope.namespaceSelector);
    return out;
  }

  /** A scoped Registry's namespaces, its error, or 'pending' until its selector's first answer. */
  private namespacesOf(r: RegistryRequest & { scope: ScopeRequest }): readonly string[] | AgentError | 'pending' {
    const subject = `registry ${quoteSubject(r.registry)}`;
    if (!this.opts.scopes) {
      return new AgentError('NRC_E_SCOPE_UNSUPPORTED', { subject, detail: '(a Registry limited to namespaces is resolved by the cluster broker only; this reader of Registry resources never serves it)' });
    }
    const sel = r.scope.namespaceSelector;
    if (sel === undefined) return resolveScope(r.scope, {});
    const got = this.opts.scopes.lookup(sel);
    if (got === undefined) return 'pending';
    if (isSelectorFailure(got)) return new AgentError(got.code, { subject, detail: got.detail });
    return resolveScope(r.scope, { [sel]: got });
  }

  /** Starts a watch for each newly referenced Secret, stops those no longer referenced. */
  private syncSecretWatches(): void {
    if (this.stopped) return;
    const wanted = new Set<string>();
    for (const r of this.requests()) {
      if (r instanceof AgentError) continue;
      if (r.kind !== 'static' && !this.opts.onEcrRegistries) continue; // not read: least privilege
      if (this.opts.nodeIdentityOnly) continue; // awsIamRole reads no Secret; static and awsIamUser are not served here
      for (const ref of refsOf(r)) wanted.add(ref.name);
    }
    for (const [name, w] of this.secretWatches) {
      if (!wanted.has(name)) {
        this.secretWatches.delete(name);
        void w.watch.stop();
      }
    }
    for (const name of wanted) {
      if (this.secretWatches.has(name)) continue;
      const watch = secretByName(this.client, this.namespace, name, this.opts.tuning);
      const sw: SecretWatch = { watch, state: 'relisting', error: undefined, secret: undefined };
      watch.on('sync', (items) => {
        sw.secret = items.get(`${this.namespace}/${name}`);
        sw.error = undefined;
        this.recompute();
      });
      watch.on('state', (e) => {
        this.opts.onState?.(e);
        sw.state = e.state;
        if (e.error) {
          sw.error = e.error;
          this.recompute();
        } else if (e.state === 'connected') sw.error = undefined;
      });
      this.secretWatches.set(name, sw);
      watch.start();
    }
  }

  /** A referenced value, or an error; undefined while its watch has not answered yet. */
  private resolve(ref: SecretRef, registry: string): string | AgentError | undefined {
    const sw = this.secretWatches.get(ref.name);
    if (!sw) return undefined;
    if (!sw.watch.hasSynced) return sw.error;
    const subject = `registry ${quoteSubject(registry)}`;
    const missing = (detail: string): AgentError =>
      new AgentError('NRC_E_REGISTRY_SECRET_MISSING', { subject, detail: `Secret ${quoteSubject(ref.name)} key ${quoteSubject(ref.key)}: ${detail}` });
    if (!sw.secret) return missing('the Secret does not exist.');
    const data = (sw.secret as { data?: unknown }).data;
    const raw = isObject(data) ? data[ref.key] : undefined;
    if (typeof raw !== 'string') return missing('the key is not in the Secret.');
    const value = decodeBase64(raw);
    if (value === undefined) return missing('the value is not base64 of UTF-8 text.');
    // `kubectl create secret --from-file` keeps the file's final newline; no registry wants it.
    const trimmed = value.replace(/\r?\n$/, '');
    if (trimmed === '') return missing('the value is empty.');
    return trimmed;
  }

  private recompute(): void {
    if (this.stopped || !this.emitFn) return;
    if (!this.registries.hasSynced) {
      if (this.registriesError) this.emit({ source: this.name, credentials: [], errors: [this.registriesError], ok: false });
      return;
    }
    const credentials: RegistryCredential[] = [];
    const errors: AgentError[] = [];
    const ecr: EcrRegistrySpec[] = [];
    const scopes = new Map<string, ResolvedScope>();
    const seen = new Set<string>();
    for (const r of this.requests()) {
      if (r instanceof AgentError) {
        errors.push(r);
        continue;
      }
      if (this.opts.nodeIdentityOnly && r.kind === 'static') continue;
      let namespaces: readonly string[] | undefined;
      if (r.scope) {
        const got = this.namespacesOf({ ...r, scope: r.scope });
        if (got === 'pending') return; // as for Secrets: wait for the first answer
        if (got instanceof AgentError) {
          errors.push(got);
          continue;
        }
        namespaces = got;
        if (r.kind !== 'static') scopes.set(r.host, { registry: r.registry, namespaces });
      }
      if (this.opts.nodeIdentityOnly && r.kind === 'awsIamUser') {
        errors.push(
          new AgentError('NRC_E_REGISTRY_KIND_UNSUPPORTED', { subject: `registry ${quoteSubject(r.registry)}`, detail: '(spec.awsIamUser: its access keys are read by the cluster broker only, never on a node; run the broker)' }),
        );
        continue;
      }
      if (r.kind === 'awsIamRole' || r.kind === 'awsIamUser') {
        if (!this.opts.onEcrRegistries) {
          errors.push(new AgentError('NRC_E_REGISTRY_KIND_UNSUPPORTED', { subject: `registry ${quoteSubject(r.registry)}`, detail: `(spec.${r.kind})` }));
          continue;
        }
        if (r.kind === 'awsIamRole') {
          ecr.push({ host: r.host, kind: 'awsIamRole', roleArn: r.roleArn, audience: r.audience });
          continue;
        }
        const id = this.resolve(r.accessKeyId, r.registry);
        const key = this.resolve(r.secretAccessKey, r.registry);
        if (id === undefined || key === undefined) return; // wait for the first answer of every watch
        if (id instanceof AgentError || key instanceof AgentError) {
          errors.push(id instanceof AgentError ? id : (key as AgentError));
          continue;
        }
        ecr.push({ host: r.host, kind: 'awsIamUser', accessKeyId: id, secretAccessKey: key });
        continue;
      }
      if (seen.has(r.key)) {
        errors.push(new AgentError('NRC_E_DUPLICATE_REGISTRY', { subject: r.key, detail: `Registry ${quoteSubject(r.registry)} was ignored.` }));
        continue;
      }
      seen.add(r.key);
      const username = this.resolve(r.user, r.registry);
      const password = this.resolve(r.password, r.registry);
      if (username === undefined || password === undefined) return;
      if (username instanceof AgentError || password instanceof AgentError) {
        const err = username instanceof AgentError ? username : (password as AgentError);
        errors.push(err);
        // A failing watch (403, unreachable) keeps the last good credential; a missing Secret does not.
        const prev = this.lastGood.get(r.registry);
        if (err.code !== 'NRC_E_REGISTRY_SECRET_MISSING' && prev) {
          // The last good values, under the scope as it is now.
          const { namespaces: _old, ...base } = prev;
          credentials.push(namespaces ? { ...base, source: `registry:${this.namespace}/${r.registry}`, namespaces } : { ...base, source: this.name });
        }
        continue;
      }
      // A scoped one names its Registry (scoped.json `source`: which resource gave a namespace its credential).
      const cred: RegistryCredential = namespaces
        ? { key: r.key, host: r.host, username, password, source: `registry:${this.namespace}/${r.registry}`, namespaces }
        : { key: r.key, host: r.host, username, password, source: this.name };
      this.lastGood.set(r.registry, cred);
      credentials.push(cred);
    }
    for (const name of this.lastGood.keys()) {
      if (!this.registryItems.some((o) => o.metadata?.name === name)) this.lastGood.delete(name);
    }
    if (this.opts.onEcrRegistries) {
      const fp = JSON.stringify(ecr);
      if (fp !== this.lastEcr) {
        this.lastEcr = fp;
        this.opts.onEcrRegistries(ecr);
      }
    }
    if (this.opts.onScopes) {
      const fp = JSON.stringify([...scopes]);
      if (fp !== this.lastScopes) {
        this.lastScopes = fp;
        this.opts.onScopes(scopes);
      }
    }
    this.emit({ source: this.name, credentials, errors, ok: true });
  }

  private emit(s: SourceSnapshot): void {
    // Secret watches relist and reconnect; only real changes go to the reconciler.
    const fp = JSON.stringify([s.ok, s.credentials, s.errors.map((e) => e.message)]);
    if (fp === this.lastFingerprint) return;
    this.lastFingerprint = fp;
    this.emitFn?.(s);
  }
}
