// Watches ONE docker-config Secret by name (list+watch with a metadata.name field selector,
// so RBAC can limit the agent to that name) and turns it into a SourceSnapshot.
import { AgentError } from '../../errors.ts';
import { systemClock, type Clock } from '../../model/clock.ts';
import type { RegistryCredential, Source, SourceSnapshot } from '../../model/credential.ts';
import { normalizeRegistryKey } from '../../model/registry-key.ts';
import { parseScoped, SCOPED_DATA_KEY, SCOPES_ANNOTATION, secretScopes, type ScopeRequest } from '../../model/scope.ts';
import { decodeBase64, parseDockerConfig } from '../dockerconfig.ts';
import { type KubeAccess, kubeClientOf } from '../kube-client.ts';
import { type KubeObject, type ListWatch, secretByName, type WatchStateEvent, type WatchTuning } from './list-watch.ts';

import { DEFAULT_SECRET_NAME, DEFAULT_SECRET_NAMESPACE, EXPIRIES_ANNOTATION } from './defaults.ts';

export { DEFAULT_SECRET_NAME, DEFAULT_SECRET_NAMESPACE };

/**
 * On the broker's Secret: its write counter, one more at each write and continued by a new leader.
 * The node reports the counter of what it applied (Node annotation broker-generation), so the
 * broker can count the nodes that have a Registry's current credential.
 */
export const BROKER_GENERATION_ANNOTATION = 'registry-credentials.okteto.com/generation';

/** A write counter (a positive safe integer), or undefined. */
export function parseBrokerGeneration(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value.trim())) return undefined;
  const n = Number(value.trim());
  return n > 0 ? n : undefined;
}

export interface SecretSourceOptions {
  readonly kubeConfig: KubeAccess;
  readonly namespace?: string;
  readonly name?: string;
  readonly tuning?: WatchTuning;
  /** Watch state changes (connected, relisting, stalled, forbidden, gave-up...) for logs and metrics. */
  readonly onState?: (e: WatchStateEvent) => void;
  /**
   * The broker's Secret only: once seen, its disappearance keeps the last credentials this long
   * (ok:false, NRC_E_K8S_SECRET_MISSING) before it counts as "no credentials". Default 0: at once.
   */
  readonly absentGraceMs?: number;
  readonly clock?: Clock;
  /**
   * The broker's Secret only: its write counter (BROKER_GENERATION_ANNOTATION; undefined when
   * absent or unset), called before each snapshot it comes with is emitted.
   */
  readonly onGeneration?: (generation: number | undefined) => void;
}

/** Secret → snapshot: absent Secret = no credentials (ok); unreadable = ok:false (keep last good). */
export function secretToSnapshot(secret: KubeObject | undefined, source: string): SourceSnapshot {
  if (!secret) return { source, credentials: [], errors: [], ok: true };
  const data = (secret as { data?: unknown }).data;
  const values = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  for (const key of ['.dockerconfigjson', '.dockercfg']) {
    const raw = values[key];
    if (raw === undefined) continue;
    const text = typeof raw === 'string' ? decodeBase64(raw) : undefined;
    if (text === undefined) {
      return { source, credentials: [], errors: [new AgentError('NRC_E_K8S_SECRET_NOT_DOCKERCONFIG', { subject: source, detail: `(${key} is not base64 of UTF-8 text)` })], ok: false };
    }
    return withExpiries(withScopes(parseDockerConfig(text, source, key === '.dockercfg' ? 'dockercfg' : 'config.json'), secret, values), secret);
  }
  return { source, credentials: [], errors: [new AgentError('NRC_E_K8S_SECRET_NOT_DOCKERCONFIG', { subject: source })], ok: false };
}

/** The broker's Secret says when its ECR tokens expire: the node reports it (token-expiries annotation). */
function withExpiries(snapshot: SourceSnapshot, secret: KubeObject): SourceSnapshot {
  const text = (secret.metadata as { annotations?: Record<string, string> } | undefined)?.annotations?.[EXPIRIES_ANNOTATION];
  if (!text) return snapshot;
  let expiries: Record<string, unknown>;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return snapshot;
    expiries = v as Record<string, unknown>;
  } catch {
    return snapshot;
  }
  const credentials = snapshot.credentials.map((c) => {
    const at = expiries[c.key];
    const ms = typeof at === 'string' ? Date.parse(at) : Number.NaN;
    return Number.isFinite(ms) ? { ...c, expiresAt: new Date(ms) } : c;
  });
  return { ...snapshot, credentials };
}

/**
 * Namespace scoping: the static Secret's scopes annotation marks some of its entries scoped (an
 * unreadable scope: served nowhere); the broker's scoped.json adds its scoped credentials and the
 * selectors it resolved. Scoped credentials carry `namespaces`, so no node-wide file gets them.
 */
function withScopes(snapshot: SourceSnapshot, secret: KubeObject, values: Record<string, unknown>): SourceSnapshot {
  const annotations = (secret.metadata as { annotations?: Record<string, string> } | undefined)?.annotations;
  const rawScoped = values[SCOPED_DATA_KEY];
  if (annotations?.[SCOPES_ANNOTATION] === undefined && rawScoped === undefined) return snapshot;
  const read = secretScopes(annotations, snapshot.source);
  const { scopes, all } = read;
  const errors: AgentError[] = [...read.errors];
  const byKey = new Map<string, ScopeRequest>();
  for (const [raw, scope] of scopes) {
    const k = normalizeRegistryKey(raw);
    byKey.set(k instanceof AgentError ? raw : k.key, scope);
  }
  const credentials: RegistryCredential[] = snapshot.credentials.map((c) => {
    const scope = all ? { namespaces: [] } : byKey.get(c.key);
    if (scope === undefined) return c;
    return { ...c, namespaces: scope.namespaces, ...(scope.namespaceSelector !== undefined ? { namespaceSelector: scope.namespaceSelector } : {}) };
  });
  const text = typeof rawScoped === 'string' ? decodeBase64(rawScoped) : undefined;
  const scoped = parseScoped(text, snapshot.source);
  for (const e of scoped.doc.entries) {
    const k = normalizeRegistryKey(e.key);
    if (k instanceof AgentError) {
      errors.push(k);
      continue;
    }
    credentials.push({ key: k.key, host: k.host, username: e.username, password: e.password, ...(e.identitytoken ? { identityToken: e.identitytoken } : {}), source: `${snapshot.source} ${e.source}`, namespaces: e.namespaces });
  }
  return { ...snapshot, credentials, errors: [...snapshot.errors, ...errors, ...scoped.errors], ...(Object.keys(scoped.doc.selectors).length > 0 ? { selectors: scoped.doc.selectors } : {}) };
}

export class KubernetesSecretSource implements Source {
  readonly name: string;
  private readonly watch: ListWatch;
  private readonly namespace: string;
  private readonly secretName: string;
  private emitFn: ((s: SourceSnapshot) => void) | undefined;
  private readonly graceMs: number;
  private readonly clock: Clock;
  private readonly onGeneration: ((generation: number | undefined) => void) | undefined;
  /** The Secret was there since the last time it counted as absent. */
  private present = false;
  private graceTimer: unknown;

  constructor(opts: SecretSourceOptions) {
    this.graceMs = opts.absentGraceMs ?? 0;
    this.onGeneration = opts.onGeneration;
    this.clock = opts.clock ?? systemClock;
    this.namespace = opts.namespace ?? DEFAULT_SECRET_NAMESPACE;
    this.secretName = opts.name ?? DEFAULT_SECRET_NAME;
    this.name = `secret:${this.namespace}/${this.secretName}`;
    this.watch = secretByName(kubeClientOf(opts.kubeConfig), this.namespace, this.secretName, opts.tuning);
    this.watch.on('sync', (items) => this.onSecret(items.get(`${this.namespace}/${this.secretName}`)));
    this.watch.on('state', (e) => {
      opts.onState?.(e);
      // A failure before the first list: tell the reconciler (ok:false keeps whatever it has).
      if (e.error && (e.state === 'forbidden' || e.state === 'gave-up' || !this.watch.hasSynced)) {
        this.emitFn?.({ source: this.name, credentials: [], errors: [e.error], ok: false });
      }
    });
  }

  /**
   * A Secret that was there and is gone: with a grace period, its credentials stay (ok:false keeps
   * the last good snapshot) until the grace ends or the Secret is back. A Secret never seen since
   * the agent started is simply absent: a new cluster, or the broker has not written yet.
   */
  private onSecret(secret: KubeObject | undefined): void {
    if (secret) {
      this.present = true;
      this.endGrace();
      this.onGeneration?.(parseBrokerGeneration((secret.metadata as { annotations?: Record<string, string> } | undefined)?.annotations?.[BROKER_GENERATION_ANNOTATION]));
      this.emitFn?.(secretToSnapshot(secret, this.name));
      return;
    }
    if (!this.present || this.graceMs <= 0) {
      this.present = false;
      this.onGeneration?.(undefined);
      this.emitFn?.(secretToSnapshot(undefined, this.name));
      return;
    }
    if (this.graceTimer !== undefined) return;
    const seconds = Math.round(this.graceMs / 1000);
    this.emitFn?.({ source: this.name, credentials: [], errors: [new AgentError('NRC_E_K8S_SECRET_MISSING', { subject: this.name, detail: `(its credentials stay for ${seconds} s)` })], ok: false });
    this.graceTimer = this.clock.setTimer(() => {
      this.graceTimer = undefined;
      this.present = false;
      this.onGeneration?.(undefined);
      this.emitFn?.(secretToSnapshot(undefined, this.name));
    }, this.graceMs);
  }

  private endGrace(): void {
    if (this.graceTimer !== undefined) this.clock.clearTimer(this.graceTimer);
    this.graceTimer = undefined;
  }

  /** Watch restarts so far (metric). */
  get watchRestarts(): number {
    return this.watch.restarts;
  }

  async start(emit: (s: SourceSnapshot) => void): Promise<void> {
    this.emitFn = emit;
    this.watch.start();
  }

  async stop(): Promise<void> {
    this.endGrace();
    await this.watch.stop();
    this.emitFn = undefined;
  }
}
