// Issue 26 on the real API server: a real `broker` process (the broker's ServiceAccount with
// daemonset/'s Role and ClusterRole as shipped) resolves namespace-scoped registries. A Registry
// limited by a list, one by a label selector, a scoped ECR one (fake AWS) and an unscoped one:
// the node-wide .dockerconfigjson holds only the unscoped one, and no scoped password is anywhere
// in the Secret outside scoped.json; scoped.json holds the scoped ones with their namespaces as
// the API server resolved them. Labelling namespaces in a burst adds the new one within seconds,
// in one re-resolution; a selector the API server refuses and an unreadable list give
// NRC_E_SCOPE_INVALID in that Registry's status (and a Warning Event) while the others keep
// working; the static Secret's selectors are published in scoped.json `selectors`. With no
// scoped registry there is no scoped.json and no namespace watch at all.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DOCKERCONFIG_KEY } from '../../src/broker/secret-writer.ts';
import { NAMESPACE_SELECTOR_ANNOTATION, NAMESPACES_ANNOTATION, SCOPED_DATA_KEY, SCOPES_ANNOTATION, type ScopedDocument } from '../../src/model/scope.ts';
import { KubeClient } from '../../src/sources/kube-client.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { Admin, b64, controlPlane, NS, SECRET, waitFor } from './helpers.ts';

const info = controlPlane();
const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const BROKER = 'node-registry-credentials-broker';
const LISTED = 'listed.example.com';
const SELECTED = 'selected.example.com';
const OPEN = 'open.example.com';
const BAD_SELECTOR = 'badselector.example.com';
const BAD_LIST = 'badlist.example.com';
const ECR_HOST = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
const PASSWORDS = { [LISTED]: 'listed-password-0123456789', [SELECTED]: 'selected-password-0123456789', [OPEN]: 'open-password-0123456789', [BAD_SELECTOR]: 'badsel-password-0123456789', [BAD_LIST]: 'badlist-password-0123456789' } as const;
// This run's namespaces: the control plane outlives a file, and a namespace is only ever Terminating here.
const RUN = randomBytes(3).toString('hex');
const ns = (n: string): string => `sc-${RUN}-${n}`;
const TEAM = `team-${RUN}`;
const TIER = `tier-${RUN}`;

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

describe.skipIf(!info)('scoped registries: the broker on the real API server (issue 26)', () => {
  let admin: Admin;
  let client: KubeClient;
  let kubeconfig = '';
  const aws = new FakeAws({ region: 'us-east-2' });
  let awsUrl = '';
  let proc: { child: ChildProcess; log: string } | undefined;
  const created: string[] = [];

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
  });
  afterAll(async () => {
    await aws.stop();
    for (const n of created) await admin.core.deleteNamespace({ name: n }).catch(() => undefined);
  });

  function startBroker(): { child: ChildProcess; log: string } {
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_ENDPOINT_URL_ECR: awsUrl, AWS_ENDPOINT_URL_STS: awsUrl, NRC_LOG_LEVEL: 'info' };
    delete env['KUBERNETES_SERVICE_HOST'];
    const args = ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'broker', '--kubeconfig', kubeconfig, '--identity', 'broker-scopes', '--lease-duration-seconds', '3', '--renew-deadline-seconds', '2', '--retry-period-seconds', '0.5', '--listen-address', '127.0.0.1:0'];
    const p = { child: spawn(NODE, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] }), log: '' };
    p.child.stderr?.on('data', (d: Buffer) => (p.log += d.toString()));
    proc = p;
    return p;
  }

  async function namespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    await admin.core.createNamespace({ body: { metadata: { name, labels } } });
    created.push(name);
  }

  async function registry(name: string, spec: unknown, annotations: Record<string, string> = {}): Promise<void> {
    await admin.custom.createNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace: NS, plural: 'registries', body: { apiVersion: 'admin.okteto.com/v1', kind: 'Registry', metadata: { name, namespace: NS, annotations }, spec } });
  }

  async function staticRegistry(name: keyof typeof PASSWORDS, annotations: Record<string, string> = {}): Promise<void> {
    const secret = `creds-${name.split('.')[0]}`;
    await admin.putOpaqueSecret(NS, secret, { username: 'robot', password: PASSWORDS[name] });
    await registry(name, { static: { userSecretRef: { name: secret, key: 'username' }, passwordSecretRef: { name: secret, key: 'password' } } }, annotations);
  }

  /** The broker's Secret: its whole text as the API server returns it (data decoded), .dockerconfigjson's auths, scoped.json. */
  async function brokerSecret(): Promise<{ outside: string; auths: Record<string, { password: string }>; scoped: ScopedDocument | undefined; keys: string[] }> {
    const s = await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER }).catch(() => undefined);
    const data = s?.data ?? {};
    const decode = (k: string): string | undefined => (data[k] === undefined ? undefined : Buffer.from(data[k], 'base64').toString('utf8'));
    const dockerconfig = decode(DOCKERCONFIG_KEY);
    const scopedText = decode(SCOPED_DATA_KEY);
    // Everything a reader of the Secret sees except scoped.json: metadata (annotations), every other data key, decoded.
    const { [SCOPED_DATA_KEY]: _scoped, ...rest } = data;
    const outside = JSON.stringify({ ...s, data: rest }) + Object.keys(rest).map(decode).join('\n');
    return { outside, auths: dockerconfig ? (JSON.parse(dockerconfig) as { auths: Record<string, { password: string }> }).auths : {}, scoped: scopedText ? (JSON.parse(scopedText) as ScopedDocument) : undefined, keys: Object.keys(data).sort() };
  }

  const entry = (doc: ScopedDocument | undefined, key: string): ScopedDocument['entries'][number] | undefined => doc?.entries.find((e) => e.key === key);
  const condition = async (name: string, type: string): Promise<Condition | undefined> =>
    ((await admin.custom.getNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace: NS, plural: 'registries', name })) as { status?: { conditions?: Condition[] } }).status?.conditions?.find((c) => c.type === type);
  const passes = (log: string): number => log.split('\n').filter((l) => l.includes('resolved the namespace selectors again')).length;

  it('scoped credentials only in scoped.json, resolved by the API server; a burst of namespace changes is one re-resolution; bad scopes fail alone; the static Secret\'s selectors are published', async () => {
    await namespace(ns('a'));
    await namespace(ns('b'));
    await namespace(ns('x1'), { [TEAM]: 'x' });
    await namespace(ns('gold1'), { [TIER]: 'gold' });
    await staticRegistry(OPEN);
    await staticRegistry(LISTED, { [NAMESPACES_ANNOTATION]: `${ns('a')}, ${ns('b')}` });
    await staticRegistry(SELECTED, { [NAMESPACE_SELECTOR_ANNOTATION]: `${TEAM}=x` });
    // The API server refuses this selector (an unclosed set): only the API server decides.
    await staticRegistry(BAD_SELECTOR, { [NAMESPACE_SELECTOR_ANNOTATION]: `${TEAM} in (x` });
    await staticRegistry(BAD_LIST, { [NAMESPACES_ANNOTATION]: 'Not_A_Namespace' });
    await admin.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
    await registry(ECR_HOST, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } }, { [NAMESPACES_ANNOTATION]: ns('a') });
    // The platform's static Secret: its entries are the agents' to read; its selectors the broker's to resolve.
    await admin.core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: SECRET, annotations: { [SCOPES_ANNOTATION]: JSON.stringify({ 'static.example.com': { namespaceSelector: `${TIER}=gold` }, 'other.example.com': { namespaces: [ns('a')] } }) } },
        type: 'kubernetes.io/dockerconfigjson',
        data: { [DOCKERCONFIG_KEY]: b64(JSON.stringify({ auths: { 'static.example.com': { username: 'u', password: 'static-secret-password' } } })) },
      },
    });

    const p = startBroker();
    await waitFor(async () => {
      const s = await brokerSecret();
      expect(Object.keys(s.auths)).toEqual([OPEN]);
      expect(s.scoped?.entries.map((e) => e.key).sort()).toEqual([ECR_HOST, LISTED, SELECTED].sort());
    }, { timeout: 30_000, interval: 200 });

    const s = await brokerSecret();
    expect(s.keys).toEqual([DOCKERCONFIG_KEY, SCOPED_DATA_KEY]);
    expect(s.auths[OPEN]?.password).toBe(PASSWORDS[OPEN]);
    expect(entry(s.scoped, LISTED)).toMatchObject({ password: PASSWORDS[LISTED], namespaces: [ns('a'), ns('b')], source: `registry:${NS}/${LISTED}` });
    expect(entry(s.scoped, SELECTED)).toMatchObject({ password: PASSWORDS[SELECTED], namespaces: [ns('x1')] });
    const ecrToken = aws.issued.at(-1)?.password ?? '';
    expect(ecrToken).not.toBe('');
    expect(entry(s.scoped, ECR_HOST)).toMatchObject({ username: 'AWS', password: ecrToken, namespaces: [ns('a')], source: `registry:${NS}/${ECR_HOST}` });
    // The static Secret's selector, resolved for the agents (its explicit list needs no resolving).
    expect(s.scoped?.selectors).toEqual({ [`${TIER}=gold`]: [ns('gold1')] });
    // No scoped secret anywhere outside scoped.json (annotations included); a bad scope's nowhere at all.
    for (const secret of [PASSWORDS[LISTED], PASSWORDS[SELECTED], ecrToken]) expect(s.outside).not.toContain(secret);
    for (const secret of [PASSWORDS[BAD_SELECTOR], PASSWORDS[BAD_LIST]]) expect(JSON.stringify(s) + JSON.stringify(s.scoped)).not.toContain(secret);

    // Each bad scope fails its own Registry, as the other per-entry errors do; the rest is Resolved.
    await waitFor(async () => {
      for (const name of [BAD_SELECTOR, BAD_LIST]) expect(await condition(name, 'Resolved')).toMatchObject({ status: 'False', reason: 'NRC_E_SCOPE_INVALID' });
      for (const name of [OPEN, LISTED, SELECTED, ECR_HOST]) expect((await condition(name, 'Resolved'))?.status).toBe('True');
    }, { timeout: 20_000, interval: 200 });
    expect((await condition(BAD_SELECTOR, 'Resolved'))?.message).toContain('refused the namespace selector');
    expect((await condition(SELECTED, 'Resolved'))?.message).toContain(`Scoped to 1 namespace(s): ${ns('x1')}`);
    await waitFor(async () => {
      const events = (await admin.core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${BAD_SELECTOR}` })).items;
      expect(events.some((e) => e.type === 'Warning' && (e.message ?? '').includes('NRC_E_SCOPE_INVALID'))).toBe(true);
    });

    // A burst: twelve namespace changes within a moment, one of them a new team=x namespace.
    await waitFor(() => expect(passes(p.log)).toBeGreaterThanOrEqual(1)); // the watch's first list passes once
    await new Promise((r) => setTimeout(r, 1_500));
    const before = passes(p.log);
    const t0 = Date.now();
    await Promise.all([
      namespace(ns('x2'), { [TEAM]: 'x' }),
      ...Array.from({ length: 10 }, (_, i) => namespace(ns(`noise${i}`), { noise: String(i) })),
      client.request('PATCH', `/api/v1/namespaces/${ns('b')}`, { body: { metadata: { labels: { [TIER]: 'gold' } } }, contentType: 'application/merge-patch+json' }),
    ]);
    await waitFor(async () => {
      const now = await brokerSecret();
      expect(entry(now.scoped, SELECTED)?.namespaces).toEqual([ns('x1'), ns('x2')].sort());
      expect(now.scoped?.selectors).toEqual({ [`${TIER}=gold`]: [ns('b'), ns('gold1')].sort() });
    }, { timeout: 10_000, interval: 100 });
    expect(Date.now() - t0).toBeLessThan(8_000);
    await new Promise((r) => setTimeout(r, 2_000)); // any late pass would have run by now
    expect(passes(p.log) - before).toBe(1);
    // The scoped one is still out of the node-wide file, the unscoped one still in it.
    const after = await brokerSecret();
    expect(Object.keys(after.auths)).toEqual([OPEN]);
    expect(after.outside).not.toContain(PASSWORDS[SELECTED]);

    // Unscoping a Registry makes it node-wide again (an admin's explicit choice); no secret in the logs.
    await admin.custom.patchNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace: NS, plural: 'registries', name: LISTED, body: [{ op: 'remove', path: `/metadata/annotations/${NAMESPACES_ANNOTATION.replace('/', '~1')}` }] });
    await waitFor(async () => expect(Object.keys((await brokerSecret()).auths).sort()).toEqual([LISTED, OPEN]), { timeout: 10_000, interval: 100 });
    for (const secret of [...Object.values(PASSWORDS), ecrToken, 'static-secret-password']) expect(p.log).not.toContain(secret);

    // A new leader reuses the scoped ECR token from scoped.json, as it does an unscoped one: no AWS call.
    const issued = aws.issued.length;
    p.child.kill('SIGKILL');
    await admin.deleteLease(NS, BROKER);
    const next = startBroker();
    await waitFor(() => expect(next.log).toContain('reusing the cached ECR token'), { timeout: 20_000 });
    await waitFor(() => expect(next.log).toContain('resolved the namespace selectors again'), { timeout: 20_000 });
    expect(aws.issued.length).toBe(issued);
    expect(entry((await brokerSecret()).scoped, ECR_HOST)).toMatchObject({ password: ecrToken, namespaces: [ns('a')] });
  });

  it('nothing scoped: no scoped.json key and no namespace watch; the first selector starts the watch, the last one stops it', async () => {
    await staticRegistry(OPEN);
    const p = startBroker();
    await waitFor(async () => expect(Object.keys((await brokerSecret()).auths)).toEqual([OPEN]), { timeout: 30_000, interval: 200 });
    expect((await brokerSecret()).keys).toEqual([DOCKERCONFIG_KEY]);
    const address = /"address":"([^"]+)"/.exec(p.log)?.[1];
    expect(address).toBeDefined();
    const watch = async (): Promise<string | undefined> => {
      const text = await (await fetch(`http://${address}/metrics`)).text();
      return text.split('\n').find((l) => l.startsWith('nrc_watch_state{') && l.includes('watch="namespaces (metadata only)"') && / 1$/.test(l))?.replace(/.*state="([^"]+)".*/, '$1');
    };
    expect(await watch()).toBeUndefined();

    await namespace(ns('only'), { [TEAM]: 'only' });
    await staticRegistry(SELECTED, { [NAMESPACE_SELECTOR_ANNOTATION]: `${TEAM}=only` });
    await waitFor(async () => expect(entry((await brokerSecret()).scoped, SELECTED)?.namespaces).toEqual([ns('only')]), { timeout: 10_000, interval: 100 });
    await waitFor(async () => expect(await watch()).toBe('connected'));
    await admin.deleteRegistry(NS, SELECTED);
    await waitFor(async () => expect((await brokerSecret()).keys).toEqual([DOCKERCONFIG_KEY]), { timeout: 10_000, interval: 100 });
    await waitFor(async () => expect(await watch()).toBe('stopped'));
  });
});
