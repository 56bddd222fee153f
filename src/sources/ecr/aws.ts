// Exchanges AWS credentials for an ECR registry token. Every failure becomes a coded AgentError
// whose text carries the AWS error name and HTTP status only: AWS messages and SDK errors can
// echo identifiers, and nothing here may leak a key or token into logs.
import { AgentError, type ErrorCode } from '../../errors.ts';
import type { EcrHost } from './hostname.ts';

/** How the agent authenticates to AWS for one registry. */
export type EcrAuth =
  | { readonly kind: 'awsIamUser'; readonly accessKeyId: string; readonly secretAccessKey: string }
  | { readonly kind: 'awsIamRole'; readonly roleArn: string; readonly audience: string }
  | { readonly kind: 'defaultChain' };

export interface EcrToken {
  readonly username: string;
  readonly password: string;
  readonly expiresAt: Date;
}

/** Gets a fresh token for a registry; throws AgentError. Injectable for tests. */
export type EcrTokenFetcher = (host: EcrHost, auth: EcrAuth) => Promise<EcrToken>;

/** Issues Kubernetes service-account tokens for an audience (TokenRequest API). */
export interface ServiceAccountTokenProvider {
  getToken(audience: string): Promise<{ token: string; expiresAt: Date }>;
}

export interface AwsFetcherOptions {
  /** Needed for awsIamRole registries. */
  readonly serviceAccountTokens?: ServiceAccountTokenProvider;
  /** Override endpoints (tests, VPC endpoints); otherwise the SDK honours AWS_ENDPOINT_URL_ECR/_STS. */
  readonly ecrEndpoint?: string;
  readonly stsEndpoint?: string;
  /** SDK attempts per call (its own quick retries); the source adds slower backoff on top. */
  readonly maxAttempts?: number;
  readonly roleSessionName?: string;
}

const THROTTLE_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'LimitExceededException',
]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/** Classifies an SDK failure into one of our codes. `authCode` is used for plain 4xx refusals. */
export function classifyAwsError(err: unknown, authCode: ErrorCode, subject: string): AgentError {
  if (err instanceof AgentError) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const status = e.$metadata?.httpStatusCode;
  const detail = `(AWS ${name}${status ? `, HTTP ${status}` : ''})`;
  let code: ErrorCode;
  if (THROTTLE_NAMES.has(name) || status === 429) code = 'NRC_E_ECR_THROTTLED';
  else if (name === 'CredentialsProviderError') code = 'NRC_E_ECR_NO_CREDENTIALS';
  else if ((status !== undefined && status >= 500) || e.$fault === 'server' || status === undefined) code = 'NRC_E_ECR_UNAVAILABLE';
  else code = authCode;
  return new AgentError(code, { subject, detail, cause: err });
}

/** Decodes `authorizationToken` (base64 of `AWS:<password>`). */
export function decodeAuthorizationToken(token: string, subject: string): { username: string; password: string } {
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon === decoded.length - 1) {
    throw new AgentError('NRC_E_ECR_RESPONSE_INVALID', { subject, detail: '(authorizationToken is not base64 of user:password)' });
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function createAwsTokenFetcher(opts: AwsFetcherOptions = {}): EcrTokenFetcher {
  const maxAttempts = opts.maxAttempts ?? 2;
  return async (host, auth) => {
    const subject = host.host;
    if (host.service !== 'ecr') throw new AgentError('NRC_E_ECR_UNSUPPORTED', { subject });
    let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
    if (auth.kind === 'awsIamUser') {
      credentials = { accessKeyId: auth.accessKeyId, secretAccessKey: auth.secretAccessKey };
    } else if (auth.kind === 'awsIamRole') {
      credentials = await assumeRole(host, auth, opts, maxAttempts);
    } else {
      credentials = undefined; // the SDK's default chain
    }
    // The SDK is loaded on first use: nodes without ECR registries never pay its memory.
    const { ECRClient, GetAuthorizationTokenCommand } = await import('@aws-sdk/client-ecr');
    const client = new ECRClient({
      region: host.region,
      useFipsEndpoint: host.fips,
      useDualstackEndpoint: host.dualStack,
      maxAttempts,
      ...(credentials ? { credentials } : {}),
      ...(opts.ecrEndpoint ? { endpoint: opts.ecrEndpoint } : {}),
    });
    try {
      const out = await client.send(new GetAuthorizationTokenCommand({}));
      const data = out.authorizationData?.[0];
      if (!data?.authorizationToken || !(data.expiresAt instanceof Date) || Number.isNaN(data.expiresAt.getTime())) {
        throw new AgentError('NRC_E_ECR_RESPONSE_INVALID', { subject, detail: '(no authorizationData with a token and expiresAt)' });
      }
      const { username, password } = decodeAuthorizationToken(data.authorizationToken, subject);
      return { username, password, expiresAt: data.expiresAt };
    } catch (err) {
      throw classifyAwsError(err, 'NRC_E_ECR_AUTH_FAILED', subject);
    } finally {
      client.destroy();
    }
  };
}

async function assumeRole(
  host: EcrHost,
  auth: { roleArn: string; audience: string },
  opts: AwsFetcherOptions,
  maxAttempts: number,
): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken: string }> {
  const subject = host.host;
  if (!opts.serviceAccountTokens) {
    throw new AgentError('NRC_E_ECR_SA_TOKEN_FAILED', { subject, detail: '(no Kubernetes client configured for service-account tokens)' });
  }
  let webIdentity: string;
  try {
    webIdentity = (await opts.serviceAccountTokens.getToken(auth.audience)).token;
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError('NRC_E_ECR_SA_TOKEN_FAILED', { subject, cause: err });
  }
  const { AssumeRoleWithWebIdentityCommand, STSClient } = await import('@aws-sdk/client-sts');
  const sts = new STSClient({
    region: host.region,
    useFipsEndpoint: host.fips,
    maxAttempts,
    ...(opts.stsEndpoint ? { endpoint: opts.stsEndpoint } : {}),
  });
  try {
    const out = await sts.send(
      new AssumeRoleWithWebIdentityCommand({
        RoleArn: auth.roleArn,
        RoleSessionName: opts.roleSessionName ?? 'node-registry-credentials',
        WebIdentityToken: webIdentity,
        // One GetAuthorizationToken call needs it: the shortest session STS allows.
        DurationSeconds: 900,
      }),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
      throw new AgentError('NRC_E_ECR_ASSUME_ROLE_FAILED', { subject, detail: '(STS returned no credentials)' });
    }
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  } catch (err) {
    throw classifyAwsError(err, 'NRC_E_ECR_ASSUME_ROLE_FAILED', subject);
  } finally {
    sts.destroy();
  }
}
