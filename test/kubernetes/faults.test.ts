// Faults the real control plane produces, each suite with a control plane of its own (they stop
// and restart etcd and kube-apiserver): the API server stopped and restarted mid-watch, etcd
// restarted, and watch expiry (410 Gone) produced by etcd compaction. The agent authenticates as
// the DaemonSet's ServiceAccount. Faults the real server cannot be made to produce (half-open
// connections, stalled watches) stay on the in-process fake: test/integration/kubernetes-secret-source.test.ts.
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import type { WatchStateEvent, WatchTuning } from '../../src/sources/kubernetes/list-watch.ts';
import { KubernetesRegistrySource } from '../../src/sources/kubernetes/registry-source.ts';
import { KubernetesSecretSource } from '../../src/sources/kubernetes/secret-source.ts';
import { CONTROL_PLANE_TOOLS, type ControlPlane, startControlPlane } from '../support/control-plane.ts';
import { skipWithout } from '../support/go-tools.ts';
import { Admin, auths, NS, SECRET, waitFor } from './helpers.ts';

const FAST: WatchTuning = { initialBackoffMs: 50, maxBackoffMs: 500, watchdogMs: 60_000, watchTimeoutSeconds: 300 };
const skip = skipWithout(CONTROL_PLANE_TOOLS);
const log = (l: string): void => void process.stdout.write(`${l}\n`);

function harness(apiserverArgs: string[] = []) {
  const h = {
    cp: undefined as unknown as ControlPlane,
    admin: undefined as unknown as Admin,
    agentKc: undefined as unknown as KubeConfig,
    source: undefined as KubernetesSecretSource | undefined,
    snapshots: [] as SourceSnapshot[],
    states: [] as WatchStateEvent[],
    async startSource(tuning: WatchTuning = FAST): Promise<void> {
      h.snapshots = [];
      h.states = [];
      h.source = new KubernetesSecretSource({ kubeConfig: h.agentKc, tuning, onState: (e) => h.states.push(e) });
      await h.source.start((s) => h.snapshots.push(s));
    },
    hosts(): string[] {
      return (h.snapshots.at(-1)?.credentials ?? []).map((c) => `${c.host}=${c.username}:${c.password}`).sort();
    },
    count(state: string): number {
      return h.states.filter((s) => s.state === state).length;
    },
  };
  beforeAll(async () => {
    h.cp = await startControlPlane({ apiserverArgs, log });
    h.admin = new Admin(h.cp.info);
    h.agentKc = (await h.admin.agent()).kc;
  });
  afterEach(async () => {
    await h.source?.stop();
    h.source = undefined;
  });
  afterAll(async () => {
    await h.cp?.stop();
  });
  return h;
}

describe.skipIf(skip)('faults of the real control plane (watch cache on, as in a cluster)', () => {
  const h = harness();

  it('the API server stopped and restarted mid-watch: backoff while down, last good kept, then follows again', async () => {
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u1', 'p1'] }));
    await h.startSource();
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=u1:p1']));
    await waitFor(() => expect(h.states.at(-1)?.state).toBe('connected'));

    await h.cp.stopApiserver();
    await waitFor(() => expect(h.count('disconnected')).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    const down = h.states.filter((s) => s.state === 'disconnected');
    expect(down[0]?.error?.code).toBe('NRC_E_K8S_UNAVAILABLE');
    expect(down.every((s) => (s.retryInMs ?? 0) <= 500)).toBe(true);
    expect(h.hosts()).toEqual(['reg.example.com=u1:p1']);

    await h.cp.startApiserver();
    await waitFor(() => expect(h.states.at(-1)?.state).toBe('connected'), { timeout: 20_000 });
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u2', 'p2'] }));
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=u2:p2']), { timeout: 10_000 });
    log(`[faults] apiserver restart: states ${h.states.map((s) => s.state).join(' ')}`);
  });

  it('etcd stopped and restarted under the API server: the agent keeps its state and follows changes made afterwards', { timeout: 120_000 }, async () => {
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['e1', 'p1'] }));
    await h.startSource();
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=e1:p1']));
    await h.cp.stopEtcd();
    // While etcd is down the API server stops being ready; the agent must not lose or replace what it has.
    await waitFor(async () => expect(await h.cp.adminReady()).toBe(false), { timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 2000));
    expect(h.hosts()).toEqual(['reg.example.com=e1:p1']);
    const t0 = Date.now();
    await h.cp.startEtcd();
    await waitFor(async () => expect(await h.cp.adminReady()).toBe(true), { timeout: 30_000, interval: 200 });
    log(`[faults] API server ready again ${Date.now() - t0} ms after etcd restarted`);
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['e2', 'p2'] }));
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=e2:p2']), { timeout: 20_000 });
    expect(h.snapshots.every((s) => s.ok)).toBe(true);
    log(`[faults] etcd restart: states ${h.states.map((s) => s.state).join(' ')}`);
  });

  it('etcd compaction alone does not expire a resumed watch: the watch cache still holds the events', async () => {
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['c1', 'p1'] }));
    await h.startSource({ ...FAST, watchTimeoutSeconds: 1, random: () => 0 });
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=c1:p1']));
    for (let i = 0; i < 5; i++) await h.admin.putOpaqueSecret(NS, 'churn', { i: String(i) });
    await h.cp.compact();
    const restarts = h.source!.watchRestarts;
    await waitFor(() => expect(h.source!.watchRestarts).toBeGreaterThanOrEqual(restarts + 2), { timeout: 10_000 });
    expect(h.count('relisting')).toBe(1);
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['c2', 'p2'] }));
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=c2:p2']));
  });

  it('Registry resources and a referenced Secret across an API server restart (as the broker, which reads them)', async () => {
    const brokerKc = (await h.admin.agent({ name: 'node-registry-credentials-broker' })).kc;
    await h.admin.putOpaqueSecret(NS, 's', { username: 'u', password: 'p' });
    await h.admin.putRegistry(NS, 'a.example.com', { static: { userSecretRef: { name: 's', key: 'username' }, passwordSecretRef: { name: 's', key: 'password' } } });
    const snaps: SourceSnapshot[] = [];
    const src = new KubernetesRegistrySource({ kubeConfig: brokerKc, tuning: FAST });
    await src.start((s) => snaps.push(s));
    const creds = (): string[] => (snaps.at(-1)?.credentials ?? []).map((c) => `${c.key}=${c.username}:${c.password}`).sort();
    try {
      await waitFor(() => expect(creds()).toEqual(['a.example.com=u:p']));
      await h.cp.stopApiserver();
      await new Promise((r) => setTimeout(r, 1000));
      await h.cp.startApiserver();
      await h.admin.putOpaqueSecret(NS, 's', { username: 'u', password: 'p2' });
      await h.admin.putRegistry(NS, 'b.example.com', { static: { userSecretRef: { name: 's', key: 'username' }, passwordSecretRef: { name: 's', key: 'password' } } });
      await waitFor(() => expect(creds()).toEqual(['a.example.com=u:p2', 'b.example.com=u:p2']), { timeout: 20_000 });
    } finally {
      await src.stop();
    }
  });
});

describe.skipIf(skip)('watch expiry (410 Gone) produced by etcd compaction (watch cache off: watches served by etcd)', () => {
  // With the watch cache (the default) a resumed watch is served from the API server's memory,
  // so compaction alone never expires it (see above); --watch-cache=false sends every watch to
  // etcd, where a resourceVersion older than the compacted revision is answered with 410 Gone.
  const h = harness(['--watch-cache=false']);

  it('compaction makes the resumed watch 410: the source relists and catches up', async () => {
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['g1', 'p1'] }));
    await h.startSource({ ...FAST, watchTimeoutSeconds: 1, random: () => 0 });
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=g1:p1']));
    await waitFor(() => expect(h.states.at(-1)?.state).toBe('connected'));
    expect(h.count('relisting')).toBe(1);
    // Other writes move etcd's revision past the agent's resourceVersion; then compact there.
    for (let i = 0; i < 5; i++) await h.admin.putOpaqueSecret(NS, 'churn', { i: String(i) });
    const rev = await h.cp.compact();
    log(`[faults] compacted etcd at revision ${rev}`);
    await waitFor(() => expect(h.count('relisting')).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    expect(h.count('disconnected')).toBe(0);
    await h.admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['g2', 'p2'] }));
    await waitFor(() => expect(h.hosts()).toEqual(['reg.example.com=g2:p2']));
  });
});
