import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import { KubernetesSecretSource } from '../../src/sources/kubernetes/secret-source.ts';
import type { WatchStateEvent, WatchTuning } from '../../src/sources/kubernetes/list-watch.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';

const NS = 'okteto';
const NAME = 'okteto-dockerconfig-static';
const FAST: WatchTuning = { initialBackoffMs: 20, maxBackoffMs: 100, watchdogMs: 60_000, watchTimeoutSeconds: 300 };

function auths(entries: Record<string, [string, string]>): unknown {
  const out: Record<string, { username: string; password: string }> = {};
  for (const [host, [username, password]] of Object.entries(entries)) out[host] = { username, password };
  return { auths: out };
}

describe('Kubernetes Secret source against a fake API server', () => {
  let api: FakeApiServer;
  let source: KubernetesSecretSource | undefined;
  let snapshots: SourceSnapshot[];
  let states: WatchStateEvent[];

  beforeEach(async () => {
    api = new FakeApiServer({ bookmarkIntervalMs: 0 });
    await api.start();
    snapshots = [];
    states = [];
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await api.stop();
  });

  async function startSource(tuning: WatchTuning = FAST, opts: { name?: string; namespace?: string } = {}): Promise<void> {
    source = new KubernetesSecretSource({ kubeConfig: api.kubeConfig(), tuning, onState: (e) => states.push(e), ...opts });
    await source.start((s) => snapshots.push(s));
  }
  const last = (): SourceSnapshot | undefined => snapshots.at(-1);
  const hosts = (s: SourceSnapshot | undefined): string[] => (s?.credentials ?? []).map((c) => `${c.host}=${c.username}:${c.password}`).sort();

  it('emits the credentials of the Secret and follows add, update and delete', async () => {
    await startSource();
    await vi.waitFor(() => expect(last()).toMatchObject({ ok: true, credentials: [] }));

    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    expect(last()?.source).toBe(`secret:${NS}/${NAME}`);

    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u2', 'p2'], 'other.example.com:5000': ['o', 'q'] }));
    await vi.waitFor(() => expect(hosts(last())).toEqual(['other.example.com:5000=o:q', 'reg.example.com=u2:p2']));

    api.delete('secrets', NS, NAME);
    await vi.waitFor(() => expect(last()).toMatchObject({ ok: true, credentials: [], errors: [] }));
  });

  it('watches only its Secret by name (other Secrets in the namespace do not reach it)', async () => {
    api.putOpaqueSecret(NS, 'unrelated', { password: 'x' });
    await startSource();
    await vi.waitFor(() => expect(api.openWatches).toBe(1));
    const before = snapshots.length;
    api.putOpaqueSecret(NS, 'unrelated', { password: 'y' });
    api.putDockerConfigSecret(NS, NAME, auths({ 'a.example.com': ['u', 'p'] }));
    await vi.waitFor(() => expect(hosts(last())).toEqual(['a.example.com=u:p']));
    expect(snapshots.length).toBe(before + 1);
    expect(api.requests.filter((r) => r.startsWith('list') || r.startsWith('watch')).every((r) => r.endsWith(`/${NAME}`))).toBe(true);
  });

  it('reads a legacy .dockercfg Secret', async () => {
    api.put({ kind: 'Secret', type: 'kubernetes.io/dockercfg', metadata: { name: NAME, namespace: NS }, data: { '.dockercfg': Buffer.from(JSON.stringify({ 'old.example.com': { username: 'u', password: 'p' } })).toString('base64') } });
    await startSource();
    await vi.waitFor(() => expect(hosts(last())).toEqual(['old.example.com=u:p']));
  });

  it('reports a malformed Secret as ok:false with coded errors, without any secret in them', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));

    api.putDockerConfigSecret(NS, NAME, '{"auths": {"reg.example.com": {"password": "hunter2-secret"');
    await vi.waitFor(() => expect(last()?.ok).toBe(false));
    expect(last()?.errors.map((e) => e.code)).toEqual(['NRC_E_INPUT_NOT_JSON']);
    expect(JSON.stringify(last()?.errors)).not.toContain('hunter2');

    api.put({ kind: 'Secret', type: 'Opaque', metadata: { name: NAME, namespace: NS }, data: { password: 'aHVudGVyMg==' } });
    await vi.waitFor(() => expect(last()?.errors.map((e) => e.code)).toEqual(['NRC_E_K8S_SECRET_NOT_DOCKERCONFIG']));
    expect(last()?.ok).toBe(false);

    api.put({ kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: NAME, namespace: NS }, data: { '.dockerconfigjson': '%%%not base64%%%' } });
    await vi.waitFor(() => expect(last()?.errors[0]?.message).toContain('not base64'));
    expect(last()?.ok).toBe(false);
  });

  it('relists on 410 Gone and catches up with changes made while disconnected', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    const lists = api.count('list', 'secrets');

    // Cut the watch, change the Secret and forget the history: resuming must get 410 and relist.
    await api.stop();
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u2', 'p2'] }));
    api.compact();
    await api.start();
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u2:p2']));
    expect(api.count('list', 'secrets')).toBeGreaterThan(lists);
    expect(states.map((s) => s.state)).toContain('relisting');
  });

  it('resumes a dropped watch from its resourceVersion without relisting', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await vi.waitFor(() => expect(api.openWatches).toBe(1));
    const lists = api.count('list', 'secrets');
    const watches = api.count('watch', 'secrets');
    api.dropWatches();
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u3', 'p3'] }));
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u3:p3']));
    expect(api.count('watch', 'secrets')).toBeGreaterThan(watches);
    expect(api.count('list', 'secrets')).toBe(lists);
    expect(source?.watchRestarts).toBeGreaterThan(0);
  });

  it('survives an API server restart that resets resourceVersions, with backoff while it is down', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await vi.waitFor(() => expect(api.openWatches).toBe(1));
    await api.stop();
    await vi.waitFor(() => expect(states.filter((s) => s.state === 'disconnected').length).toBeGreaterThanOrEqual(2));
    const retries = states.filter((s) => s.state === 'disconnected');
    expect(retries[0]?.error?.code).toBe('NRC_E_K8S_UNAVAILABLE');
    expect(retries.every((s) => (s.retryInMs ?? 0) <= 100)).toBe(true);
    // The last good snapshot was not replaced while the server was down.
    expect(hosts(last())).toEqual(['reg.example.com=u1:p1']);

    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u4', 'p4'] }));
    await api.restart({ resetResourceVersions: true });
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u4:p4']));
    await vi.waitFor(() => expect(states.at(-1)?.state).toBe('connected'));
  });

  it('reconnects after a server-side watch timeout', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    // timeoutSeconds 1..2: the server ends each watch; the source must keep following.
    await startSource({ ...FAST, watchTimeoutSeconds: 1, random: () => 0 });
    await vi.waitFor(() => expect(api.count('watch', 'secrets')).toBeGreaterThanOrEqual(2), { timeout: 5000 });
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u5', 'p5'] }));
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u5:p5']));
  });

  it('relists when the watch stalls (watchdog), and bookmarks keep a quiet watch alive', async () => {
    await api.stop();
    api = new FakeApiServer({ bookmarkIntervalMs: 50 });
    await api.start();
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource({ ...FAST, watchdogMs: 400 });
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    // Quiet but healthy: bookmarks arrive, so no stall for several watchdog periods.
    await new Promise((r) => setTimeout(r, 1000));
    expect(states.map((s) => s.state)).not.toContain('stalled');
    const lists = api.count('list', 'secrets');

    api.stallWatches();
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u6', 'p6'] }));
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u6:p6']), { timeout: 5000 });
    expect(states.map((s) => s.state)).toContain('stalled');
    expect(api.count('list', 'secrets')).toBeGreaterThan(lists);
  });

  it('reports 403 with the missing RBAC rule and recovers when the Role is fixed', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    api.deny({ verb: 'list', resource: 'secrets', namespace: NS });
    await startSource();
    await vi.waitFor(() => expect(last()?.ok).toBe(false));
    const err = last()?.errors[0];
    expect(err?.code).toBe('NRC_E_K8S_FORBIDDEN');
    expect(err?.message).toContain('resources: ["secrets"], resourceNames: ["okteto-dockerconfig-static"], verbs: ["get", "list", "watch"]');
    expect(err?.message).toContain('namespace "okteto"');
    expect(states.map((s) => s.state)).toContain('forbidden');

    api.allowAll();
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    expect(last()?.ok).toBe(true);
  });

  it('gives up after the configured number of consecutive failures', async () => {
    api.deny({ verb: '*', resource: 'secrets' });
    await startSource({ ...FAST, maxConsecutiveFailures: 3 });
    await vi.waitFor(() => expect(states.at(-1)?.state).toBe('gave-up'));
    expect(api.count('list', 'secrets')).toBe(3);
  });

  it('watches a configurable Secret name and namespace', async () => {
    api.putDockerConfigSecret('infra', 'pull-creds', auths({ 'x.example.com': ['u', 'p'] }));
    await startSource(FAST, { name: 'pull-creds', namespace: 'infra' });
    await vi.waitFor(() => expect(hosts(last())).toEqual(['x.example.com=u:p']));
    expect(last()?.source).toBe('secret:infra/pull-creds');
  });
});
