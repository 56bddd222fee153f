// The broker's one output: a kubernetes.io/dockerconfigjson Secret holding every registry
// credential, written whole (one PUT with the resourceVersion it read, never a partial patch), only
// when its content changed, and only if the broker created it. Its annotations say when each
// ECR token expires, and which AWS credentials obtained it (a one-way fingerprint), so that a
// restarted or newly elected broker reuses the tokens instead of calling AWS again.
import type { CoreV1Api, KubeConfig, V1Secret } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { decodeBase64 } from '../sources/dockerconfig.ts';
import type { StoredToken, TokenCache } from '../sources/ecr/index.ts';
import { EXPIRIES_ANNOTATION } from '../sources/kubernetes/defaults.ts';

export { EXPIRIES_ANNOTATION };

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const BROKER_MANAGER = 'node-registry-credentials-broker';
/** JSON {"<registry key>": "<fingerprint>"}: which AWS credentials obtained each token (sha256 prefix, one-way). */
export const FINGERPRINTS_ANNOTATION = 'registry-credentials.okteto.com/token-fingerprints';
/** When the broker last changed the Secret (RFC 3339). */
export const WRITTEN_AT_ANNOTATION = 'registry-credentials.okteto.com/written-at';
export const DOCKERCONFIG_KEY = '.dockerconfigjson';

/** What the broker wants the Secret to say. */
export interface BrokerContent {
  readonly credentials: readonly RegistryCredential[];
  /** Registry key → fingerprint of the AWS credentials of its token. */
  readonly fingerprints: ReadonlyMap<string, string>;
}

export type WriteOutcome = 'created' | 'updated' | 'unchanged';

interface Rendered {
  readonly data: Record<string, string>;
  readonly annotations: Record<string, string>;
}

/** The Secret's data and annotations for `content`: stable bytes for the same content. */
export function renderBrokerSecret(content: BrokerContent): Rendered {
  const sorted = [...content.credentials].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const auths: Record<string, Record<string, string>> = {};
  const expiries: Record<string, string> = {};
  const fingerprints: Record<string, string> = {};
  for (const c of sorted) {
    auths[c.key] = {
      username: c.username,
      password: c.password,
      auth: Buffer.from(`${c.username}:${c.password}`).toString('base64'),
      ...(c.identityToken ? { identitytoken: c.identityToken } : {}),
    };
    if (c.expiresAt) expiries[c.key] = c.expiresAt.toISOString();
    const fp = content.fingerprints.get(c.key);
    if (fp) fingerprints[c.key] = fp;
  }
  return {
    data: { [DOCKERCONFIG_KEY]: Buffer.from(JSON.stringify({ auths })).toString('base64') },
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
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    const e = entry as { username?: unknown; password?: unknown };
    const expiresAt = typeof expiries[key] === 'string' ? Date.parse(expiries[key]) : Number.NaN;
    const fingerprint = fingerprints[key];
    if (typeof e.username !== 'string' || typeof e.password !== 'string' || !Number.isFinite(expiresAt) || typeof fingerprint !== 'string') continue;
    tokens.set(key, { username: e.username, password: e.password, expiresAt, fingerprint });
  }
  return { tokens };
}

const httpStatus = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
};

export interface SecretWriterOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
}

export class BrokerSecretWriter {
  readonly namespace: string;
  readonly name: string;
  private readonly kc: KubeConfig;
  private api: CoreV1Api | undefined;

  constructor(opts: SecretWriterOptions) {
    this.kc = opts.kubeConfig;
    this.namespace = opts.namespace;
    this.name = opts.name;
  }

  get subject(): string {
    return `secret ${this.namespace}/${this.name}`;
  }

  private async client(): Promise<CoreV1Api> {
    if (!this.api) {
      const { CoreV1Api } = await import('@kubernetes/client-node');
      this.api = this.kc.makeApiClient(CoreV1Api);
    }
    return this.api;
  }

  /** The Secret as it is now (undefined when absent); AgentError when it cannot be read. */
  async read(): Promise<V1Secret | undefined | AgentError> {
    const api = await this.client();
    try {
      return await api.readNamespacedSecret({ name: this.name, namespace: this.namespace });
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
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

  /** Writes `content` whole: creates the Secret, replaces it when its content differs, or leaves it. */
  async write(content: BrokerContent, now: Date): Promise<WriteOutcome | AgentError> {
    const api = await this.client();
    const want = renderBrokerSecret(content);
    const current = await this.read();
    if (current instanceof AgentError) return current;
    if (!current) {
      const body: V1Secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/dockerconfigjson',
        metadata: {
          name: this.name,
          namespace: this.namespace,
          labels: { [MANAGED_BY_LABEL]: BROKER_MANAGER, 'app.kubernetes.io/name': 'node-registry-credentials' },
          annotations: { ...want.annotations, [WRITTEN_AT_ANNOTATION]: now.toISOString() },
        },
        data: want.data,
      };
      try {
        await api.createNamespacedSecret({ namespace: this.namespace, body });
        return 'created';
      } catch (err) {
        return this.failed(err, 'create');
      }
    }
    if (current.metadata?.labels?.[MANAGED_BY_LABEL] !== BROKER_MANAGER) {
      const by = current.metadata?.labels?.[MANAGED_BY_LABEL];
      return new AgentError('NRC_E_BROKER_SECRET_FOREIGN', { subject: this.subject, detail: by ? `(managed-by: ${JSON.stringify(by).slice(0, 80)})` : '(no managed-by label)' });
    }
    if (current.type !== 'kubernetes.io/dockerconfigjson') {
      return new AgentError('NRC_E_BROKER_SECRET_FOREIGN', { subject: this.subject, detail: `(type ${JSON.stringify(current.type ?? '').slice(0, 60)}; a Secret's type cannot change: delete it)` });
    }
    const annotations = current.metadata.annotations ?? {};
    const same =
      JSON.stringify(current.data ?? {}) === JSON.stringify(want.data) &&
      Object.entries(want.annotations).every(([k, v]) => annotations[k] === v);
    if (same) return 'unchanged';
    const body: V1Secret = {
      ...current,
      metadata: { ...current.metadata, annotations: { ...annotations, ...want.annotations, [WRITTEN_AT_ANNOTATION]: now.toISOString() } },
      data: want.data,
    };
    try {
      // resourceVersion from the read: a concurrent writer makes this a 409, never a lost update.
      await api.replaceNamespacedSecret({ name: this.name, namespace: this.namespace, body });
      return 'updated';
    } catch (err) {
      return this.failed(err, 'update');
    }
  }

  private failed(err: unknown, verb: string): AgentError {
    const status = httpStatus(err);
    const code = status === 403 ? 'NRC_E_K8S_FORBIDDEN' : 'NRC_E_BROKER_WRITE_FAILED';
    return new AgentError(code, { subject: this.subject, detail: `(${verb}${status ? `: HTTP ${status}` : ''})`, cause: err });
  }
}
