// The ECR source end to end with the real AWS SDK and the real Kubernetes client: TokenRequest on
// an in-process API server, AssumeRoleWithWebIdentity and GetAuthorizationToken on the SigV4-
// verifying fake AWS. Time is a manual clock; only the HTTP round trips are real.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ecrStateFile, fileTokenCache } from '../../src/host/ecr-token-cache.ts';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { KubernetesServiceAccountTokenProvider } from '../../src/sources/ecr/sa-token.ts';
import { HOUR, SECOND } from '../../src/sources/ecr/schedule.ts';
import { EcrSource } from '../../src/sources/ecr/source.ts';
import type { EcrRegistrySpec } from '../../src/sources/ecr/types.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { jwtClaims } from '../support/jwt.ts';
import { advanceSource } from '../support/ecr-clock.ts';

const HOST = '112233445566.dkr.ecr.us-east-2.amazonaws.com';
const AUDIENCE = 'okteto.example.com/us-east-2';
const ROLE = 'arn:aws:iam::112233445566:role/my-private-registry';

let clock: ManualClock;
const aws = new FakeAws({
  region: 'us-east-2',
  now: () => clock.now(),
  // The role's trust policy: aud = the Registry's audience, sub = okteto/okteto.
  acceptWebIdentity: (token, roleArn) => {
    const c = jwtClaims(token);
    return roleArn === ROLE && (c.aud ?? []).includes(AUDIENCE) && c.sub === 'system:serviceaccount:okteto:okteto';
  },
});
const api = new FakeApiServer();
let dir: string;
let snapshots: SourceSnapshot[];
let source: EcrSource | undefined;

beforeAll(async () => {
  await aws.start();
  await api.start();
});
afterAll(async () => {
  await aws.stop();
  await api.stop();
});
beforeEach(async () => {
  clock = new ManualClock(Date.now());
  dir = await mkdtemp(join(tmpdir(), 'nrc-ecr-it-'));
  snapshots = [];
  aws.calls.length = 0;
  api.allowAll();
});
afterEach(async () => {
  await source?.stop();
  source = undefined;
  await rm(dir, { recursive: true, force: true });
});

function start(specs: EcrRegistrySpec[]): Promise<EcrSource> {
  const s = new EcrSource({
    tokenCache: fileTokenCache(ecrStateFile(dir)),
    clock,
    random: () => 0.5,
    newNode: true,
    aws: {
      ecrEndpoint: aws.url,
      stsEndpoint: aws.url,
      maxAttempts: 1,
      serviceAccountTokens: new KubernetesServiceAccountTokenProvider({ kubeConfig: api.kubeConfig() }),
    },
  });
  source = s;
  s.setRegistries(specs);
  return s.start((snap) => snapshots.push(snap)).then(() => s);
}

const advance = (s: EcrSource, ms: number): Promise<void> => advanceSource(clock, s, ms);

const last = (): SourceSnapshot => snapshots.at(-1)!;

describe('ECR source against fake AWS and a fake API server', () => {
  it('awsIamRole: TokenRequest for the audience as okteto/okteto, web identity, then a token for the registry', async () => {
    const s = await start([{ host: HOST, kind: 'awsIamRole', roleArn: ROLE, audience: AUDIENCE }]);
    await advance(s, 10 * SECOND);
    expect(api.tokenRequests.at(-1)).toMatchObject({ namespace: 'okteto', name: 'okteto', audiences: [AUDIENCE] });
    expect(aws.calls.map((c) => `${c.service}:${c.status}`)).toEqual(['sts:200', 'ecr:200']);
    const issued = aws.issued.at(-1)!;
    expect(last().credentials).toEqual([
      { key: HOST, host: HOST, username: 'AWS', password: issued.password, source: 'ecr', expiresAt: issued.expiresAt },
    ]);
  });

  it('awsIamRole: a TokenRequest forbidden by RBAC is NRC_E_ECR_SA_TOKEN_FAILED', async () => {
    api.deny({ verb: 'create', resource: 'serviceaccounts/token' });
    const s = await start([{ host: HOST, kind: 'awsIamRole', roleArn: ROLE, audience: AUDIENCE }]);
    await advance(s, 10 * SECOND);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_SA_TOKEN_FAILED']);
    expect(aws.calls).toEqual([]);
  });

  it('awsIamRole: a role whose trust policy does not match is NRC_E_ECR_ASSUME_ROLE_FAILED', async () => {
    const s = await start([{ host: HOST, kind: 'awsIamRole', roleArn: 'arn:aws:iam::112233445566:role/other', audience: AUDIENCE }]);
    await advance(s, 10 * SECOND);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_ASSUME_ROLE_FAILED']);
  });

  it('awsIamUser: throttling and 5xx back off, keep the old token, then recover', async () => {
    const s = await start([{ host: HOST, kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY }]);
    await advance(s, 10 * SECOND);
    const first = last().credentials[0]!.password;
    aws.failEcr('throttle', '5xx', 'toomanyrequests');
    await advance(s, 6 * HOUR + 10 * SECOND);
    expect(last().credentials.map((c) => c.password)).toEqual([first]);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_THROTTLED']);
    await advance(s, 10 * 60 * SECOND);
    expect(aws.ecrCalls().map((c) => c.error ?? c.status)).toEqual([200, 'ThrottlingException', 'ServerException', 'TooManyRequestsException', 200]);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.issued.at(-1)!.password]);
    expect(last().errors).toEqual([]);
  });

  it('awsIamUser: a token AWS returns already expired is not used', async () => {
    aws.failEcr('expired');
    const s = await start([{ host: HOST, kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY }]);
    await advance(s, 6 * SECOND); // first call at 5 s, retry 3.75 s later
    expect(last().credentials).toEqual([]);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_RESPONSE_INVALID']);
    await advance(s, 4 * SECOND);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.issued.at(-1)!.password]);
  });

  it('key rotation: after IAM drops the old key, the new keys from setRegistries get a token', async () => {
    const s = await start([{ host: HOST, kind: 'awsIamUser', accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY }]);
    await advance(s, 10 * SECOND);
    aws.setUser('AKIDROTATED000000002', 'the/new/secret/key/000000000000000000000');
    aws.setUser(TEST_ACCESS_KEY_ID, undefined);
    s.setRegistries([{ host: HOST, kind: 'awsIamUser', accessKeyId: 'AKIDROTATED000000002', secretAccessKey: 'the/new/secret/key/000000000000000000000' }]);
    await advance(s, 10 * SECOND);
    expect(aws.ecrCalls().map((c) => [c.accessKeyId, c.status])).toEqual([
      [TEST_ACCESS_KEY_ID, 200],
      ['AKIDROTATED000000002', 200],
    ]);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.issued.at(-1)!.password]);
  });
});
