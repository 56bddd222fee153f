// Issue 24 on the real API server: a real `broker` process (the broker's ServiceAccount, its Role
// and ClusterRole as shipped in daemonset/) reports on each Registry. One Registry of each kind
// reaches Resolved=True and an Effective count built from the Nodes' annotations; a bad AWS key is
// Resolved=False with its code and an Event; deleting a referenced Secret shows up (and its
// recovery); `kubectl wait --for=condition=Resolved` returns; `kubectl get registries` renders the
// printer columns; and a platform-like writer's own condition and field (another field manager,
// server-side apply) survive every broker write. No secret in status, Events or logs.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_GENERATION_ANNOTATION, SINCE_ANNOTATION } from '../../src/broker/secret-writer.ts';
import { statusCommand } from '../../src/commands/status.ts';
import { KubeClient } from '../../src/sources/kube-client.ts';
import { ANNOTATION_BROKER_GENERATION, ANNOTATION_EFFECTIVE } from '../../src/report/node-annotations.ts';
import { kubectl } from '../support/control-plane.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { trustPolicy } from '../support/jwt.ts';
import { Admin, controlPlane, NS, waitFor } from './helpers.ts';

const info = controlPlane();
const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const BROKER = 'node-registry-credentials-broker';
const STATIC = 'registry.example.com';
const USER_HOST = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
const BAD_HOST = '210987654321.dkr.ecr.us-east-2.amazonaws.com';
const ROLE_HOST = '112233445566.dkr.ecr.us-east-2.amazonaws.com';
const AUDIENCE = 'okteto.example.com/us-east-2';
const ROLE = 'arn:aws:iam::112233445566:role/pull';
const PLATFORM_MANAGER = 'okteto-platform-test';
const STATIC_PASSWORD = 'static-password-0123456789-wxyz';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}
interface RegistryObject {
  metadata: { name: string; generation?: number; managedFields?: { manager?: string; fieldsV1?: unknown; subresource?: string }[] };
  status?: { conditions?: Condition[]; platformPhase?: string; nodeCredentials?: Record<string, unknown> };
}

describe.skipIf(!info)('Registry status on the real API server (issue 24)', () => {
  let admin: Admin;
  let client: KubeClient;
  let kubeconfig = '';
  const aws = new FakeAws({
    region: 'us-east-2',
    acceptWebIdentity: trustPolicy({ roleArn: ROLE, audience: AUDIENCE, sub: `system:serviceaccount:${NS}:${BROKER}` }),
  });
  let awsUrl = '';
  let proc: { child: ChildProcess; log: string } | undefined;
  const testNodes = ['status-node-a', 'status-node-b', 'status-node-c', 'status-node-d'];

  beforeAll(async () => {
    admin = new Admin(info!);
    client = KubeClient.fromKubeConfig(admin.kc);
    kubeconfig = (await admin.agent({ name: BROKER })).path;
    awsUrl = await aws.start();
  });
  afterEach(async () => {
    if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
    proc = undefined;
    await admin.deleteLease(NS, BROKER);
    await admin.clean();
    for (const n of testNodes) await admin.deleteNode(n);
  });
  afterAll(async () => {
    await aws.stop();
  });

  function startBroker(): { child: ChildProcess; log: string } {
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_ENDPOINT_URL_ECR: awsUrl, AWS_ENDPOINT_URL_STS: awsUrl, NRC_LOG_LEVEL: 'info' };
    delete env['KUBERNETES_SERVICE_HOST'];
    const args = ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'broker', '--kubeconfig', kubeconfig, '--identity', 'broker-status', '--lease-duration-seconds', '3', '--renew-deadline-seconds', '2', '--retry-period-seconds', '0.5'];
    const p = { child: spawn(NODE, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] }), log: '' };
    p.child.stderr?.on('data', (d: Buffer) => (p.log += d.toString()));
    proc = p;
    return p;
  }

  const registry = async (name: string): Promise<RegistryObject> =>
    (await admin.custom.getNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace: NS, plural: 'registries', name })) as RegistryObject;
  const condition = async (name: string, type: string): Promise<Condition | undefined> => (await registry(name)).status?.conditions?.find((c) => c.type === type);

  /** What the platform's controller would do: server-side apply of its own condition and field, as another field manager. */
  async function platformWrites(name: string): Promise<void> {
    await client.request('PATCH', `/apis/admin.okteto.com/v1/namespaces/${NS}/registries/${encodeURIComponent(name)}/status`, {
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: PLATFORM_MANAGER, force: true },
      body: {
        apiVersion: 'admin.okteto.com/v1',
        kind: 'Registry',
        metadata: { name, namespace: NS },
        status: { platformPhase: 'Synced', conditions: [{ type: 'Ready', status: 'True', reason: 'PlatformSynced', message: 'set by the platform', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
      },
    });
  }

  const events = async (name: string): Promise<{ reason: string; type: string; message: string }[]> =>
    (await admin.core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` })).items.map((e) => ({ reason: e.reason ?? '', type: e.type ?? '', message: e.message ?? '' }));

  it('each kind reaches its conditions; Effective counts the nodes; bad key, deleted Secret and recovery show up; kubectl wait and get work; the platform\'s condition survives every write', async () => {
    // Only this suite's nodes report a broker write counter (other suites' nodes may carry old ones).
    for (const n of (await admin.core.listNode()).items) {
      if (n.metadata?.annotations?.[ANNOTATION_BROKER_GENERATION] !== undefined) {
        await admin.core.patchNode({ name: n.metadata.name!, body: [{ op: 'remove', path: `/metadata/annotations/${ANNOTATION_BROKER_GENERATION.replace('/', '~1')}` }] });
      }
    }
    await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: STATIC_PASSWORD });
    await admin.putRegistry(NS, STATIC, { static: { port: 5000, userSecretRef: { name: 'static-creds', key: 'username' }, passwordSecretRef: { name: 'static-creds', key: 'password' } } });
    await admin.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
    await admin.putRegistry(NS, USER_HOST, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } });
    await admin.putOpaqueSecret(NS, 'bad-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': 'not-the-secret-key-at-all-0000' });
    await admin.putRegistry(NS, BAD_HOST, { awsIamUser: { accessKeyIDSecretRef: { name: 'bad-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'bad-keys', key: 'secret-access-key' } } });
    await admin.putRegistry(NS, ROLE_HOST, { awsIamRole: { audience: AUDIENCE, roleARN: ROLE } });
    const all = [STATIC, USER_HOST, BAD_HOST, ROLE_HOST];
    // The platform writes first: every broker write from here on must leave its condition and field.
    for (const r of all) await platformWrites(r);

    // Watch every state of every Registry (polling: a removed foreign condition would stay removed).
    const lost: string[] = [];
    let writes = 0;
    let watching = true;
    const seenVersions = new Set<string>();
    const watcher = (async () => {
      while (watching) {
        for (const r of all) {
          const o = (await registry(r).catch(() => undefined)) as (RegistryObject & { metadata: { resourceVersion?: string } }) | undefined;
          if (!o?.status) continue;
          const ours = o.status.conditions?.some((c) => c.type === 'Resolved');
          if (ours && !seenVersions.has(`${r}@${o.metadata.resourceVersion}`)) {
            seenVersions.add(`${r}@${o.metadata.resourceVersion}`);
            writes++;
          }
          const ready = o.status.conditions?.find((c) => c.type === 'Ready');
          if (ready?.status !== 'True' || ready.reason !== 'PlatformSynced' || o.status.platformPhase !== 'Synced') lost.push(`${r}@${o.metadata.resourceVersion}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const p = startBroker();
    try {
      // Resolved for each kind; the bad key with its code.
      await waitFor(async () => {
        for (const r of [STATIC, USER_HOST, ROLE_HOST]) expect(await condition(r, 'Resolved'), r).toMatchObject({ status: 'True', reason: 'Resolved' });
        expect(await condition(BAD_HOST, 'Resolved')).toMatchObject({ status: 'False', reason: expect.stringMatching(/^NRC_E_ECR_/) });
      }, { timeout: 40_000, interval: 200 });
      const badCode = (await condition(BAD_HOST, 'Resolved'))!.reason!;
      expect(badCode).toBe('NRC_E_ECR_AUTH_FAILED');
      await waitFor(async () => expect((await events(BAD_HOST)).filter((e) => e.type === 'Warning' && e.reason === 'ResolveFailed' && e.message.includes(badCode))).toHaveLength(1), { timeout: 15_000 });
      // kubectl describe tells the story.
      const described = await kubectl(info!, ['describe', 'registry', '-n', NS, BAD_HOST]);
      expect(described).toMatch(/Events:[\s\S]*Warning\s+ResolveFailed[\s\S]*NRC_E_ECR_AUTH_FAILED/);
      const reg = await registry(STATIC);
      expect(reg.status?.conditions?.find((c) => c.type === 'Resolved')?.observedGeneration).toBe(reg.metadata.generation);
      expect(reg.status?.nodeCredentials).toMatchObject({ type: 'static', host: `${STATIC}:5000`, hint: `****${STATIC_PASSWORD.slice(-4)}` });
      const user = (await registry(USER_HOST)).status?.nodeCredentials ?? {};
      expect(user).toMatchObject({ type: 'awsIamUser', host: USER_HOST });
      expect(Date.parse(String(user['expiresAt'])) - Date.now()).toBeGreaterThan(11 * 3600_000);
      expect(Date.parse(String(user['lastRefreshTime']))).toBeLessThanOrEqual(Date.now());
      expect((await registry(ROLE_HOST)).status?.nodeCredentials).toMatchObject({ type: 'awsIamRole', host: ROLE_HOST });

      // kubectl wait returns at once on a Resolved registry.
      const waited = await kubectl(info!, ['wait', '-n', NS, '--for=condition=Resolved', `registry/${STATIC}`, '--timeout=30s']);
      expect(waited).toContain('condition met');

      // Effective: nodes as their agents report them, against the broker's write counter.
      const secret = await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER });
      const generation = Number(secret.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]);
      expect(generation).toBeGreaterThan(0);
      expect(Object.keys(JSON.parse(secret.metadata?.annotations?.[SINCE_ANNOTATION] ?? '{}') as object).sort()).toEqual([`${STATIC}:5000`, ROLE_HOST, USER_HOST].sort());
      const now = Date.now();
      await admin.putNode('status-node-a', { [ANNOTATION_BROKER_GENERATION]: String(generation), [ANNOTATION_EFFECTIVE]: `effective ${new Date(now - 60_000).toISOString()} config.json+hosts.toml kubelet-read` });
      await admin.putNode('status-node-b', { [ANNOTATION_BROKER_GENERATION]: String(generation), [ANNOTATION_EFFECTIVE]: `pending ${new Date(now - 1_000).toISOString()} config.json cache-lifetime` });
      await admin.putNode('status-node-c', { [ANNOTATION_BROKER_GENERATION]: String(generation), [ANNOTATION_EFFECTIVE]: `pending ${new Date(now + 3600_000).toISOString()} config.json cache-lifetime` });
      await admin.putNode('status-node-d', { [ANNOTATION_EFFECTIVE]: `effective ${new Date(now).toISOString()} provider at-write` });
      const total = (await admin.core.listNode()).items.length;
      await waitFor(async () => {
        const s = (await registry(STATIC)).status;
        expect(s?.nodeCredentials).toMatchObject({ effective: `2/${total}`, effectiveNodes: 2, nodes: total });
        expect(s?.conditions?.find((c) => c.type === 'Effective')).toMatchObject({ status: 'False', reason: 'Propagating' });
      }, { timeout: 20_000, interval: 200 });
      expect((await condition(BAD_HOST, 'Effective'))?.status).toBe('False');

      // The printer columns, as an operator sees them.
      const table = await kubectl(info!, ['get', 'registries', '-n', NS]);
      const [header, ...rows] = table.trim().split('\n');
      expect(header!.split(/\s+/)).toEqual(['NAME', 'TYPE', 'HOST', 'RESOLVED', 'EFFECTIVE', 'EXPIRES', 'AGE']);
      // Cells by the header's column starts (kubectl leaves an absent string value blank).
      const starts = ['NAME', 'TYPE', 'HOST', 'RESOLVED', 'EFFECTIVE', 'EXPIRES', 'AGE'].map((h) => header!.indexOf(h));
      const row = (name: string): string[] => {
        const line = rows.find((r) => r.startsWith(`${name} `))!;
        return starts.map((at, i) => line.slice(at, starts[i + 1] ?? line.length).trim());
      };
      expect(row(STATIC).slice(0, 6)).toEqual([STATIC, 'static', `${STATIC}:5000`, 'True', `2/${total}`, '']);
      expect(row(USER_HOST).slice(0, 5)).toEqual([USER_HOST, 'awsIamUser', USER_HOST, 'True', `2/${total}`]);
      expect(Date.parse(row(USER_HOST)[5]!)).toBeGreaterThan(Date.now());
      expect(row(BAD_HOST).slice(0, 4)).toEqual([BAD_HOST, 'awsIamUser', BAD_HOST, 'False']);
      console.log(`kubectl get registries on the real API server:\n${table}`);

      // Deleting a referenced Secret shows up, with an Event; putting it back recovers, with another.
      const resolvedSince = (await condition(STATIC, 'Resolved'))!.lastTransitionTime;
      await admin.deleteSecret(NS, 'static-creds');
      await waitFor(async () => expect(await condition(STATIC, 'Resolved')).toMatchObject({ status: 'False', reason: 'NRC_E_REGISTRY_SECRET_MISSING' }), { timeout: 20_000, interval: 200 });
      await waitFor(async () => expect((await events(STATIC)).some((e) => e.type === 'Warning' && e.message.includes('NRC_E_REGISTRY_SECRET_MISSING'))).toBe(true));
      await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: STATIC_PASSWORD });
      await waitFor(async () => expect(await condition(STATIC, 'Resolved')).toMatchObject({ status: 'True' }), { timeout: 20_000, interval: 200 });
      await waitFor(async () => expect((await events(STATIC)).some((e) => e.type === 'Normal' && e.reason === 'Resolved')).toBe(true));
      expect((await condition(STATIC, 'Resolved'))!.lastTransitionTime! >= resolvedSince!).toBe(true);

      // `status` shows the same figures per Registry, with the masked hint.
      let out = '';
      await statusCommand({ kubeconfig: info!.adminKubeconfig, 'behind-after': '10m', 'expiry-warning': '1h', output: 'text' }, { out: (t) => (out += t), err: () => undefined });
      const line = (name: string): string => out.split('\n').find((l) => l.includes(` ${name} `))!;
      expect(out).toMatch(/REGISTRY\s+TYPE\s+HOST\s+RESOLVED\s+EFFECTIVE\s+EXPIRES\s+REFRESHED\s+HINT/);
      // The same figures as the Registry's status (after the Secret came back, the nodes have not applied it yet: 0/N).
      const effectiveNow = String((await registry(STATIC)).status?.nodeCredentials?.['effective']);
      expect(effectiveNow).toMatch(new RegExp(`^\\d+/${total}$`));
      expect(line(STATIC)).toMatch(new RegExp(`static\\s+${STATIC}:5000\\s+True\\s+${effectiveNow}\\s+-\\s+\\S+ ago\\s+\\*\\*\\*\\*${STATIC_PASSWORD.slice(-4)}$`));
      expect(line(BAD_HOST)).toMatch(/^! .*False \(NRC_E_ECR_AUTH_FAILED\)/);
      expect(line(USER_HOST)).toMatch(new RegExp(`True\\s+2/${total}\\s+in 1[12]h`));
      let json = '';
      await statusCommand({ kubeconfig: info!.adminKubeconfig, 'behind-after': '10m', 'expiry-warning': '1h', output: 'json' }, { out: (t) => (json += t), err: () => undefined });
      const views = (JSON.parse(json) as { registries: { name: string; hint?: string; effective?: string }[] }).registries;
      expect(views.find((v) => v.name === STATIC)).toMatchObject({ hint: `****${STATIC_PASSWORD.slice(-4)}`, effective: effectiveNow });
      console.log(`status on the real API server:\n${out}`);
      expect(out + json).not.toContain(STATIC_PASSWORD);

      // The platform writes again after the broker: both keep their own.
      await platformWrites(STATIC);
      await new Promise((r) => setTimeout(r, 7_000));

      // A writer that replaces the whole status (an update, not an apply) wipes the broker's part:
      // the broker puts it back, and only its part.
      const whole = (await registry(ROLE_HOST)) as RegistryObject & { metadata: { resourceVersion: string } };
      await client.request('PUT', `/apis/admin.okteto.com/v1/namespaces/${NS}/registries/${encodeURIComponent(ROLE_HOST)}/status`, {
        query: { fieldManager: PLATFORM_MANAGER },
        body: { ...whole, status: { platformPhase: 'Synced', conditions: whole.status?.conditions?.filter((c) => c.type === 'Ready') } },
      });
      expect((await condition(ROLE_HOST, 'Resolved'))).toBeUndefined();
      await waitFor(async () => {
        expect(await condition(ROLE_HOST, 'Resolved')).toMatchObject({ status: 'True' });
        expect((await registry(ROLE_HOST)).status?.nodeCredentials).toMatchObject({ type: 'awsIamRole' });
      }, { timeout: 20_000, interval: 200 });
    } finally {
      watching = false;
      await watcher;
    }
    expect(lost).toEqual([]);
    expect(writes).toBeGreaterThan(4);
    // Field ownership: the broker's manager owns its conditions and field only; the platform's manager keeps Ready.
    const final = await registry(STATIC);
    const managers = (final.metadata.managedFields ?? []).filter((m) => m.subresource === 'status');
    const broker = JSON.stringify(managers.find((m) => m.manager === BROKER)?.fieldsV1);
    const platform = JSON.stringify(managers.find((m) => m.manager === PLATFORM_MANAGER)?.fieldsV1);
    expect(broker).toContain('k:{\\"type\\":\\"Resolved\\"}');
    expect(broker).toContain('f:nodeCredentials');
    expect(broker).not.toContain('Ready');
    expect(broker).not.toContain('platformPhase');
    expect(platform).toContain('k:{\\"type\\":\\"Ready\\"}');
    expect(final.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'PlatformSynced', lastTransitionTime: '2026-01-01T00:00:00Z' });

    // No secret anywhere an operator looks.
    const everything = JSON.stringify(await Promise.all(all.map(registry))) + JSON.stringify(await Promise.all(all.map(events))) + p.log;
    for (const s of [STATIC_PASSWORD, TEST_SECRET_ACCESS_KEY, 'not-the-secret-key-at-all-0000', ...aws.issued.map((t) => t.password)]) expect(everything).not.toContain(s);
    expect(p.log).not.toContain('NRC_E_K8S_FORBIDDEN');
    expect(p.log).not.toContain('NRC_E_REGISTRY_STATUS_FAILED');
  }, 120_000);
});
