// Credential check: does the registry accept the credential the agent is about to write?
// GET https://<host>/v2/ — on a Basic challenge, retry with Basic; on a Bearer challenge
// (distribution token auth: WWW-Authenticate: Bearer realm="…",service="…"), GET the realm
// with Basic credentials, then retry /v2/ with the token. The result names the registry, the
// outcome and HTTP status codes only: never the credential, a token, or a response body.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { basicAuthorization } from '../model/basic-auth.ts';
import { credentialFingerprint } from '../model/fingerprint.ts';
import { serverUrl } from '../model/registry-endpoint.ts';
import type { RegistryCredential } from '../model/credential.ts';
import type { HostOptions } from '../model/host-options.ts';
import { TokenBucket, type NowClock } from './rate-limit.ts';

/**
 * valid: the registry accepted the credential. rejected: it answered 401/403 to it.
 * unreachable: no usable answer (connection, TLS, timeout, 5xx, malformed challenge).
 * not-checked: the check was not made (see `reason`).
 */
export type CheckStatus = 'valid' | 'rejected' | 'unreachable' | 'not-checked';

export type NotCheckedReason = 'rate-limited' | 'wildcard-host' | 'identity-token' | 'anonymous-registry' | 'disabled';

export interface CheckResult {
  /** The kubelet key the credential is written under (e.g. `reg.example.com:5000` or Docker Hub's key). */
  readonly key: string;
  /** `host[:port]` the check went to. */
  readonly host: string;
  readonly status: CheckStatus;
  /** Why the status: fixed texts, HTTP status codes and errno/TLS codes only, never a value of the credential. */
  readonly detail: string;
  readonly reason?: NotCheckedReason;
  /** Basic or Bearer: which flow the registry asked for. */
  readonly scheme?: 'basic' | 'bearer';
  readonly checkedAt: Date;
  /** True when this is an earlier result for the same credential, returned because of the per-host rate limit. */
  readonly cached: boolean;
}

export interface CredentialCheckerOptions {
  /** Per request (each of up to three requests); default 5000 ms. */
  readonly timeoutMs?: number;
  /** Checks per host: burst and sustained interval. Default: 3, then one per 5 minutes. */
  readonly perHostBurst?: number;
  readonly perHostIntervalMs?: number;
  /** Checks overall (the whole agent): burst and sustained interval. Default: 10, then one per 2 s. */
  readonly globalBurst?: number;
  readonly globalIntervalMs?: number;
  /** A result for an unchanged credential is reused for this long; default 10 minutes. */
  readonly reuseMs?: number;
  readonly clock?: NowClock;
  /**
   * Where a registry host is reached; default `https://<host>` (Docker Hub: registry-1.docker.io).
   * Tests and proxies only.
   */
  readonly endpointFor?: (host: string) => string;
}

const MAX_BODY = 64 * 1024;

export interface Challenge {
  readonly scheme: 'basic' | 'bearer';
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `WWW-Authenticate` (one or several challenges); unknown schemes are left out. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: { scheme: string; params: Record<string, string> }[] = [];
  // A bare token starts a challenge; key=value / key="quoted" pairs belong to the current one.
  const re = /([A-Za-z0-9_.!#$%&'*+^`|~-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?/g;
  for (const m of text.matchAll(re)) {
    if (m[2] === undefined && m[3] === undefined) {
      out.push({ scheme: m[1]!.toLowerCase(), params: {} });
      continue;
    }
    const current = out.at(-1);
    if (current) current.params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return out.filter((c): c is Challenge => c.scheme === 'basic' || c.scheme === 'bearer');
}

interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

class RequestFailed extends Error {
  constructor(readonly what: string) {
    super(what);
  }
}

function tlsOptions(url: URL, registryHost: string, opts: HostOptions | undefined): RequestOptions {
  // The registry's CA and skip_verify apply to the registry itself and to a token realm on the
  // same host; a realm elsewhere (auth.docker.io) is verified against the system roots.
  const sameHost = url.host === registryHost || url.hostname === registryHost;
  if (!sameHost || !opts) return {};
  return { ...(opts.ca ? { ca: opts.ca } : {}), rejectUnauthorized: !opts.skipVerify };
}

function get(url: URL, headers: Record<string, string>, tls: RequestOptions, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'GET', headers: { 'User-Agent': 'node-registry-credentials', ...headers }, ...tls, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => reject(new RequestFailed(describeNetError(err))));
    });
    req.on('error', (err) => reject(new RequestFailed(describeNetError(err))));
    req.end();
  });
}

function describeNetError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { name?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  // errno and OpenSSL codes (ECONNREFUSED, ENOTFOUND, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...) carry no input values.
  return e.code && /^[A-Z0-9_]+$/.test(e.code) ? e.code : 'connection failed';
}

const basic = (c: RegistryCredential): string => basicAuthorization(c.username, c.password);

/**
 * Checks credentials against their registries, rate-limited per host and overall. A check that
 * the limits do not allow returns the last result for the same credential (cached: true), or
 * not-checked/rate-limited: it never waits and never queues.
 */
export class CredentialChecker {
  private readonly timeoutMs: number;
  private readonly clock: NowClock;
  private readonly global: TokenBucket;
  private readonly perHost = new Map<string, TokenBucket>();
  private readonly last = new Map<string, { fp: string; result: CheckResult }>();
  private readonly endpointFor: (host: string) => string;

  constructor(private readonly o: CredentialCheckerOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.clock = o.clock ?? { now: () => Date.now() };
    this.global = new TokenBucket(o.globalBurst ?? 10, o.globalIntervalMs ?? 2000, this.clock);
    this.endpointFor = o.endpointFor ?? serverUrl;
  }

  /** Checks one credential; never throws. */
  async check(cred: RegistryCredential, hostOptions?: HostOptions): Promise<CheckResult> {
    const now = this.clock.now();
    const base = { key: cred.key, host: cred.host };
    const notChecked = (reason: NotCheckedReason, detail: string): CheckResult => ({ ...base, status: 'not-checked', reason, detail, checkedAt: new Date(now), cached: false });
    if (cred.host.startsWith('*.')) return notChecked('wildcard-host', 'A wildcard key names no single registry to ask.');
    if (cred.identityToken) return notChecked('identity-token', 'Identity (refresh) tokens are not checked.');

    const fp = credentialFingerprint(cred);
    const prev = this.last.get(cred.key);
    if (prev && prev.fp === fp && now - prev.result.checkedAt.getTime() < (this.o.reuseMs ?? 600_000)) {
      return { ...prev.result, cached: true };
    }
    let bucket = this.perHost.get(cred.host);
    if (!bucket) {
      bucket = new TokenBucket(this.o.perHostBurst ?? 3, this.o.perHostIntervalMs ?? 300_000, this.clock);
      this.perHost.set(cred.host, bucket);
    }
    if (!bucket.peek() || !this.global.peek()) {
      if (prev && prev.fp === fp) return { ...prev.result, cached: true };
      return notChecked('rate-limited', `Rate limit reached (${bucket.peek() ? 'all registries' : 'this registry'}); checked again later.`);
    }
    bucket.take();
    this.global.take();
    const result = { ...(await this.run(cred, hostOptions)), checkedAt: new Date(now), cached: false };
    if (result.status !== 'not-checked') this.last.set(cred.key, { fp, result });
    return result;
  }

  /** Checks several credentials one after the other (so the rate limits apply in order). */
  async checkAll(creds: readonly RegistryCredential[], hostOptions: ReadonlyMap<string, HostOptions>): Promise<CheckResult[]> {
    const out: CheckResult[] = [];
    for (const c of creds) out.push(await this.check(c, hostOptions.get(c.host)));
    return out;
  }

  private async run(cred: RegistryCredential, opts: HostOptions | undefined): Promise<Omit<CheckResult, 'checkedAt' | 'cached'>> {
    const base = { key: cred.key, host: cred.host };
    const v2 = new URL('/v2/', this.endpointFor(cred.host));
    const tls = tlsOptions(v2, v2.host, opts);
    const unreachable = (detail: string, scheme?: 'basic' | 'bearer'): Omit<CheckResult, 'checkedAt' | 'cached'> => ({ ...base, status: 'unreachable', detail, ...(scheme ? { scheme } : {}) });
    try {
      const first = await get(v2, {}, tls, this.timeoutMs);
      if (first.status === 200) {
        return { ...base, status: 'not-checked', reason: 'anonymous-registry', detail: 'The registry answers /v2/ without credentials, so it cannot tell whether they are right.' };
      }
      if (first.status !== 401) return unreachable(`/v2/ answered HTTP ${first.status} instead of 401 with a challenge.`);
      const challenges = parseChallenges(first.headers['www-authenticate']);
      const bearer = challenges.find((c) => c.scheme === 'bearer');
      if (bearer) return await this.bearerFlow(cred, v2, tls, bearer, opts);
      if (!challenges.some((c) => c.scheme === 'basic')) return unreachable('/v2/ answered 401 without a Basic or Bearer challenge.');
      const second = await get(v2, { Authorization: basic(cred) }, tls, this.timeoutMs);
      if (second.status === 200) return { ...base, status: 'valid', scheme: 'basic', detail: 'The registry accepted the credential (Basic).' };
      if (second.status === 401 || second.status === 403) return { ...base, status: 'rejected', scheme: 'basic', detail: `The registry rejected the credential (HTTP ${second.status} to Basic auth).` };
      return unreachable(`/v2/ answered HTTP ${second.status} to Basic auth.`, 'basic');
    } catch (err) {
      return unreachable(err instanceof RequestFailed ? `Request failed: ${err.what}.` : 'Request failed.');
    }
  }

  private async bearerFlow(cred: RegistryCredential, v2: URL, tls: RequestOptions, ch: Challenge, opts: HostOptions | undefined): Promise<Omit<CheckResult, 'checkedAt' | 'cached'>> {
    const base = { key: cred.key, host: cred.host, scheme: 'bearer' as const };
    const realmText = ch.params['realm'];
    let realm: URL;
    try {
      realm = new URL(realmText ?? '');
    } catch {
      return { ...base, status: 'unreachable', detail: 'The Bearer challenge has no valid realm.' };
    }
    // Credentials go to the token service only over TLS.
    if (realm.protocol !== 'https:') return { ...base, status: 'unreachable', detail: 'The token realm is not https; the credential was not sent.' };
    if (ch.params['service']) realm.searchParams.set('service', ch.params['service']);
    if (ch.params['scope']) realm.searchParams.set('scope', ch.params['scope']);
    const tokenAnswer = await get(realm, { Authorization: basic(cred) }, tlsOptions(realm, v2.host, opts), this.timeoutMs);
    if (tokenAnswer.status === 401 || tokenAnswer.status === 403) {
      return { ...base, status: 'rejected', detail: `The token service rejected the credential (HTTP ${tokenAnswer.status}).` };
    }
    if (tokenAnswer.status !== 200) return { ...base, status: 'unreachable', detail: `The token service answered HTTP ${tokenAnswer.status}.` };
    let token: string | undefined;
    try {
      const body = JSON.parse(tokenAnswer.body) as { token?: unknown; access_token?: unknown };
      token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' && body.access_token ? body.access_token : undefined;
    } catch {
      token = undefined;
    }
    if (!token) return { ...base, status: 'unreachable', detail: 'The token service answered without a token.' };
    const retry = await get(v2, { Authorization: `Bearer ${token}` }, tls, this.timeoutMs);
    if (retry.status === 200) return { ...base, status: 'valid', detail: 'The registry accepted the credential (Bearer token).' };
    if (retry.status === 401 || retry.status === 403) return { ...base, status: 'rejected', detail: `The registry refused the token issued for the credential (HTTP ${retry.status}).` };
    return { ...base, status: 'unreachable', detail: `/v2/ answered HTTP ${retry.status} to the Bearer token.` };
  }
}
