// Leader election and failover of two real `broker` processes on the real API server: each runs as
// the broker's ServiceAccount with daemonset/base/broker.yaml's Role as shipped, campaigning on a
// real coordination.k8s.io Lease. The leader resolves Registry resources (static, awsIamUser and
// awsIamRole through the SigV4-checking fake AWS endpoint) into its Secret; SIGKILL the leader (no
// release), and the standby takes the Lease and writes within 30 s, while the Secret never loses
// an ECR token (the new leader reuses them from the Secret: no AWS call). The leader restores its
// Secret, deleted or edited by hand, within seconds; a leader paused (SIGSTOP) past its lease
// never writes again on resume and exits 1.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DOCKERCONFIG_KEY, EXPIRIES_ANNOTATION, FINGERPRINTS_ANNOTATION, LEADER_ANNOTATION, LEADER_TRANSITIONS_ANNOTATION } from '../../src/broker/secret-writer.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { trustPolicy } from '../support/jwt.ts';
import { Admin, controlPlane, NS, waitFor } from './helpers.ts';

const info = controlPlane();
const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const BROKER = 'node-registry-credentials-broker';
const USER_HOST = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
const ROLE_HOST = '112233445566.dkr.ecr.us-east-2.amazonaws.com';
const AUDIENCE = 'okteto.example.com/us-east-2';
const ROLE = 'arn:aws:iam::112233445566:role/pull';
const staticSpec = (secret: string): unknown => ({ static: { userSecretRef: { name: secret, key: 'username' }, passwordSecretRef: { name: secret, key: 'password' } } });

describe.skipIf(!info)('broker leader election on the real API server (two broker processes)', () => {
  let admin: Admin;
  let kubeconfig: string;
  const aws = new FakeAws({
    region: 'us-east-2',
    acceptWebIdentity: trustPolicy({ roleArn: ROLE, audience: AUDIENCE, sub: `system:serviceaccount:${NS}:${BROKER}` }),
  });
  let awsUrl = '';
  const procs: { identity: string; child: ChildProcess; log: string }[] = [];

  beforeAll(async () => {
    admin = new Admin(info!);
    kubeconfig = (await admin.agent({ name: BROKER })).path;
    awsUrl = await aws.start();
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await admin.deleteLease(NS, BROKER);
    await admin.clean();
  });
  afterAll(async () => {
    await aws.stop();
  });

  function broker(identity: string): { identity: string; child: ChildProcess; log: string } {
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_ENDPOINT_URL_ECR: awsUrl, AWS_ENDPOINT_URL_STS: awsUrl, NRC_LOG_LEVEL: 'info' };
    delete env['KUBERNETES_SERVICE_HOST'];
    const args = ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'broker', '--kubeconfig', kubeconfig, '--identity', identity, '--lease-duration-seconds', '3', '--renew-deadline-seconds', '2', '--retry-period-seconds', '0.5'];
    const p = { identity, child: spawn(NODE, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] }), log: '' };
    p.child.stderr?.on('data', (d: Buffer) => (p.log += d.toString()));
    procs.push(p);
    return p;
  }
  const secret = async (): Promise<{ auths: Record<string, { username: string; password: string }>; expiries: Record<string, string> }> => {
    const s = await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER }).catch(() => undefined);
    const raw = s?.data?.[DOCKERCONFIG_KEY];
    const auths = raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as { auths: Record<string, { username: string; password: string }> }).auths : {};
    const expiries = JSON.parse(s?.metadata?.annotations?.[EXPIRIES_ANNOTATION] ?? '{}') as Record<string, string>;
    return { auths, expiries };
  };

  it('kill the leader: the standby takes the real Lease and writes within 30 s; no ECR token lapses meanwhile', async () => {
    await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'before' });
    await admin.putRegistry(NS, 'registry.example.com', staticSpec('static-creds'));
    await admin.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
    await admin.putRegistry(NS, USER_HOST, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } });
    await admin.putRegistry(NS, ROLE_HOST, { awsIamRole: { audience: AUDIENCE, roleARN: ROLE } });

    const a = broker('broker-a');
    await waitFor(async () => expect((await admin.lease(NS, BROKER))?.holderIdentity).toBe('broker-a'), { timeout: 20_000 });
    const b = broker('broker-b');
    await waitFor(async () => expect(Object.keys((await secret()).auths).sort()).toEqual([ROLE_HOST, USER_HOST, 'registry.example.com'].sort()), { timeout: 20_000, interval: 100 });
    await waitFor(() => expect(b.log).toContain('campaigning for the Lease'), { timeout: 20_000 });
    // The standby stays up, campaigning (a standby that exits never takes over).
    await new Promise((r) => setTimeout(r, 2000));
    expect(b.child.exitCode, b.log).toBeNull();
    const lease = (await admin.lease(NS, BROKER))!;
    expect(lease).toMatchObject({ holderIdentity: 'broker-a', leaseDurationSeconds: 3 });
    const transitions = lease.leaseTransitions ?? 0;
    const awsCalls = aws.calls.length;
    const tokens = (await secret()).auths;

    // SIGKILL: no release, no more renewals. Watch the Secret as the nodes see it until the standby writes.
    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    const lapses: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const s = await secret();
        for (const host of [USER_HOST, ROLE_HOST]) {
          if (!s.auths[host]?.password) lapses.push(`${host} missing at +${Date.now() - killedAt} ms`);
          else if (!(Date.parse(s.expiries[host] ?? '') > Date.now())) lapses.push(`${host} expired at +${Date.now() - killedAt} ms`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await waitFor(async () => expect((await admin.lease(NS, BROKER))?.holderIdentity).toBe('broker-b'), { timeout: 30_000, interval: 100 });
      // The new leader writes (rotated static credentials) within 30 s of the kill.
      await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'after-failover' });
      await waitFor(async () => expect((await secret()).auths['registry.example.com']?.password).toBe('after-failover'), { timeout: 30_000, interval: 100 });
      expect(Date.now() - killedAt).toBeLessThan(30_000);
    } finally {
      watching = false;
      await watcher;
    }
    expect(lapses).toEqual([]);
    // The ECR tokens are the ones broker-a wrote, reused by broker-b from the Secret: no AWS call.
    const after = (await secret()).auths;
    for (const host of [USER_HOST, ROLE_HOST]) expect(after[host]?.password).toBe(tokens[host]?.password);
    expect(aws.calls.length).toBe(awsCalls);
    expect((await admin.lease(NS, BROKER))?.leaseTransitions).toBe(transitions + 1);
    expect(b.child.exitCode).toBeNull();
    for (const s of [TEST_SECRET_ACCESS_KEY, 'after-failover', ...aws.issued.map((t) => t.password)]) {
      expect(a.log).not.toContain(s);
      expect(b.log).not.toContain(s);
    }
    expect(a.log + b.log).not.toContain('NRC_E_K8S_FORBIDDEN');

    // SIGTERM on the new leader releases the real Lease at once.
    const exited = new Promise<number | null>((resolve) => b.child.once('exit', (code) => resolve(code)));
    b.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect((await admin.lease(NS, BROKER))?.holderIdentity ?? '').toBe('');
  }, 90_000);

  /** What the broker owns in its Secret, as the nodes read it (not resourceVersion, not written-at). */
  const owned = async (): Promise<unknown> => {
    const s = await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER }).catch(() => undefined);
    if (!s) return undefined;
    const a = s.metadata?.annotations ?? {};
    return { type: s.type, data: s.data, expiries: a[EXPIRIES_ANNOTATION], fingerprints: a[FINGERPRINTS_ANNOTATION], leader: a[LEADER_ANNOTATION], transitions: a[LEADER_TRANSITIONS_ANNOTATION] };
  };

  it('delete the broker\'s Secret, then edit it by hand: the leader restores it whole within seconds each time, logging the reason once', async () => {
    await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'restore-me' });
    await admin.putRegistry(NS, 'registry.example.com', staticSpec('static-creds'));
    const a = broker('broker-a');
    await waitFor(async () => expect((await secret()).auths['registry.example.com']?.password).toBe('restore-me'), { timeout: 20_000, interval: 100 });
    const want = await owned();
    expect(want).toMatchObject({ leader: 'broker-a' });

    await admin.deleteSecret(NS, BROKER);
    const deletedAt = Date.now();
    await waitFor(async () => expect(await owned()).toEqual(want), { timeout: 10_000, interval: 20 });
    const deleteMs = Date.now() - deletedAt;

    const current = await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER });
    await admin.core.replaceNamespacedSecret({
      namespace: NS,
      name: BROKER,
      body: { ...current, data: { [DOCKERCONFIG_KEY]: Buffer.from('{"auths":{}}').toString('base64'), extra: Buffer.from('by-hand').toString('base64') } },
    });
    const editedAt = Date.now();
    await waitFor(async () => expect(await owned()).toEqual(want), { timeout: 10_000, interval: 20 });
    const editMs = Date.now() - editedAt;
    console.log(`real API server: deleted Secret restored in ${deleteMs} ms, hand-edited Secret restored in ${editMs} ms`);
    expect(deleteMs).toBeLessThan(5_000);
    expect(editMs).toBeLessThan(5_000);
    await waitFor(() => expect(a.log.split('\n').filter((l) => l.includes('restored the registry credentials Secret'))).toHaveLength(2), { timeout: 5_000 });
    const repairs = a.log.split('\n').filter((l) => l.includes('restored the registry credentials Secret'));
    expect(repairs[0]).toContain('"reason":"deleted"');
    expect(repairs[1]).toContain('"reason":"edited"');
    expect(a.log).not.toContain('restore-me');
    expect(a.log).not.toContain('NRC_E_K8S_FORBIDDEN');
    expect(a.child.exitCode).toBeNull();
  }, 60_000);

  it('SIGSTOP the leader past its lease, SIGCONT it: it never writes its stale view over the new leader\'s Secret, and exits 1', async () => {
    await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'before-pause' });
    await admin.putRegistry(NS, 'registry.example.com', staticSpec('static-creds'));
    const a = broker('broker-a');
    await waitFor(async () => expect((await owned()) as { leader?: string } | undefined).toMatchObject({ leader: 'broker-a' }), { timeout: 20_000, interval: 100 });
    const b = broker('broker-b');
    await waitFor(() => expect(b.log).toContain('campaigning for the Lease'), { timeout: 20_000 });
    const exited = new Promise<number | null>((resolve) => a.child.once('exit', (code) => resolve(code)));
    a.child.kill('SIGSTOP');
    // The Registry changes while broker-a is frozen: broker-a's view is now stale.
    await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 'during-pause' });
    await waitFor(async () => expect((await admin.lease(NS, BROKER))?.holderIdentity).toBe('broker-b'), { timeout: 30_000, interval: 100 });
    await waitFor(async () => expect((await secret()).auths['registry.example.com']?.password).toBe('during-pause'), { timeout: 20_000, interval: 100 });
    // From here on, watch every state of the Secret: broker-a's stamp must never come back.
    const seen: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const o = (await owned()) as { leader?: string } | undefined;
        if (o?.leader !== 'broker-b') seen.push(String(o?.leader));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      a.child.kill('SIGCONT');
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running 15 s after SIGCONT'), 15_000))]);
      expect(code, a.log).toBe(1);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      watching = false;
      await watcher;
    }
    expect(seen).toEqual([]);
    expect((await secret()).auths['registry.example.com']?.password).toBe('during-pause');
    expect(a.log).toContain('NRC_E_BROKER_LEADERSHIP_LOST');
    expect(b.child.exitCode).toBeNull();
  }, 90_000);
});
