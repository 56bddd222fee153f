import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import type { EcrRegistrySpec } from '../../src/sources/ecr/types.ts';
import type { WatchTuning } from '../../src/sources/kubernetes/list-watch.ts';
import { KubernetesRegistrySource } from '../../src/sources/kubernetes/registry-source.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';

const NS = 'okteto';
const FAST: WatchTuning = { initialBackoffMs: 20, maxBackoffMs: 100, watchdogMs: 60_000 };
const staticSpec = (secret: string, port?: number): unknown => ({
  static: { ...(port ? { port } : {}), userSecretRef: { name: secret, key: 'username' }, passwordSecretRef: { name: secret, key: 'password' } },
});

// Only what a real API server cannot be made to produce stays here; the rest runs against the real
// kube-apiserver and the project's CRD in test/kubernetes/registry-source.test.ts.
describe('Registry resource source against the in-process fake API server (what a real server cannot produce)', () => {
  let api: FakeApiServer;
  let source: KubernetesRegistrySource | undefined;
  let snapshots: SourceSnapshot[];

  beforeEach(async () => {
    api = new FakeApiServer();
    await api.start();
    snapshots = [];
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await api.stop();
  });

  async function startSource(onEcrRegistries?: (s: EcrRegistrySpec[]) => void): Promise<void> {
    source = new KubernetesRegistrySource({ kubeConfig: api.kubeConfig(), tuning: FAST, ...(onEcrRegistries ? { onEcrRegistries } : {}) });
    await source.start((s) => snapshots.push(s));
  }
  const last = (): SourceSnapshot | undefined => snapshots.at(-1);
  const creds = (): string[] => (last()?.credentials ?? []).map((c) => `${c.key}=${c.username}:${c.password}`).sort();
  const codes = (): string[] => (last()?.errors ?? []).map((e) => e.code).sort();

  // Fake only: the assertion is about requests the agent never makes (no Secret read at all), which
  // only the fake's request log shows; a real API server keeps no such log for a test to read.
  it("per-node mode (nodeIdentityOnly): awsIamRole goes to the ECR source, awsIamUser is refused with a code, and no Secret is ever read", async () => {
    api.putOpaqueSecret(NS, 'reg-secret', { username: 'alice', password: 'pw1' });
    api.putOpaqueSecret(NS, 'ecr-keys', { id: 'AKIDX', key: 'never-read' });
    api.putRegistry(NS, 'registry.example.com', staticSpec('reg-secret'));
    api.putRegistry(NS, '123456789012.dkr.ecr.us-east-2.amazonaws.com', { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'key' } } });
    api.putRegistry(NS, '112233445566.dkr.ecr.us-east-2.amazonaws.com', { awsIamRole: { audience: 'aud', roleARN: 'arn:aws:iam::112233445566:role/r' } });
    const ecr: EcrRegistrySpec[][] = [];
    source = new KubernetesRegistrySource({ kubeConfig: api.kubeConfig(), tuning: FAST, nodeIdentityOnly: true, onEcrRegistries: (specs) => ecr.push(specs) });
    await source.start((snap) => snapshots.push(snap));
    await vi.waitFor(() => expect(codes()).toEqual(['NRC_E_REGISTRY_KIND_UNSUPPORTED']));
    expect(last()?.errors[0]?.message).toContain('broker');
    expect(creds()).toEqual([]);
    expect(ecr.at(-1)).toEqual([{ host: '112233445566.dkr.ecr.us-east-2.amazonaws.com', kind: 'awsIamRole', roleArn: 'arn:aws:iam::112233445566:role/r', audience: 'aud' }]);
    expect(api.requests.filter((r) => r.includes('secrets'))).toEqual([]);
    expect(source.watchedSecrets).toEqual([]);
  });

  // Fake only: the real API server with daemonset/crd refuses these (test/kubernetes/registry-source.test.ts),
  // but the platform ships its own CRD, which may validate less: the agent must still refuse them.
  it('reports malformed Registry resources with coded errors and keeps the valid ones', async () => {
    api.putOpaqueSecret(NS, 's', { username: 'u', password: 'p' });
    api.putRegistry(NS, 'good.example.com', staticSpec('s'));
    api.putRegistry(NS, 'both.example.com', { ...(staticSpec('s') as object), awsIamRole: { roleARN: 'arn:x', audience: 'a' } });
    api.putRegistry(NS, 'noref.example.com', { static: { userSecretRef: { name: 's' } } });
    api.putRegistry(NS, 'badport.example.com', staticSpec('s', 70000));
    api.put({ kind: 'Registry', metadata: { name: 'nospec.example.com', namespace: NS } });
    await startSource();
    await vi.waitFor(() => expect(creds()).toEqual(['good.example.com=u:p']));
    expect(codes()).toEqual(Array(4).fill('NRC_E_REGISTRY_SPEC_INVALID'));
    expect(last()?.ok).toBe(true);
  });

  // Fake only: a connection reset while the server stays up, and resourceVersions that go backwards
  // (etcd restored); the real restart is in test/kubernetes/faults.test.ts.
  it('follows registries across a watch drop and an API server restart', async () => {
    api.putOpaqueSecret(NS, 's', { username: 'u', password: 'p' });
    api.putRegistry(NS, 'a.example.com', staticSpec('s'));
    await startSource();
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p']));
    api.dropWatches();
    api.putRegistry(NS, 'b.example.com', staticSpec('s'));
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p', 'b.example.com=u:p']));
    await api.stop();
    api.putOpaqueSecret(NS, 's', { username: 'u', password: 'p2' });
    await api.restart({ resetResourceVersions: true });
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p2', 'b.example.com=u:p2']));
  });
});
