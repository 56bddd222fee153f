// The cluster broker against the in-process API server (real @kubernetes/client-node) and the
// SigV4-verifying fake AWS (real AWS SDK): Registry resources of all three kinds become one whole
// dockerconfigjson Secret, exactly as the node agents' Secret source reads it; a foreign Secret is
// refused; a restarted broker reuses its tokens; two electors on a real Lease fail over.
import { createServer, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { Broker } from '../../src/broker/broker.ts';
import { kubernetesLeaseStore, LeaderElector } from '../../src/broker/lease.ts';
import { BROKER_MANAGER, DOCKERCONFIG_KEY, EXPIRIES_ANNOTATION, FINGERPRINTS_ANNOTATION, LEADER_ANNOTATION, LEADER_TRANSITIONS_ANNOTATION, MANAGED_BY_LABEL } from '../../src/broker/secret-writer.ts';
import { AgentError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { secretToSnapshot } from '../../src/sources/kubernetes/secret-source.ts';
import type { KubeObject } from '../../src/sources/kubernetes/list-watch.ts';
import { FakeApiServer, type JsonObject } from '../support/fake-apiserver.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { trustPolicy } from '../support/jwt.ts';
import { Writable } from 'node:stream';

const NS = 'okteto';
const SECRET = 'node-registry-credentials-broker';
const BROKER_SA = 'node-registry-credentials-broker';
const USER_HOST = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
const ROLE_HOST = '112233445566.dkr.ecr.us-east-2.amazonaws.com';
const AUDIENCE = 'okteto.example.com/us-east-2';
const ROLE = 'arn:aws:iam::112233445566:role/my-private-registry';

// The role's trust policy names the BROKER's own account, not the platform's.
const aws = new FakeAws({
  region: 'us-east-2',
  acceptWebIdentity: trustPolicy({ roleArn: ROLE, audience: AUDIENCE, sub: `system:serviceaccount:${NS}:${BROKER_SA}` }),
});
let awsUrl = '';
beforeAll(async () => {
  awsUrl = await aws.start();
});
afterAll(() => aws.stop());

let api: FakeApiServer;
let logs: string;
const brokers: Broker[] = [];
beforeEach(async () => {
  api = new FakeApiServer({ user: `system:serviceaccount:${NS}:${BROKER_SA}` });
  await api.start();
  logs = '';
});
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
  await api.stop();
});

const logger = (): ReturnType<typeof createLogger> =>
  createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs += chunk.toString();
        cb();
      },
    }),
  );

function newBroker(onWrite?: (o: unknown) => void, leadership?: LeaderElector): Broker {
  const b = new Broker({
    ...(leadership ? { leadership } : {}),
    kubeConfig: api.kubeConfig(),
    namespace: NS,
    secretName: SECRET,
    serviceAccount: { namespace: NS, name: BROKER_SA },
    logger: logger(),
    aws: { ecrEndpoint: awsUrl, stsEndpoint: awsUrl, maxAttempts: 1 },
    debounceMs: 20,
    ...(onWrite ? { onWrite } : {}),
  });
  brokers.push(b);
  return b;
}

function putAllKinds(): void {
  api.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 's3cret-static' });
  api.putRegistry(NS, 'registry.example.com', { static: { port: 5000, userSecretRef: { name: 'static-creds', key: 'username' }, passwordSecretRef: { name: 'static-creds', key: 'password' } } });
  api.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
  api.putRegistry(NS, USER_HOST, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } });
  api.putRegistry(NS, ROLE_HOST, { awsIamRole: { audience: AUDIENCE, roleARN: ROLE } });
}

const brokerSecret = (): JsonObject | undefined => api.get('secrets', NS, SECRET);
const auths = (s: JsonObject | undefined): Record<string, { username: string; password: string; auth: string }> => {
  const data = (s?.['data'] ?? {}) as Record<string, string>;
  const raw = data[DOCKERCONFIG_KEY];
  return raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as { auths: Record<string, { username: string; password: string; auth: string }> }).auths : {};
};
const annotations = (s: JsonObject | undefined): Record<string, string> => ((s?.['metadata'] as { annotations?: Record<string, string> } | undefined)?.annotations ?? {});

/** Every kind of Registry resource, resolved by a broker that then stops (a restart, or a failover). */
async function firstBrokerWroteAndStopped(): Promise<void> {
  putAllKinds();
  const first = newBroker();
  await first.start();
  await vi.waitFor(() => expect(Object.keys(auths(brokerSecret()))).toHaveLength(3), { timeout: 15_000, interval: 50 });
  await first.stop();
}

describe('broker: Registry resources → one dockerconfigjson Secret', () => {
  it('resolves static, awsIamUser and awsIamRole registries into one Secret the nodes read as it is', async () => {
    putAllKinds();
    const ecrBefore = aws.ecrCalls().length;
    await newBroker().start();
    await vi.waitFor(() => expect(Object.keys(auths(brokerSecret())).sort()).toEqual([ROLE_HOST, USER_HOST, 'registry.example.com:5000'].sort()), { timeout: 15_000, interval: 50 });
    const s = brokerSecret()!;
    expect(s['type']).toBe('kubernetes.io/dockerconfigjson');
    expect((s['metadata'] as { labels: Record<string, string> }).labels[MANAGED_BY_LABEL]).toBe(BROKER_MANAGER);
    const a = auths(s);
    expect(a['registry.example.com:5000']).toMatchObject({ username: 'alice', password: 's3cret-static', auth: Buffer.from('alice:s3cret-static').toString('base64') });
    // Both ECR tokens were signed with SigV4 and checked by the fake; one call each.
    expect(aws.ecrCalls().slice(ecrBefore).map((c) => c.status)).toEqual([200, 200]);
    const passwords = aws.issued.slice(-2).map((t) => t.password).sort();
    expect([a[USER_HOST]!.password, a[ROLE_HOST]!.password].sort()).toEqual(passwords);
    // awsIamRole: a TokenRequest on the broker's OWN account, for the Registry's audience.
    expect(api.tokenRequests).toEqual([{ namespace: NS, name: BROKER_SA, audiences: [AUDIENCE], expirationSeconds: 600 }]);
    // Expiry annotations: one per ECR token, none for the static credential.
    const expiries = JSON.parse(annotations(s)[EXPIRIES_ANNOTATION]!) as Record<string, string>;
    expect(Object.keys(expiries).sort()).toEqual([ROLE_HOST, USER_HOST].sort());
    for (const at of Object.values(expiries)) expect(Date.parse(at)).toBeGreaterThan(Date.now() + 11 * 3_600_000);
    // What a node agent's Secret source makes of it: every credential, ECR ones with their expiry.
    const seen = secretToSnapshot(s as KubeObject, `secret:${NS}/${SECRET}`);
    expect(seen.errors).toEqual([]);
    expect(seen.credentials.map((c) => [c.key, c.username, c.expiresAt !== undefined]).sort()).toEqual(
      [
        [ROLE_HOST, 'AWS', true],
        [USER_HOST, 'AWS', true],
        ['registry.example.com:5000', 'alice', false],
      ].sort(),
    );
    // Never a secret in the logs.
    for (const secret of ['s3cret-static', TEST_SECRET_ACCESS_KEY, ...passwords]) expect(logs).not.toContain(secret);
  }, 30_000);

  it('writes only when the content changes, always as one whole replace with the resourceVersion it read', async () => {
    putAllKinds();
    await newBroker().start();
    await vi.waitFor(() => expect(Object.keys(auths(brokerSecret()))).toHaveLength(3), { timeout: 15_000, interval: 50 });
    const writes = (): number => api.count('update', 'secrets') + api.count('create', 'secrets') + api.count('patch', 'secrets');
    // The ECR tokens may arrive one at a time (a second write before this point, on a busy machine):
    // what is counted is what the changes below cause.
    const before = writes();
    const updatesBefore = api.count('update', 'secrets');
    // A relist of an unchanged Registry does not write.
    api.putRegistry(NS, 'registry.example.com', { static: { port: 5000, userSecretRef: { name: 'static-creds', key: 'username' }, passwordSecretRef: { name: 'static-creds', key: 'password' } } });
    await new Promise((r) => setTimeout(r, 300));
    expect(writes()).toBe(before);
    api.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'rotated' });
    await vi.waitFor(() => expect(auths(brokerSecret())['registry.example.com:5000']?.password).toBe('rotated'), { timeout: 10_000, interval: 50 });
    expect(api.count('patch', 'secrets')).toBe(0);
    expect(api.count('update', 'secrets')).toBe(updatesBefore + 1);
    expect(writes()).toBe(before + 1);
    // The ECR tokens were kept, not fetched again.
    expect(Object.keys(auths(brokerSecret()))).toHaveLength(3);
  }, 30_000);

  it('refuses, with NRC_E_BROKER_SECRET_FOREIGN, a Secret of that name that another controller manages, and leaves it untouched', async () => {
    api.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'pw' });
    api.putRegistry(NS, 'registry.example.com', { static: { userSecretRef: { name: 'static-creds', key: 'username' }, passwordSecretRef: { name: 'static-creds', key: 'password' } } });
    const foreign = api.put({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: { name: SECRET, namespace: NS, labels: { [MANAGED_BY_LABEL]: 'someone-else' } },
      data: { [DOCKERCONFIG_KEY]: Buffer.from('{"auths":{}}').toString('base64') },
    });
    const outcomes: unknown[] = [];
    await newBroker((o) => outcomes.push(o)).start();
    await vi.waitFor(() => expect(outcomes.length).toBeGreaterThan(0), { timeout: 10_000, interval: 50 });
    expect(outcomes[0]).toBeInstanceOf(AgentError);
    expect((outcomes[0] as AgentError).code).toBe('NRC_E_BROKER_SECRET_FOREIGN');
    expect((outcomes[0] as AgentError).message).toContain('someone-else');
    expect(brokerSecret()!['metadata']).toMatchObject({ resourceVersion: (foreign['metadata'] as { resourceVersion: string }).resourceVersion });
    expect(api.count('update', 'secrets')).toBe(0);
    expect(logs).toContain('NRC_E_BROKER_SECRET_FOREIGN');
  }, 20_000);

  it('a restarted (or newly elected) broker reuses the tokens in its Secret and calls AWS no sooner than refresh time', async () => {
    await firstBrokerWroteAndStopped();
    const tokensBefore = auths(brokerSecret());
    const fingerprints = annotations(brokerSecret())[FINGERPRINTS_ANNOTATION];
    const callsBefore = aws.calls.length;
    const tokenRequestsBefore = api.tokenRequests.length;
    const second = newBroker();
    await second.start();
    await new Promise((r) => setTimeout(r, 800));
    expect(aws.calls.length).toBe(callsBefore);
    expect(api.tokenRequests.length).toBe(tokenRequestsBefore);
    expect(auths(brokerSecret())).toEqual(tokensBefore);
    expect(annotations(brokerSecret())[FINGERPRINTS_ANNOTATION]).toBe(fingerprints);
    const status = second.ecr.status();
    expect(status.map((s) => s.host).sort()).toEqual([ROLE_HOST, USER_HOST].sort());
    for (const s of status) expect(s.nextRefreshAt!.getTime()).toBeGreaterThan(Date.now() + 3_600_000);
  }, 30_000);

  it('rotated AWS keys: the cached token of the old keys is replaced (the fingerprint no longer matches)', async () => {
    await firstBrokerWroteAndStopped();
    const old = auths(brokerSecret())[USER_HOST]!.password;
    aws.setUser('AKIDEXAMPLEFAKE00002', 'second/secret/key/000000000000000000002');
    api.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': 'AKIDEXAMPLEFAKE00002', 'secret-access-key': 'second/secret/key/000000000000000000002' });
    await newBroker().start();
    await vi.waitFor(() => expect(auths(brokerSecret())[USER_HOST]?.password).not.toBe(old), { timeout: 15_000, interval: 50 });
  }, 30_000);
});

describe('broker: leader election on a coordination.k8s.io Lease', () => {
  it('kill the leader: the standby takes the Lease and writes within 30 s, and nodes never see the Secret without a token', async () => {
    putAllKinds();
    const timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
    const kc = api.kubeConfig();
    const make = async (identity: string): Promise<{ elector: LeaderElector; broker: Broker }> => {
      let broker: Broker | undefined;
      const elector = new LeaderElector({
        store: await kubernetesLeaseStore(kc, NS, 'node-registry-credentials-broker', { timeoutMs: timing.renewDeadlineMs / 2 }),
        identity,
        timing,
        onStartedLeading: () => void broker?.start(),
        onStoppedLeading: () => void broker?.stop(),
      });
      broker = newBroker(undefined, elector);
      return { elector, broker };
    };
    const a = await make('broker-a');
    const b = await make('broker-b');
    a.elector.start();
    await vi.waitFor(() => expect(a.elector.isLeader).toBe(true), { timeout: 5000, interval: 50 });
    b.elector.start();
    await vi.waitFor(() => expect(Object.keys(auths(brokerSecret()))).toHaveLength(3), { timeout: 15_000, interval: 50 });
    expect(b.elector.isLeader).toBe(false);
    expect(annotations(brokerSecret())).toMatchObject({ [LEADER_ANNOTATION]: 'broker-a', [LEADER_TRANSITIONS_ANNOTATION]: '0' });
    const rvOfA = (brokerSecret()!['metadata'] as { resourceVersion: string }).resourceVersion;
    const lease = api.get('leases', NS, 'node-registry-credentials-broker')!;
    expect(lease['spec']).toMatchObject({ holderIdentity: 'broker-a', leaseDurationSeconds: 3 });
    expect(String((lease['spec'] as { renewTime: string }).renewTime)).toMatch(/\.\d{6}Z$/);

    // Kill: no release, no more renewals, its broker stops mid-flight.
    const callsBefore = aws.calls.length;
    await a.elector.stop({ release: false });
    await a.broker.stop();
    const killedAt = Date.now();
    await vi.waitFor(() => expect(b.elector.isLeader).toBe(true), { timeout: 30_000, interval: 50 });
    // Its first write is its stamp, content unchanged: a stale broker-a's PUT would now be a 409.
    await vi.waitFor(() => expect(annotations(brokerSecret())).toMatchObject({ [LEADER_ANNOTATION]: 'broker-b', [LEADER_TRANSITIONS_ANNOTATION]: '1' }), { timeout: 5_000, interval: 50 });
    expect((brokerSecret()!['metadata'] as { resourceVersion: string }).resourceVersion).not.toBe(rvOfA);
    // The new leader writes (here: rotated static credentials) within 30 s of the kill.
    api.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'after-failover' });
    await vi.waitFor(() => expect(auths(brokerSecret())['registry.example.com:5000']?.password).toBe('after-failover'), { timeout: 30_000, interval: 50 });
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    // No token lapsed: the ECR entries stayed in the Secret throughout, reused from it (no AWS call).
    expect(Object.keys(auths(brokerSecret()))).toHaveLength(3);
    expect(aws.calls.length).toBe(callsBefore);
    expect(api.get('leases', NS, 'node-registry-credentials-broker')!['spec']).toMatchObject({ holderIdentity: 'broker-b', leaseTransitions: 1 });
    await b.elector.stop();
    expect((api.get('leases', NS, 'node-registry-credentials-broker')!['spec'] as { holderIdentity?: string }).holderIdentity).toBe('');
  }, 60_000);
});

describe('broker: it keeps its own Secret (issue 25, item 2)', () => {
  const staticOnly = (): void => {
    api.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 's3cret-static' });
    api.putRegistry(NS, 'registry.example.com', { static: { userSecretRef: { name: 'static-creds', key: 'username' }, passwordSecretRef: { name: 'static-creds', key: 'password' } } });
  };
  /** What the broker owns in the Secret (not resourceVersion, not written-at). */
  const owned = (s: JsonObject | undefined): unknown => {
    const a = annotations(s);
    return { type: s?.['type'], labels: (s?.['metadata'] as { labels?: unknown } | undefined)?.labels, data: s?.['data'], expiries: a[EXPIRIES_ANNOTATION], fingerprints: a[FINGERPRINTS_ANNOTATION] };
  };
  /** Polls (10 ms) until the Secret says `want` again; the time it took. */
  const restoredWithin = async (want: unknown, since: number): Promise<number> => {
    await vi.waitFor(() => expect(owned(brokerSecret())).toEqual(want), { timeout: 10_000, interval: 10 });
    return Date.now() - since;
  };

  it('someone deletes the broker\'s Secret: it is back, whole, within seconds (no Registry change needed), logged once as deleted', async () => {
    staticOnly();
    await newBroker().start();
    await vi.waitFor(() => expect(auths(brokerSecret())['registry.example.com']?.password).toBe('s3cret-static'), { timeout: 10_000, interval: 20 });
    const want = owned(brokerSecret());
    const creates = api.count('create', 'secrets');
    api.delete('secrets', NS, SECRET);
    const ms = await restoredWithin(want, Date.now());
    console.log(`in-process API server: deleted Secret restored in ${ms} ms`);
    expect(ms).toBeLessThan(3_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(api.count('create', 'secrets') - creates).toBe(1);
    expect(logs.split('\n').filter((l) => l.includes('restored the registry credentials Secret'))).toEqual([expect.stringContaining('"reason":"deleted"')]);
    expect(logs).not.toContain('s3cret-static');
  }, 30_000);

  it('someone edits the broker\'s Secret by hand: it is put back whole within seconds, logged once as edited, and its own write does not echo', async () => {
    staticOnly();
    await newBroker().start();
    await vi.waitFor(() => expect(auths(brokerSecret())['registry.example.com']?.password).toBe('s3cret-static'), { timeout: 10_000, interval: 20 });
    const want = owned(brokerSecret());
    const current = brokerSecret()!;
    const meta = current['metadata'] as { annotations: Record<string, string> };
    const updates = api.count('update', 'secrets');
    api.put({
      ...current,
      metadata: { ...meta, annotations: { ...meta.annotations, [EXPIRIES_ANNOTATION]: '{"x":"y"}' } },
      data: { [DOCKERCONFIG_KEY]: Buffer.from('{"auths":{"registry.example.com":{"username":"mallory","password":"by-hand"}}}').toString('base64'), extra: 'eA==' },
    });
    const ms = await restoredWithin(want, Date.now());
    console.log(`in-process API server: hand-edited Secret restored in ${ms} ms`);
    expect(ms).toBeLessThan(3_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(api.count('update', 'secrets') - updates).toBe(1);
    expect(logs.split('\n').filter((l) => l.includes('restored the registry credentials Secret'))).toEqual([expect.stringContaining('"reason":"edited"')]);
    expect(logs).not.toContain('by-hand');
  }, 30_000);
});

describe('broker: every Lease request has a deadline (issue 25, item 4b)', () => {
  it('a standby whose Lease GET hangs on a half-open connection gets an error within the deadline, and campaigns again', async () => {
    // Accepts connections and never answers: a half-open connection, a hung API server.
    const sockets = new Set<Socket>();
    const server = createServer((s) => void sockets.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'hung', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: 'u', token: 'x' }],
        contexts: [{ name: 'hung', cluster: 'hung', user: 'u' }],
        currentContext: 'hung',
      });
      const store = await kubernetesLeaseStore(kc, NS, 'node-registry-credentials-broker', { timeoutMs: 500 });
      const startedAt = Date.now();
      const outcome = await Promise.race([
        store.get().then(
          () => 'answered',
          (err: unknown) => `failed: ${(err as { code?: string }).code ?? (err as Error).message}`,
        ),
        new Promise<string>((resolve) => setTimeout(() => resolve('still hanging after 5 s'), 5_000)),
      ]);
      expect(outcome).toBe('failed: ETIMEDOUT');
      expect(Date.now() - startedAt).toBeLessThan(2_000);
      // The election carries on: a second attempt is made on the next retry period.
      const before = sockets.size;
      const elector = new LeaderElector({ store, identity: 'broker-b', timing: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 }, onStartedLeading: () => {}, onStoppedLeading: () => {} });
      elector.start();
      await vi.waitFor(() => expect(sockets.size).toBeGreaterThanOrEqual(before + 2), { timeout: 5_000, interval: 50 });
      await elector.stop();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 20_000);
});
