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

// Only what a real API server cannot be made to produce stays here, on the in-process fake; everything
// else runs against the real kube-apiserver in test/kubernetes/secret-source.test.ts and
// test/kubernetes/faults.test.ts (docs/kubernetes.md, "What the tests run against").
describe('Kubernetes Secret source against the in-process fake API server (faults a real server cannot produce)', () => {
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

  // Fake only: the real API server always serves Secret data as base64 of the stored bytes, so
  // undecodable data can only come from a broken proxy or a hand-written server.
  it('reports Secret data that is not base64 as ok:false, keeping no secret in the error', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u1:p1']));
    api.put({ kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: NAME, namespace: NS }, data: { '.dockerconfigjson': '%%%not base64%%%' } });
    await vi.waitFor(() => expect(last()?.errors[0]?.message).toContain('not base64'));
    expect(last()?.ok).toBe(false);
  });

  // Fake only: the connection is cut while the server stays up (a proxy or load balancer resetting
  // it). A real API server ends a watch only cleanly (timeoutSeconds) or by going away entirely.
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

  // Fake only: resourceVersions that go backwards (etcd restored from a backup or replaced), and a
  // change made while the API server is down. A restarted real API server keeps etcd's revisions.
  it('survives an API server restart that resets resourceVersions, with backoff while it is down', async () => {
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await startSource();
    await vi.waitFor(() => expect(api.openWatches).toBe(1));
    await api.stop();
    await vi.waitFor(() => expect(states.filter((s) => s.state === 'disconnected').length).toBeGreaterThanOrEqual(2));
    expect(hosts(last())).toEqual(['reg.example.com=u1:p1']);
    api.putDockerConfigSecret(NS, NAME, auths({ 'reg.example.com': ['u4', 'p4'] }));
    await api.restart({ resetResourceVersions: true });
    await vi.waitFor(() => expect(hosts(last())).toEqual(['reg.example.com=u4:p4']));
    await vi.waitFor(() => expect(states.at(-1)?.state).toBe('connected'));
  });

  // Fake only: a half-open connection (the stream stays open but nothing arrives, not even the
  // bookmarks the real server sends about once a minute) cannot be made on a real API server
  // without a proxy in between; bookmarks at 50 ms make the watchdog testable in a second.
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
});
