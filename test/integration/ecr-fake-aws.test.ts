// The real AWS SDK against the local fake: proves the fake verifies signatures (so the source
// tests below mean something) and that the fetcher maps AWS's answers to our codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ECRClient, GetAuthorizationTokenCommand, type ECRClientConfig } from '@aws-sdk/client-ecr';
import { AgentError } from '../../src/errors.ts';
import { createAwsTokenFetcher, type ServiceAccountTokenProvider } from '../../src/sources/ecr/aws.ts';
import { parseEcrHost, type EcrHost } from '../../src/sources/ecr/hostname.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';

const HOST = parseEcrHost('123456789012.dkr.ecr.us-east-2.amazonaws.com') as EcrHost;
const fake = new FakeAws({ region: 'us-east-2', acceptWebIdentity: (t) => t === 'sa-token-for:okteto.example.com/us-east-2' });
let url = '';
beforeAll(async () => {
  url = await fake.start();
});
afterAll(() => fake.stop());

const saTokens: ServiceAccountTokenProvider = {
  getToken: async (audience) => ({ token: `sa-token-for:${audience}`, expiresAt: new Date(Date.now() + 600_000) }),
};

async function rawCall(opts: { region?: string; secret?: string; signingName?: string }): Promise<unknown> {
  const client = new ECRClient({
    region: opts.region ?? 'us-east-2',
    endpoint: url,
    maxAttempts: 1,
    credentials: { accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: opts.secret ?? TEST_SECRET_ACCESS_KEY },
    ...(opts.signingName ? { signingName: opts.signingName } : {}),
  } as ECRClientConfig);
  try {
    return await client.send(new GetAuthorizationTokenCommand({}));
  } catch (err) {
    return err;
  } finally {
    client.destroy();
  }
}

describe('fake AWS verifies SigV4 itself', () => {
  it('accepts a request signed with the right key, region and service', async () => {
    const out = (await rawCall({})) as { authorizationData?: unknown[] };
    expect(out.authorizationData).toHaveLength(1);
  });

  it('refuses a wrong secret key', async () => {
    const err = (await rawCall({ secret: 'wrong-secret' })) as Error;
    expect(err.name).toBe('InvalidSignatureException');
  });

  it('refuses a signature scoped to another region', async () => {
    const err = (await rawCall({ region: 'us-west-1' })) as Error;
    expect(err.name).toBe('InvalidSignatureException');
    expect(fake.calls.at(-1)).toMatchObject({ region: 'us-west-1', status: 403 });
  });

  it('refuses a signature scoped to another service', async () => {
    const err = (await rawCall({ signingName: 'sts' })) as Error;
    expect(err.name).toBe('InvalidSignatureException');
    expect(err.message).toMatch(/correct service/);
  });
});

describe('createAwsTokenFetcher', () => {
  const fetchWith = (): ReturnType<typeof createAwsTokenFetcher> =>
    createAwsTokenFetcher({ ecrEndpoint: url, stsEndpoint: url, maxAttempts: 1, serviceAccountTokens: saTokens });

  it('awsIamUser: returns the decoded token with its expiry', async () => {
    const token = await fetchWith()(HOST, { kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY });
    const issued = fake.issued.at(-1)!;
    expect(token).toEqual({ username: 'AWS', password: issued.password, expiresAt: issued.expiresAt });
  });

  it('awsIamRole: exchanges a service-account token for the audience, then signs with the session', async () => {
    const before = fake.calls.length;
    const token = await fetchWith()(HOST, { kind: 'awsIamRole', roleArn: 'arn:aws:iam::123456789012:role/pull', audience: 'okteto.example.com/us-east-2' });
    expect(token.password).toBe(fake.issued.at(-1)!.password);
    const calls = fake.calls.slice(before);
    expect(calls.map((c) => [c.service, c.status])).toEqual([
      ['sts', 200],
      ['ecr', 200],
    ]);
    // Signed with the temporary key from STS, which the fake only accepts with its session token.
    expect(calls[1]!.accessKeyId).toMatch(/^ASIA/);
  });

  it('awsIamRole with the wrong audience fails with NRC_E_ECR_ASSUME_ROLE_FAILED', async () => {
    const err = await fetchWith()(HOST, { kind: 'awsIamRole', roleArn: 'arn:aws:iam::123456789012:role/pull', audience: 'other' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('NRC_E_ECR_ASSUME_ROLE_FAILED');
    expect((err as AgentError).message).toContain('InvalidIdentityToken');
  });

  it('unknown keys fail with NRC_E_ECR_AUTH_FAILED, without the key in the message', async () => {
    const err = (await fetchWith()(HOST, { kind: 'awsIamUser', accessKeyId: 'AKIDUNKNOWN000000000', secretAccessKey: 'nope-secret-value' }).catch((e: unknown) => e)) as AgentError;
    expect(err.code).toBe('NRC_E_ECR_AUTH_FAILED');
    expect(err.message).not.toContain('AKIDUNKNOWN000000000');
    expect(err.message).not.toContain('nope-secret-value');
  });

  it.each([
    ['throttle', 'NRC_E_ECR_THROTTLED'],
    ['toomanyrequests', 'NRC_E_ECR_THROTTLED'],
    ['5xx', 'NRC_E_ECR_UNAVAILABLE'],
    ['accessdenied', 'NRC_E_ECR_AUTH_FAILED'],
  ] as const)('ECR fault %s → %s', async (fault, code) => {
    fake.failEcr(fault);
    const err = (await fetchWith()(HOST, { kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY }).catch((e: unknown) => e)) as AgentError;
    expect(err.code).toBe(code);
  });

  it('STS throttling → NRC_E_ECR_THROTTLED', async () => {
    fake.failSts('throttle');
    const err = (await fetchWith()(HOST, { kind: 'awsIamRole', roleArn: 'arn:aws:iam::123456789012:role/pull', audience: 'okteto.example.com/us-east-2' }).catch((e: unknown) => e)) as AgentError;
    expect(err.code).toBe('NRC_E_ECR_THROTTLED');
  });

  it('an unreachable endpoint → NRC_E_ECR_UNAVAILABLE', async () => {
    const f = createAwsTokenFetcher({ ecrEndpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    const err = (await f(HOST, { kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY }).catch((e: unknown) => e)) as AgentError;
    expect(err.code).toBe('NRC_E_ECR_UNAVAILABLE');
  });

  it('honours AWS_ENDPOINT_URL_ECR when no endpoint is configured', async () => {
    const before = fake.ecrCalls().length;
    process.env.AWS_ENDPOINT_URL_ECR = url;
    try {
      const f = createAwsTokenFetcher({ maxAttempts: 1 });
      await f(HOST, { kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY });
    } finally {
      delete process.env.AWS_ENDPOINT_URL_ECR;
    }
    expect(fake.ecrCalls().length).toBe(before + 1);
  });
});
