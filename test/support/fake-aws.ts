// A local stand-in for AWS ECR (JSON 1.1) and STS (query protocol) that verifies every signed
// request's SigV4 signature on its own (node:crypto, not the SDK's signer), so that tests fail on
// a wrong key, region or service exactly where AWS would.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const TEST_ACCESS_KEY_ID = 'AKIDEXAMPLEFAKE00001';
export const TEST_SECRET_ACCESS_KEY = 'fake/Secret+Key/For/Tests/Only/000000001';

export type Fault = 'throttle' | 'toomanyrequests' | '5xx' | 'expired' | 'accessdenied';

export interface FakeAwsCall {
  readonly service: 'ecr' | 'sts';
  readonly action: string;
  readonly accessKeyId: string | undefined;
  readonly region: string | undefined;
  readonly status: number;
  /** Why the request was refused, if it was. */
  readonly error?: string;
}

export interface IssuedToken {
  readonly accessKeyId: string;
  readonly password: string;
  readonly expiresAt: Date;
}

export interface FakeAwsOptions {
  /** The region this endpoint answers for; a request scoped to another region fails. */
  readonly region: string;
  /** Long-term keys AWS knows (access key id → secret). Defaults to the test key. */
  readonly users?: Record<string, string>;
  /** Accepts or refuses a web identity for a role. Default: any token for any role. */
  readonly acceptWebIdentity?: (token: string, roleArn: string) => boolean;
  /** ECR token lifetime in ms (AWS: 12 h). */
  readonly tokenLifetimeMs?: number;
  /** The server's clock for token expiry (not for signatures). */
  readonly now?: () => number;
}

interface Session {
  readonly secret: string;
  readonly sessionToken: string;
  readonly roleArn: string;
}

const ECR_TARGET = 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken';

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** RFC 3986 encoding as SigV4 wants it. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

interface ParsedAuth {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(value: string | undefined): ParsedAuth | undefined {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$/.exec(value ?? '');
  if (!m) return undefined;
  return { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]!, terminator: m[5]!, signedHeaders: m[6]!.split(';'), signature: m[7]! };
}

/** Recomputes the SigV4 signature of a request (canonical request → string to sign → HMAC chain). */
export function computeSignature(req: { method: string; url: string; headers: Record<string, string | string[] | undefined> }, body: Buffer, auth: ParsedAuth, secret: string): string {
  const url = new URL(req.url, 'http://placeholder');
  const canonicalUri = url.pathname.split('/').map((seg) => uriEncode(decodeURIComponent(seg))).join('/') || '/';
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = auth.signedHeaders
    .map((name) => {
      const raw = req.headers[name];
      const value = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
      return `${name}:${value.trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  const canonicalRequest = [req.method, canonicalUri, query, canonicalHeaders, auth.signedHeaders.join(';'), sha256Hex(body)].join('\n');
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const scope = `${auth.date}/${auth.region}/${auth.service}/${auth.terminator}`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const kDate = hmac(`AWS4${secret}`, auth.date);
  const kRegion = hmac(kDate, auth.region);
  const kService = hmac(kRegion, auth.service);
  const kSigning = hmac(kService, 'aws4_request');
  return hmac(kSigning, stringToSign).toString('hex');
}

/** How ECR answers each injected fault ('expired' is not an error: it returns a dead token). */
const ECR_FAULTS: Record<Exclude<Fault, 'expired'>, { status: number; type: string; message: string }> = {
  throttle: { status: 400, type: 'ThrottlingException', message: 'Rate exceeded' },
  toomanyrequests: { status: 429, type: 'TooManyRequestsException', message: 'Too Many Requests' },
  '5xx': { status: 500, type: 'ServerException', message: 'Internal error' },
  accessdenied: { status: 400, type: 'AccessDeniedException', message: 'User is not authorized to perform: ecr:GetAuthorizationToken' },
};

export class FakeAws {
  readonly calls: FakeAwsCall[] = [];
  readonly issued: IssuedToken[] = [];
  /** Web identity tokens STS received (to check the audience flow). */
  readonly webIdentityTokens: string[] = [];
  private readonly users: Map<string, string>;
  private readonly sessions = new Map<string, Session>();
  private readonly ecrFaults: Fault[] = [];
  private readonly stsFaults: Fault[] = [];
  private server: Server | undefined;
  private readonly opts: FakeAwsOptions;
  url = '';

  constructor(opts: FakeAwsOptions) {
    this.opts = opts;
    this.users = new Map(Object.entries(opts.users ?? { [TEST_ACCESS_KEY_ID]: TEST_SECRET_ACCESS_KEY }));
  }

  /** Makes AWS know (or forget) a long-term key, as IAM key rotation does. */
  setUser(accessKeyId: string, secret: string | undefined): void {
    if (secret === undefined) this.users.delete(accessKeyId);
    else this.users.set(accessKeyId, secret);
  }

  /** The next ECR calls fail (in order) with these faults. */
  failEcr(...faults: Fault[]): void {
    this.ecrFaults.push(...faults);
  }
  failSts(...faults: Fault[]): void {
    this.stsFaults.push(...faults);
  }

  ecrCalls(): FakeAwsCall[] {
    return this.calls.filter((c) => c.service === 'ecr');
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, Buffer.concat(chunks), res));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  private handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const target = req.headers['x-amz-target'];
    if (req.method === 'POST' && target === ECR_TARGET) return this.handleEcr(req, body, res);
    const form = new URLSearchParams(body.toString('utf8'));
    if (req.method === 'POST' && form.get('Action') === 'AssumeRoleWithWebIdentity') return this.handleSts(req, form, res);
    this.calls.push({ service: 'ecr', action: String(target ?? req.url), accessKeyId: undefined, region: undefined, status: 400, error: 'UnknownOperation' });
    this.json(res, 400, { __type: 'UnknownOperationException', message: 'Unknown operation' });
  }

  /** Checks signature, scope and session token; returns the error to send, if any. */
  private verify(req: IncomingMessage, body: Buffer, service: string): { status: number; code: string; message: string; auth?: ParsedAuth } | { auth: ParsedAuth } {
    const auth = parseAuthorization(req.headers.authorization);
    if (!auth) return { status: 403, code: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
    if (auth.terminator !== 'aws4_request') return { status: 403, code: 'InvalidSignatureException', message: 'Credential should be scoped with a valid terminator', auth };
    if (auth.service !== service) return { status: 403, code: 'InvalidSignatureException', message: `Credential should be scoped to correct service: '${service}'.`, auth };
    if (auth.region !== this.opts.region) return { status: 403, code: 'InvalidSignatureException', message: `Credential should be scoped to a valid region.`, auth };
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    if (!amzDate.startsWith(auth.date)) return { status: 403, code: 'InvalidSignatureException', message: 'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP', auth };
    for (const h of ['host', 'x-amz-date']) {
      if (!auth.signedHeaders.includes(h)) return { status: 403, code: 'InvalidSignatureException', message: `'${h}' must be a signed header`, auth };
    }
    let secret = this.users.get(auth.accessKeyId);
    const session = this.sessions.get(auth.accessKeyId);
    if (session) {
      secret = session.secret;
      const token = req.headers['x-amz-security-token'];
      if (token !== session.sessionToken || !auth.signedHeaders.includes('x-amz-security-token')) {
        return { status: 403, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', auth };
      }
    }
    if (secret === undefined) return { status: 403, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', auth };
    const expected = Buffer.from(computeSignature({ method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers }, body, auth, secret), 'hex');
    const got = Buffer.from(auth.signature, 'hex');
    if (expected.length !== got.length || !timingSafeEqual(expected, got)) {
      return { status: 403, code: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided.', auth };
    }
    return { auth };
  }

  private handleEcr(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const v = this.verify(req, body, 'ecr');
    const record = (status: number, error?: string): void => {
      this.calls.push({ service: 'ecr', action: 'GetAuthorizationToken', accessKeyId: v.auth?.accessKeyId, region: v.auth?.region, status, ...(error ? { error } : {}) });
    };
    if ('code' in v) {
      record(v.status, v.code);
      return this.json(res, v.status, { __type: v.code, message: v.message });
    }
    const fault = this.ecrFaults.shift();
    const failure = fault === undefined || fault === 'expired' ? undefined : ECR_FAULTS[fault];
    if (failure) {
      record(failure.status, failure.type);
      return this.json(res, failure.status, { __type: failure.type, message: failure.message });
    }
    const password = randomBytes(24).toString('base64url');
    const lifetime = this.opts.tokenLifetimeMs ?? 12 * 3600_000;
    const expiresAt = new Date(fault === 'expired' ? this.now() - 1000 : this.now() + lifetime);
    this.issued.push({ accessKeyId: v.auth.accessKeyId, password, expiresAt });
    record(200);
    this.json(res, 200, {
      authorizationData: [
        {
          authorizationToken: Buffer.from(`AWS:${password}`).toString('base64'),
          expiresAt: expiresAt.getTime() / 1000,
          proxyEndpoint: `https://000000000000.dkr.ecr.${this.opts.region}.amazonaws.com`,
        },
      ],
    });
  }

  private handleSts(req: IncomingMessage, form: URLSearchParams, res: ServerResponse): void {
    const roleArn = form.get('RoleArn') ?? '';
    const token = form.get('WebIdentityToken') ?? '';
    const record = (status: number, error?: string): void => {
      this.calls.push({ service: 'sts', action: 'AssumeRoleWithWebIdentity', accessKeyId: undefined, region: undefined, status, ...(error ? { error } : {}) });
    };
    // AssumeRoleWithWebIdentity is unsigned: the web identity token is the credential.
    if (req.headers.authorization) {
      record(400, 'UnexpectedSignature');
      return this.stsError(res, 400, 'InvalidParameterValue', 'AssumeRoleWithWebIdentity must not be signed');
    }
    const fault = this.stsFaults.shift();
    if (fault === 'throttle' || fault === 'toomanyrequests') {
      record(400, 'Throttling');
      return this.stsError(res, 400, 'Throttling', 'Rate exceeded');
    }
    if (fault === '5xx') {
      record(500, 'InternalFailure');
      return this.stsError(res, 500, 'InternalFailure', 'Internal failure');
    }
    this.webIdentityTokens.push(token);
    const accept = this.opts.acceptWebIdentity ?? (() => true);
    if (!token || !roleArn || !form.get('RoleSessionName') || !accept(token, roleArn)) {
      record(400, 'InvalidIdentityToken');
      return this.stsError(res, 400, 'InvalidIdentityToken', 'Incorrect token audience');
    }
    if (fault === 'accessdenied') {
      record(403, 'AccessDenied');
      return this.stsError(res, 403, 'AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity');
    }
    const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const session: Session = { secret: randomBytes(30).toString('base64'), sessionToken: randomBytes(64).toString('base64'), roleArn };
    this.sessions.set(accessKeyId, session);
    record(200);
    const expiration = new Date(Date.now() + 3600_000).toISOString();
    const xml =
      `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>` +
      `<Credentials><AccessKeyId>${accessKeyId}</AccessKeyId><SecretAccessKey>${session.secret}</SecretAccessKey>` +
      `<SessionToken>${session.sessionToken}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
      `<SubjectFromWebIdentityToken>system:serviceaccount:okteto:okteto</SubjectFromWebIdentityToken>` +
      `<AssumedRoleUser><Arn>${roleArn}/session</Arn><AssumedRoleId>AROAFAKE:session</AssumedRoleId></AssumedRoleUser>` +
      `</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>` +
      `</AssumeRoleWithWebIdentityResponse>`;
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end(xml);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const errorType = (body as { __type?: string }).__type;
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'x-amzn-requestid': '00000000-0000-0000-0000-000000000000',
      ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
    });
    res.end(JSON.stringify(body));
  }

  private stsError(res: ServerResponse, status: number, code: string, message: string): void {
    res.writeHead(status, { 'content-type': 'text/xml' });
    res.end(
      `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code>` +
        `<Message>${message}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>`,
    );
  }
}
