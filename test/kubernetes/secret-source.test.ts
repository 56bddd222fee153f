// The Secret watch against the real kube-apiserver (shared control plane), authenticated as the
// DaemonSet's ServiceAccount with only daemonset/'s RBAC. What the real server cannot be made to
// do (stalled watches, undecodable stored data) stays in test/integration/kubernetes-secret-source.test.ts.
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import type { WatchStateEvent, WatchTuning } from '../../src/sources/kubernetes/list-watch.ts';
import { KubernetesSecretSource } from '../../src/sources/kubernetes/secret-source.ts';
import { Admin, auths, b64, controlPlane, NS, SECRET, waitFor } from './helpers.ts';

const FAST: WatchTuning = { initialBackoffMs: 20, maxBackoffMs: 100, watchdogMs: 60_000, watchTimeoutSeconds: 300 };
const info = controlPlane();

describe.skipIf(!info)('Kubernetes Secret source against the real API server, as the DaemonSet\'s ServiceAccount', () => {
  let admin: Admin;
  let agentKc: KubeConfig;
  let source: KubernetesSecretSource | undefined;
  let snapshots: SourceSnapshot[];
  let states: WatchStateEvent[];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    admin = new Admin(info!);
    agentKc = (await admin.agent()).kc;
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    for (const c of cleanups.splice(0)) await c();
    await admin.clean();
  });
  afterAll(async () => {
    await admin.clean();
  });

  async function startSource(tuning: WatchTuning = FAST, opts: { name?: string; namespace?: string; absentGraceMs?: number } = {}): Promise<void> {
    snapshots = [];
    states = [];
    source = new KubernetesSecretSource({ kubeConfig: agentKc, tuning, onState: (e) => states.push(e), ...opts });
    await source.start((s) => snapshots.push(s));
  }
  const last = (): SourceSnapshot | undefined => snapshots.at(-1);
  const hosts = (s: SourceSnapshot | undefined): string[] => (s?.credentials ?? []).map((c) => `${c.host}=${c.username}:${c.password}`).sort();

  it('emits the credentials of the Secret and follows add, update, delete and re-create', async () => {
    await startSource();
    await waitFor(() => expect(last()).toMatchObject({ ok: true, credentials: [] }));

    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    expect(last()?.source).toBe(`secret:${NS}/${SECRET}`);

    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u2', 'p2'], 'other.example.com:5000': ['o', 'q'] }));
    await waitFor(() => expect(hosts(last())).toEqual(['other.example.com:5000=o:q', 'reg.example.com=u2:p2']));

    await admin.deleteSecret(NS, SECRET);
    await waitFor(() => expect(last()).toMatchObject({ ok: true, credentials: [], errors: [] }));

    // Deleted and created again under the same name: a new object (new uid), same watch.
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u3', 'p3'] }));
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u3:p3']));
    expect(states.filter((s) => s.state === 'relisting')).toHaveLength(1);
  });

  it('the broker\'s Secret deleted by mistake: the node keeps its credentials through the grace period, and drops them only after it', async () => {
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource(FAST, { absentGraceMs: 3000 });
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));

    // Deleted, then written again within the grace (the broker repairing it): no snapshot ever
    // said "no credentials", so the node never removed them.
    await admin.deleteSecret(NS, SECRET);
    await waitFor(() => expect(last()).toMatchObject({ ok: false, errors: [{ code: 'NRC_E_K8S_SECRET_MISSING' }] }));
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    expect(snapshots.filter((s) => s.ok && s.credentials.length === 0)).toEqual([]);

    // Deleted and not restored: "no credentials" once the grace has passed, not before.
    await admin.deleteSecret(NS, SECRET);
    const deletedAt = Date.now();
    await waitFor(() => expect(last()).toMatchObject({ ok: true, credentials: [] }), { timeout: 10_000 });
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(2900);
  });

  it('without a grace period (the platform\'s Secret), a deleted Secret means no credentials at once', async () => {
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    await admin.deleteSecret(NS, SECRET);
    await waitFor(() => expect(last()).toMatchObject({ ok: true, credentials: [], errors: [] }));
    expect(snapshots.some((s) => !s.ok)).toBe(false);
  });

  it('watches only its Secret by name: RBAC allows nothing else, other Secrets do not reach it', async () => {
    await admin.putOpaqueSecret(NS, 'unrelated', { password: 'x' });
    await startSource();
    await waitFor(() => expect(states.at(-1)?.state).toBe('connected'));
    await waitFor(() => expect(snapshots.length).toBe(1));
    await admin.putOpaqueSecret(NS, 'unrelated', { password: 'y' });
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'a.example.com': ['u', 'p'] }));
    await waitFor(() => expect(hosts(last())).toEqual(['a.example.com=u:p']));
    expect(snapshots.length).toBe(2);
    // The same identity cannot list the namespace's Secrets without the name selector.
    const { CoreV1Api } = await import('@kubernetes/client-node');
    await expect(agentKc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: NS })).rejects.toMatchObject({ code: 403 });
    await expect(agentKc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace: NS, name: 'unrelated' })).rejects.toMatchObject({ code: 403 });
  });

  it('reads a legacy .dockercfg Secret', async () => {
    await admin.putSecret(NS, { type: 'kubernetes.io/dockercfg', name: SECRET, data: { '.dockercfg': b64(JSON.stringify({ 'old.example.com': { username: 'u', password: 'p' } })) } });
    await startSource();
    await waitFor(() => expect(hosts(last())).toEqual(['old.example.com=u:p']));
  });

  it('the API server itself refuses a dockerconfigjson Secret that is not JSON; an Opaque Secret with bad content is reported, never leaked', async () => {
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));

    // Real apiserver validation (the fake stores anything): type kubernetes.io/dockerconfigjson must hold JSON.
    await expect(admin.putDockerConfigSecret(NS, SECRET, '{"auths": {"reg.example.com": {"password": "hunter2-secret"')).rejects.toMatchObject({ code: 422 });

    // An Opaque Secret is not validated: the agent must catch what the API server lets through.
    await admin.deleteSecret(NS, SECRET);
    await admin.putSecret(NS, { type: 'Opaque', name: SECRET, data: { '.dockerconfigjson': b64('{"auths": {"reg.example.com": {"password": "hunter2-secret"') } });
    await waitFor(() => expect(last()?.errors.map((e) => e.code)).toEqual(['NRC_E_INPUT_NOT_JSON']));
    expect(last()?.ok).toBe(false);
    expect(JSON.stringify(last()?.errors)).not.toContain('hunter2');

    await admin.putSecret(NS, { type: 'Opaque', name: SECRET, data: { password: b64('hunter2') } });
    await waitFor(() => expect(last()?.errors.map((e) => e.code)).toEqual(['NRC_E_K8S_SECRET_NOT_DOCKERCONFIG']));
    expect(last()?.ok).toBe(false);
  });

  it('resumes after the server ends each watch (timeoutSeconds) without relisting', async () => {
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    // timeoutSeconds 1..2: the real server closes each watch; the source resumes from its resourceVersion.
    await startSource({ ...FAST, watchTimeoutSeconds: 1, random: () => 0 });
    await waitFor(() => expect(source?.watchRestarts).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u5', 'p5'] }));
    await waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u5:p5']));
    expect(states.filter((s) => s.state === 'relisting')).toHaveLength(1);
    expect(states.filter((s) => s.state === 'disconnected')).toEqual([]);
  });

  it('a Secret name the Role does not grant: 403 with the exact rule, recovering once an operator adds it', async () => {
    await admin.putDockerConfigSecret(NS, 'pull-creds', auths({ 'x.example.com': ['u', 'p'] }));
    await startSource(FAST, { name: 'pull-creds' });
    await waitFor(() => expect(last()?.ok).toBe(false));
    const err = last()?.errors[0];
    expect(err?.code).toBe('NRC_E_K8S_FORBIDDEN');
    expect(err?.message).toContain('resources: ["secrets"], resourceNames: ["pull-creds"], verbs: ["get", "list", "watch"]');
    expect(err?.message).toContain('namespace "okteto"');
    expect(states.map((s) => s.state)).toContain('forbidden');

    cleanups.push(await admin.grantSecrets(NS, ['pull-creds']));
    await waitFor(() => expect(hosts(last())).toEqual(['x.example.com=u:p']), { timeout: 10_000 });
    expect(last()?.source).toBe('secret:okteto/pull-creds');
  });

  it('gives up after the configured number of consecutive 403s', async () => {
    await startSource({ ...FAST, maxConsecutiveFailures: 3 }, { name: 'not-granted' });
    await waitFor(() => expect(states.at(-1)?.state).toBe('gave-up'));
    expect(states.filter((s) => s.state === 'forbidden')).toHaveLength(2);
  });

  it('watches a Secret in another namespace once a Role there grants it', async () => {
    await admin.ensureNamespace('infra');
    await admin.putDockerConfigSecret('infra', 'pull-creds', auths({ 'x.example.com': ['u', 'p'] }));
    cleanups.push(async () => admin.clean('infra'));
    cleanups.push(await admin.grantSecrets('infra', ['pull-creds']));
    await startSource(FAST, { name: 'pull-creds', namespace: 'infra' });
    await waitFor(() => expect(hosts(last())).toEqual(['x.example.com=u:p']));
    expect(last()?.source).toBe('secret:infra/pull-creds');
  });
});
