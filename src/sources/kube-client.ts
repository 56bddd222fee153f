// The node agent's Kubernetes client: JSON requests and watches over node:https, authenticated
// from the in-cluster ServiceAccount or a kubeconfig (token, token file, client certificate, CA).
// @kubernetes/client-node costs ~80 MiB of RSS in a process that runs on every node
// (docs/benchmarks.md), for the handful of calls the agent makes; the broker and `status` keep it,
// and a kubeconfig that needs an exec or auth-provider plugin is still served through it.
import { readFileSync, statSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { isIPv6 } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { http } from '../node-http.ts';

/** What a request carries to authenticate: TLS material and headers. */
export interface KubeAuth {
  readonly ca?: Buffer | string | undefined;
  readonly cert?: Buffer | string | undefined;
  readonly key?: Buffer | string | undefined;
  readonly rejectUnauthorized?: boolean | undefined;
  readonly servername?: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
}

/** A non-2xx answer; `code` is the HTTP status (as client-node's ApiException, which callers read). */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: unknown,
    /** From a 429's or 503's Retry-After (seconds form only, as the API server sends it). */
    readonly retryAfterMs?: number,
  ) {
    super(`HTTP ${code}${typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string' ? `: ${(body as { message: string }).message}` : ''}`);
    this.name = 'KubeApiError';
  }

  get statusCode(): number {
    return this.code;
  }
}

/**
 * A 2xx answer that is not what the API server sends: not JSON (a proxy's or load balancer's
 * HTML page), or JSON of the wrong shape. Never read as "nothing there": the caller retries.
 */
export class KubeBadResponse extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`HTTP ${status} but ${detail}`);
    this.name = 'KubeBadResponse';
  }
}

function retryAfterMs(res: IncomingMessage): number | undefined {
  const v = res.headers['retry-after'];
  const s = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  return Number.isFinite(s) ? s * 1000 : undefined;
}

function apiError(res: IncomingMessage, body: unknown): KubeApiError {
  return new KubeApiError(res.statusCode ?? 0, body, retryAfterMs(res));
}

/** The API server answers JSON (or its protobuf/CBOR, which this client never asks for). */
function isJson(res: IncomingMessage): boolean {
  const type = res.headers['content-type'];
  return type === undefined || /\bjson\b/i.test(type);
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export interface RequestOpts {
  readonly query?: Query;
  readonly body?: unknown;
  /** Default application/json; a Node annotation patch is application/merge-patch+json. */
  readonly contentType?: string;
  /** Deadline of the whole request, from connecting to the last byte of the body (default 30 s). */
  readonly timeoutMs?: number;
  /** Default application/json; the broker's Node watch asks for metadata only (PartialObjectMetadataList). */
  readonly accept?: string;
}

export interface WatchHandle {
  abort(): void;
}

export const SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function withQuery(path: string, query: Query | undefined): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/** A bearer token read from a file, again whenever the file changed (the kubelet rotates bound tokens). */
function tokenFileReader(file: string): () => string {
  let cached: { token: string; mtimeMs: number } | undefined;
  return () => {
    const mtimeMs = statSync(file).mtimeMs;
    if (cached?.mtimeMs !== mtimeMs) cached = { token: readFileSync(file, 'utf8').trim(), mtimeMs };
    return cached.token;
  };
}

/** A response's whole body: parsed JSON, the text when it is not JSON, or undefined when empty. */
function readBody(res: IncomingMessage): Promise<{ json: unknown; text: string; parsed: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text) return resolve({ json: undefined, text, parsed: true });
      try {
        resolve({ json: JSON.parse(text), text, parsed: true });
      } catch {
        resolve({ json: undefined, text, parsed: false });
      }
    });
  });
}

export class KubeClient {
  private readonly url: URL;
  private readonly agent: Agent | undefined;

  constructor(
    server: string,
    private readonly auth: () => Promise<KubeAuth> | KubeAuth,
  ) {
    this.url = new URL(server);
    // Kept-alive connections for lists, patches and Events; each watch opens its own (agent: false),
    // so that long-lived watches (the broker holds one per referenced Secret) never queue a request.
    this.agent = this.url.protocol === 'https:' ? new Agent({ keepAlive: true, maxSockets: 4 }) : undefined;
  }

  /** Requests through a client-node KubeConfig's authentication (tests, the broker): no import of it. */
  static fromKubeConfig(kc: KubeConfig): KubeClient {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig: no current cluster');
    return new KubeClient(cluster.server, async () => {
      const o: RequestOptions = { headers: {} };
      await kc.applyToHTTPSOptions(o);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(o.headers ?? {})) if (typeof v === 'string') headers[k] = v;
      return { ca: o.ca as Buffer | undefined, cert: o.cert as Buffer | undefined, key: o.key as Buffer | undefined, rejectUnauthorized: o.rejectUnauthorized, servername: o.servername, headers };
    });
  }

  private async open(method: string, path: string, headers: Record<string, string>, pooled = true): Promise<ClientRequest> {
    const a = await this.auth();
    const url = new URL(path, this.url);
    const options: RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port,
      path: `${this.url.pathname.replace(/\/$/, '')}${url.pathname}${url.search}`,
      headers: { accept: 'application/json', 'user-agent': 'node-registry-credentials', ...a.headers, ...headers },
    };
    if (url.protocol === 'https:') {
      Object.assign(options, { agent: pooled ? this.agent : false, ca: a.ca, cert: a.cert, key: a.key, servername: a.servername });
      if (a.rejectUnauthorized !== undefined) options.rejectUnauthorized = a.rejectUnauthorized;
      return httpsRequest(options);
    }
    return http.request(pooled ? options : { ...options, agent: false });
  }

  /** One JSON request; resolves with the parsed body, rejects with KubeApiError on a non-2xx status. */
  async request<T = unknown>(method: string, path: string, o: RequestOpts = {}): Promise<T> {
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = await this.open(method, withQuery(path, o.query), { ...(body === undefined ? {} : { 'content-type': o.contentType ?? 'application/json' }), ...(o.accept ? { accept: o.accept } : {}) });
    return new Promise<T>((resolveOnce, rejectOnce) => {
      // A deadline for the whole request, connect and TLS handshake included: a socket idle timeout
      // (req.setTimeout) fires only after twice its time when the handshake never completes (a
      // half-open connection), and never while a body trickles in.
      const timeoutMs = o.timeoutMs ?? 30_000;
      const deadline = setTimeout(() => {
        const err = Object.assign(new Error(`request timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
        reject(err);
        req.destroy(err);
      }, timeoutMs);
      const resolve = (v: T): void => {
        clearTimeout(deadline);
        resolveOnce(v);
      };
      const reject = (e: unknown): void => {
        clearTimeout(deadline);
        rejectOnce(e);
      };
      req.on('error', reject);
      req.on('response', (res: IncomingMessage) => {
        readBody(res).then((b) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) reject(apiError(res, b.parsed ? b.json : b.text));
          else if (!b.parsed || !isJson(res)) reject(new KubeBadResponse(status, `not JSON (${String(res.headers['content-type'] ?? 'no content-type').slice(0, 60)})`));
          else resolve(b.json as T);
        }, reject);
      });
      req.end(body);
    });
  }

  /**
   * A watch (?watch=true): `onOpen` once the server accepted it (200 and JSON), `onEvent` for every
   * line of the stream, `onDone` once, with the error (a non-200 status is a KubeApiError, a body
   * that is not a JSON event stream a KubeBadResponse) or none when the stream ended. No timer of
   * its own: the caller's watchdog decides when a silent watch is dead.
   */
  async watch(
    path: string,
    query: Query,
    onEvent: (type: string, obj: Record<string, unknown>) => void,
    onDone: (err: unknown) => void,
    onOpen?: () => void,
    accept?: string,
  ): Promise<WatchHandle> {
    let done = false;
    const finish = (err: unknown): void => {
      if (done) return;
      done = true;
      onDone(err);
    };
    const req = await this.open('GET', withQuery(path, { ...query, watch: true }), accept ? { accept } : {}, false);
    req.on('error', (err) => finish(err));
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        readBody(res).then((b) => finish(status >= 200 && status < 300 ? new KubeBadResponse(status, 'not a watch') : apiError(res, b.parsed ? b.json : b.text)), finish);
        return;
      }
      if (!isJson(res)) {
        res.resume();
        finish(new KubeBadResponse(status, `not a JSON event stream (${String(res.headers['content-type']).slice(0, 60)})`));
        req.destroy();
        return;
      }
      onOpen?.();
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: { type?: unknown; object?: unknown };
          try {
            ev = JSON.parse(line) as { type?: unknown; object?: unknown };
          } catch {
            ev = {};
          }
          // A line that is not an event ends the watch, as client-go's decoder does: the stream can
          // no longer be trusted to carry every change, so the caller resumes or relists.
          if (typeof ev.type !== 'string' || typeof ev.object !== 'object' || ev.object === null) {
            finish(new KubeBadResponse(status, 'a watch line that is not an event'));
            req.destroy();
            return;
          }
          onEvent(ev.type, ev.object as Record<string, unknown>);
          if (done) return;
        }
      });
      res.on('error', (err) => finish(err));
      res.on('close', () => finish(undefined));
      res.on('end', () => finish(undefined));
    });
    req.end();
    return {
      abort: () => {
        done = true;
        req.destroy();
      },
    };
  }
}

/** Either a client, or a client-node KubeConfig (tests and the broker hold one) to make one from. */
export type KubeAccess = KubeClient | KubeConfig;

export function kubeClientOf(access: KubeAccess): KubeClient {
  return access instanceof KubeClient ? access : KubeClient.fromKubeConfig(access);
}

/** The in-cluster API server URL: always https, whatever the port (the bearer token never travels in clear), as client-go's InClusterConfig. */
export function inClusterServer(host: string, port: string): string {
  return `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** The in-cluster client: the API server of KUBERNETES_SERVICE_HOST/PORT, the pod's ServiceAccount. */
export function inClusterClient(dir = SERVICEACCOUNT_DIR): KubeClient {
  const host = process.env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = process.env['KUBERNETES_SERVICE_PORT'] ?? '443';
  const token = tokenFileReader(join(dir, 'token'));
  const ca = readFileSync(join(dir, 'ca.crt'));
  return new KubeClient(inClusterServer(host, port), () => ({ ca, headers: { authorization: `Bearer ${token()}` } }));
}

interface Named<T> {
  readonly name?: string;
  readonly cluster?: T;
  readonly user?: T;
  readonly context?: T;
}
type Fields = Record<string, unknown>;

const str = (o: Fields | undefined, k: string): string | undefined => (typeof o?.[k] === 'string' ? (o[k] as string) : undefined);

/**
 * A client from a kubeconfig file (its current context), or undefined when its user needs what
 * this client does not do (exec or auth-provider plugins, which client-node runs).
 */
export async function kubeconfigClient(file: string): Promise<KubeClient | undefined> {
  const { load } = await import('js-yaml');
  const doc = (load(readFileSync(file, 'utf8')) ?? {}) as Fields;
  const base = dirname(file);
  const abs = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const pick = (list: unknown, name: string | undefined, key: 'cluster' | 'user' | 'context'): Fields | undefined => {
    const items = Array.isArray(list) ? (list as Named<Fields>[]) : [];
    const found = name === undefined ? items[0] : items.find((i) => i.name === name);
    return found?.[key];
  };
  const context = pick(doc['contexts'], str(doc, 'current-context'), 'context');
  const cluster = pick(doc['clusters'], str(context, 'cluster'), 'cluster');
  const user = pick(doc['users'], str(context, 'user'), 'user') ?? {};
  const server = str(cluster, 'server');
  if (!server) throw new Error(`kubeconfig ${file}: no server for the current context`);
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) return undefined;
  const data = (k: string, fileKey: string, o: Fields | undefined): Buffer | undefined => {
    const d = str(o, k);
    if (d) return Buffer.from(d, 'base64');
    const f = str(o, fileKey);
    return f ? readFileSync(abs(f)) : undefined;
  };
  const ca = data('certificate-authority-data', 'certificate-authority', cluster);
  const cert = data('client-certificate-data', 'client-certificate', user);
  const key = data('client-key-data', 'client-key', user);
  const insecure = cluster?.['insecure-skip-tls-verify'] === true;
  const servername = str(cluster, 'tls-server-name');
  const token = str(user, 'token');
  const tokenFile = str(user, 'tokenFile');
  const readToken = tokenFile ? tokenFileReader(abs(tokenFile)) : undefined;
  const username = str(user, 'username');
  const password = str(user, 'password');
  return new KubeClient(server, () => {
    const bearer = token ?? readToken?.();
    const headers: Record<string, string> = bearer
      ? { authorization: `Bearer ${bearer}` }
      : username !== undefined
        ? { authorization: `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}` }
        : {};
    return { ca, cert, key, servername, headers, ...(insecure ? { rejectUnauthorized: false } : {}) };
  });
}
