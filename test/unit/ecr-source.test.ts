import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { Registry } from '../../src/metrics.ts';
import { AgentError, type ErrorCode } from '../../src/errors.ts';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import type { EcrAuth, EcrToken } from '../../src/sources/ecr/aws.ts';
import { ManualClock } from '../support/manual-clock.ts';
import type { EcrHost } from '../../src/sources/ecr/hostname.ts';
import { HOUR, MINUTE, SECOND } from '../../src/sources/ecr/schedule.ts';
import { EcrSource, type EcrSourceOptions } from '../../src/sources/ecr/source.ts';
import { ecrStateFile, fileTokenCache, readEcrTokenExpiries } from '../../src/host/ecr-token-cache.ts';
import type { EcrRegistrySpec } from '../../src/sources/ecr/types.ts';
import { advanceSource } from '../support/ecr-clock.ts';

const HOST = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
const SECRET = 'sEcReT/kEy+ForUnitTests0000000000000000';
const USER: EcrRegistrySpec = { host: HOST, kind: 'awsIamUser', accessKeyId: 'AKIDUNITTEST00000001', secretAccessKey: SECRET };

/** A scripted AWS: each call takes the next outcome; records what it was asked. */
class FakeFetcher {
  calls: Array<{ host: EcrHost; auth: EcrAuth; at: number }> = [];
  outcomes: Array<ErrorCode | 'ok' | 'expired'> = [];
  passwords: string[] = [];
  constructor(private readonly clock: ManualClock) {}
  fetch = async (host: EcrHost, auth: EcrAuth): Promise<EcrToken> => {
    this.calls.push({ host, auth, at: this.clock.now() });
    const outcome = this.outcomes.shift() ?? 'ok';
    if (outcome !== 'ok' && outcome !== 'expired') throw new AgentError(outcome, { subject: host.host, detail: '(AWS SomeError, HTTP 400)' });
    const password = `pw-${this.calls.length}-${'x'.repeat(40)}`;
    this.passwords.push(password);
    const expiresAt = new Date(outcome === 'expired' ? this.clock.now() - SECOND : this.clock.now() + 12 * HOUR);
    return { username: 'AWS', password, expiresAt };
  };
}

let dir: string;
let clock: ManualClock;
let aws: FakeFetcher;
let snapshots: SourceSnapshot[];
let logLines: string[];
let sources: EcrSource[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nrc-ecr-'));
  clock = new ManualClock();
  aws = new FakeFetcher(clock);
  snapshots = [];
  logLines = [];
  sources = [];
});
afterEach(async () => {
  for (const s of sources) await s.stop();
  await rm(dir, { recursive: true, force: true });
});

function makeSource(extra: Partial<EcrSourceOptions> = {}): EcrSource {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  const s = new EcrSource({
    tokenCache: fileTokenCache(ecrStateFile(dir)),
    fetchToken: aws.fetch,
    clock,
    random: () => 0.5,
    fleetSize: 600, // startup spread 100 s → first call at 50 s with random 0.5
    logger: createLogger('debug', sink),
    ...extra,
  });
  sources.push(s);
  return s;
}

const advance = (ms: number, s: EcrSource): Promise<void> => advanceSource(clock, s, ms);

const last = (): SourceSnapshot => snapshots.at(-1)!;

describe('EcrSource', () => {
  it('awsIamUser: spreads the first call, then emits AWS:<password> under the registry hostname with its expiry', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    expect(last().credentials).toEqual([]);
    await advance(49 * SECOND, s);
    expect(aws.calls).toHaveLength(0);
    await advance(1 * SECOND, s);
    expect(aws.calls).toHaveLength(1);
    expect(aws.calls[0]!.host.region).toBe('us-east-2');
    expect(aws.calls[0]!.auth).toEqual({ kind: 'awsIamUser', accessKeyId: 'AKIDUNITTEST00000001', secretAccessKey: SECRET });
    expect(last().credentials).toEqual([
      { key: HOST, host: HOST, username: 'AWS', password: aws.passwords[0], source: 'ecr', expiresAt: new Date(clock.now() + 12 * HOUR) },
    ]);
    expect(last().errors).toEqual([]);
  });

  it('awsIamRole: passes role and audience to the fetcher', async () => {
    const s = makeSource({ newNode: true });
    s.setRegistries([{ host: HOST, kind: 'awsIamRole', roleArn: 'arn:aws:iam::123456789012:role/r', audience: 'okteto.example.com/us-east-2' }]);
    await s.start((snap) => snapshots.push(snap));
    await advance(10 * SECOND, s); // a new node skips the fleet spread
    expect(aws.calls[0]!.auth).toEqual({ kind: 'awsIamRole', roleArn: 'arn:aws:iam::123456789012:role/r', audience: 'okteto.example.com/us-east-2' });
    expect(last().credentials).toHaveLength(1);
  });

  it('refreshes at half the lifetime, never later than 1 h before expiry', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    const t0 = aws.calls[0]!.at;
    await advance(6 * HOUR - SECOND, s);
    expect(aws.calls).toHaveLength(1);
    await advance(SECOND, s);
    expect(aws.calls).toHaveLength(2);
    expect(aws.calls[1]!.at - t0).toBe(6 * HOUR);
    expect(s.status()[0]).toMatchObject({ host: HOST, kind: 'awsIamUser', consecutiveFailures: 0 });
    expect(s.status()[0]!.nextRefreshAt!.getTime() - clock.now()).toBeLessThanOrEqual(11 * HOUR);
  });

  it('keeps the current token while refreshes fail, backs off exponentially, and longer when throttled', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    aws.outcomes.push('NRC_E_ECR_UNAVAILABLE', 'NRC_E_ECR_UNAVAILABLE', 'NRC_E_ECR_THROTTLED', 'NRC_E_ECR_THROTTLED');
    await advance(6 * HOUR, s);
    expect(aws.calls).toHaveLength(2);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.passwords[0]]);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_UNAVAILABLE']);
    await advance(10 * MINUTE, s);
    // random 0.5 → 3/4 of base·2^(failures-1): 3.75 s, 7.5 s after 5xx; 90 s, 180 s after throttling (30 s base)
    const gaps = aws.calls.slice(1).map((c, i, a) => (i === 0 ? 0 : c.at - a[i - 1]!.at));
    expect(gaps).toEqual([0, 3750, 7500, 90_000, 180_000]);
    expect(last().errors).toEqual([]);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.passwords[1]]);
  });

  it('removes an expired token when every refresh failed, and reports NRC_E_ECR_TOKEN_EXPIRED', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    const expiresAt = last().credentials[0]!.expiresAt!.getTime();
    aws.outcomes.push(...Array<ErrorCode>(200).fill('NRC_E_ECR_AUTH_FAILED'));
    await advance(expiresAt - clock.now() - SECOND, s);
    expect(last().credentials).toHaveLength(1);
    await advance(SECOND, s);
    expect(last().credentials).toEqual([]);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_TOKEN_EXPIRED']);
    expect(last().errors[0]!.message).toContain('NRC_E_ECR_AUTH_FAILED');
    expect(last().ok).toBe(true);
    expect(await readEcrTokenExpiries(dir)).toEqual([]);
  });

  it('does not emit a token that AWS returned already expired', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    aws.outcomes.push('expired');
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    expect(last().credentials).toEqual([]);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_RESPONSE_INVALID']);
    await advance(5 * SECOND, s);
    expect(last().credentials).toHaveLength(1);
  });

  it('key rotation: keeps the old token and fetches a new one with the new keys', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    s.setRegistries([{ ...USER, accessKeyId: 'AKIDUNITTEST00000002', secretAccessKey: 'rotated-secret' }]);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.passwords[0]]);
    await advance(50 * SECOND, s);
    expect(aws.calls).toHaveLength(2);
    expect(aws.calls[1]!.auth).toMatchObject({ accessKeyId: 'AKIDUNITTEST00000002', secretAccessKey: 'rotated-secret' });
    expect(last().credentials.map((c) => c.password)).toEqual([aws.passwords[1]]);
  });

  it('restart: reuses a still-valid cached token without calling AWS; the cache file is 0600', async () => {
    const first = makeSource();
    first.setRegistries([USER]);
    await first.start(() => undefined);
    await advance(50 * SECOND, first);
    await first.stop();
    expect((await stat(ecrStateFile(dir))).mode & 0o777).toBe(0o600);
    await advance(2 * HOUR, first);

    const second = makeSource();
    second.setRegistries([USER]);
    await second.start((snap) => snapshots.push(snap));
    expect(aws.calls).toHaveLength(1);
    expect(last().credentials.map((c) => c.password)).toEqual([aws.passwords[0]]);
    // 10 h left → refresh at about 5 h, not at startup
    await advance(4 * HOUR, second);
    expect(aws.calls).toHaveLength(1);
    await advance(1 * HOUR, second);
    expect(aws.calls).toHaveLength(2);
  });

  it('restart after the keys rotated: serves the cached token but fetches with the new keys', async () => {
    const first = makeSource();
    first.setRegistries([USER]);
    await first.start(() => undefined);
    await advance(50 * SECOND, first);
    await first.stop();
    const second = makeSource();
    second.setRegistries([{ ...USER, secretAccessKey: 'rotated' }]);
    await second.start((snap) => snapshots.push(snap));
    expect(last().credentials.map((c) => c.password)).toEqual([aws.passwords[0]]);
    await advance(50 * SECOND, second);
    expect(aws.calls).toHaveLength(2);
  });

  it('ignores an expired or corrupt cache', async () => {
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'var/lib/node-registry-credentials'), { recursive: true });
    await writeFile(ecrStateFile(dir), '{not json');
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    expect(last().credentials).toEqual([]);
    await advance(50 * SECOND, s);
    expect(aws.calls).toHaveLength(1);
    expect(JSON.parse(await readFile(ecrStateFile(dir), 'utf8'))).toMatchObject({ version: 1 });
  });

  it('waits for the Registry list before its first snapshot', async () => {
    const s = makeSource();
    await s.start((snap) => snapshots.push(snap));
    expect(snapshots).toHaveLength(0);
    s.setRegistries([]);
    expect(snapshots).toHaveLength(1);
  });

  it('reports a non-ECR hostname with NRC_E_ECR_HOST_INVALID and never calls AWS for it', async () => {
    const s = makeSource();
    s.setRegistries([{ ...USER, host: 'registry.example.com' }]);
    await s.start((snap) => snapshots.push(snap));
    await advance(HOUR, s);
    expect(aws.calls).toHaveLength(0);
    expect(last().errors.map((e) => e.code)).toEqual(['NRC_E_ECR_HOST_INVALID']);
  });

  it('drops a registry that is no longer configured', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    s.setRegistries([]);
    expect(last().credentials).toEqual([]);
    await advance(24 * HOUR, s);
    expect(aws.calls).toHaveLength(1);
    expect(await readEcrTokenExpiries(dir)).toEqual([]);
  });

  it('default chain: serves configured hosts with the node identity; an explicit Registry wins', async () => {
    const other = '210987654321.dkr.ecr.eu-west-1.amazonaws.com';
    const s = makeSource({ defaultChainHosts: [HOST, other] });
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    const byHost = Object.fromEntries(aws.calls.map((c) => [c.host.host, c.auth.kind]));
    expect(byHost).toEqual({ [HOST]: 'awsIamUser', [other]: 'defaultChain' });
    expect(last().credentials.map((c) => c.key)).toEqual([other, HOST].sort());
  });

  it('exports seconds until expiry and failures by code as metrics', async () => {
    const registry = new Registry();
    const s = makeSource({ metrics: registry });
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    aws.outcomes.push('NRC_E_ECR_THROTTLED');
    await advance(6 * HOUR, s);
    const text = await registry.metrics();
    expect(text).toContain(`nrc_ecr_token_expiry_seconds{registry="${HOST}"} ${6 * 3600}`);
    expect(text).toContain(`nrc_ecr_refresh_failures_total{registry="${HOST}",code="NRC_E_ECR_THROTTLED"} 1`);
    expect(text).not.toContain(aws.passwords[0]!);
  });

  it('never logs a key, secret or token', async () => {
    const s = makeSource();
    s.setRegistries([USER]);
    await s.start((snap) => snapshots.push(snap));
    await advance(50 * SECOND, s);
    aws.outcomes.push('NRC_E_ECR_AUTH_FAILED', 'NRC_E_ECR_THROTTLED');
    await advance(7 * HOUR, s);
    s.setRegistries([{ ...USER, accessKeyId: 'AKIDUNITTEST00000002', secretAccessKey: 'rotated-secret-value' }]);
    await advance(HOUR, s);
    aws.outcomes.push(...Array<ErrorCode>(400).fill('NRC_E_ECR_UNAVAILABLE'));
    await advance(13 * HOUR, s);
    const log = logLines.join('');
    expect(log).toContain('ECR token refreshed');
    expect(log).toContain('NRC_E_ECR_TOKEN_EXPIRED');
    for (const secret of [SECRET, 'rotated-secret-value', 'AKIDUNITTEST00000001', 'AKIDUNITTEST00000002', ...aws.passwords]) {
      expect(log).not.toContain(secret);
    }
    for (const snap of snapshots) for (const e of snap.errors) for (const secret of [SECRET, ...aws.passwords]) expect(JSON.stringify(e)).not.toContain(secret);
  });
});
