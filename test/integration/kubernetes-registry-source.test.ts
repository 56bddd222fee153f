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

describe('Registry resource source against a fake API server', () => {
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

  it('turns spec.static into a credential for name[:port] and follows a change of the referenced Secret', async () => {
    api.putOpaqueSecret(NS, 'reg-secret', { username: 'alice', password: 'pw1\n' });
    api.putRegistry(NS, 'Registry.Example.com', staticSpec('reg-secret', 5000));
    await startSource();
    await vi.waitFor(() => expect(creds()).toEqual(['registry.example.com:5000=alice:pw1']));
    expect(last()?.ok).toBe(true);

    api.putOpaqueSecret(NS, 'reg-secret', { username: 'alice', password: 'pw2' });
    await vi.waitFor(() => expect(creds()).toEqual(['registry.example.com:5000=alice:pw2']));

    // Pointing the Registry at another Secret moves the watch to that name.
    api.putOpaqueSecret(NS, 'other-secret', { username: 'bob', password: 'pw3' });
    api.putRegistry(NS, 'Registry.Example.com', staticSpec('other-secret'));
    await vi.waitFor(() => expect(creds()).toEqual(['registry.example.com=bob:pw3']));
    await vi.waitFor(() => expect(source?.watchedSecrets).toEqual(['other-secret']));

    api.delete('registries', NS, 'Registry.Example.com');
    await vi.waitFor(() => expect(creds()).toEqual([]));
    expect(last()?.ok).toBe(true);
  });

  it('uses one watch per referenced Secret name and never lists the namespace\'s other Secrets', async () => {
    api.putOpaqueSecret(NS, 's1', { username: 'u', password: 'p' });
    api.putRegistry(NS, 'a.example.com', staticSpec('s1'));
    api.putRegistry(NS, 'b.example.com', staticSpec('s1', 8443));
    await startSource();
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p', 'b.example.com:8443=u:p']));
    expect(api.openWatches).toBe(2); // registries + s1
    const secretRequests = api.requests.filter((r) => / secrets/.test(r));
    expect(secretRequests.length).toBeGreaterThan(0);
    expect(secretRequests.every((r) => r.endsWith('secrets/s1'))).toBe(true);
  });

  it('reports a missing Secret or key, then configures the registry once it appears', async () => {
    api.putRegistry(NS, 'a.example.com', staticSpec('later'));
    await startSource();
    await vi.waitFor(() => expect(codes()).toEqual(['NRC_E_REGISTRY_SECRET_MISSING']));
    expect(last()?.errors[0]?.message).toContain('"later"');
    api.putOpaqueSecret(NS, 'later', { username: 'u' });
    await vi.waitFor(() => expect(last()?.errors[0]?.message).toContain('the key is not in the Secret'));
    api.putOpaqueSecret(NS, 'later', { username: 'u', password: 'p' });
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p']));
    expect(codes()).toEqual([]);
  });

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

  it('reports awsIamUser/awsIamRole as NRC_E_REGISTRY_KIND_UNSUPPORTED without an ECR callback, and reads no AWS key Secret', async () => {
    api.putOpaqueSecret(NS, 'ecr-secret', { 'access-key-id': 'AKIAEXAMPLE', 'secret-access-key': 'topsecret' });
    api.putRegistry(NS, '123456789012.dkr.ecr.us-east-2.amazonaws.com', {
      awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-secret', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-secret', key: 'secret-access-key' } },
    });
    api.putRegistry(NS, '210987654321.dkr.ecr.eu-west-1.amazonaws.com', { awsIamRole: { audience: 'okteto.example.com/eu', roleARN: 'arn:aws:iam::210987654321:role/r' } });
    await startSource();
    await vi.waitFor(() => expect(codes()).toEqual(['NRC_E_REGISTRY_KIND_UNSUPPORTED', 'NRC_E_REGISTRY_KIND_UNSUPPORTED']));
    expect(last()?.credentials).toEqual([]);
    expect(api.requests.some((r) => r.includes('secrets'))).toBe(false);
    expect(JSON.stringify(last()?.errors)).not.toContain('topsecret');
  });

  it('hands ECR registries with resolved keys to the callback and updates it on key rotation', async () => {
    const calls: EcrRegistrySpec[][] = [];
    api.putOpaqueSecret(NS, 'ecr-secret', { 'access-key-id': 'AKIA1', 'secret-access-key': 'k1' });
    api.putRegistry(NS, '123456789012.dkr.ecr.us-east-2.amazonaws.com', {
      awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-secret', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-secret', key: 'secret-access-key' } },
    });
    api.putRegistry(NS, '210987654321.dkr.ecr.eu-west-1.amazonaws.com', { awsIamRole: { audience: 'okteto.example.com/eu', roleARN: 'arn:aws:iam::210987654321:role/r' } });
    await startSource((s) => calls.push(s));
    await vi.waitFor(() => expect(calls.length).toBe(1));
    expect(calls[0]).toEqual([
      { host: '123456789012.dkr.ecr.us-east-2.amazonaws.com', kind: 'awsIamUser', accessKeyId: 'AKIA1', secretAccessKey: 'k1' },
      { host: '210987654321.dkr.ecr.eu-west-1.amazonaws.com', kind: 'awsIamRole', roleArn: 'arn:aws:iam::210987654321:role/r', audience: 'okteto.example.com/eu' },
    ]);
    expect(codes()).toEqual([]);
    api.putOpaqueSecret(NS, 'ecr-secret', { 'access-key-id': 'AKIA2', 'secret-access-key': 'k2' });
    await vi.waitFor(() => expect(calls.length).toBe(2));
    expect(calls[1]?.[0]).toMatchObject({ accessKeyId: 'AKIA2', secretAccessKey: 'k2' });
  });

  it('names the missing RBAC rule when a referenced Secret is forbidden, and keeps the last good credential', async () => {
    api.putOpaqueSecret(NS, 's', { username: 'u', password: 'p' });
    api.putRegistry(NS, 'a.example.com', staticSpec('s'));
    api.deny({ verb: 'list', resource: 'secrets', name: 'locked' });
    await startSource();
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p']));

    api.putOpaqueSecret(NS, 'locked', { username: 'x', password: 'y' });
    api.putRegistry(NS, 'b.example.com', staticSpec('locked'));
    await vi.waitFor(() => expect(codes()).toEqual(['NRC_E_K8S_FORBIDDEN']));
    expect(last()?.errors[0]?.message).toContain('resourceNames: ["locked"]');
    expect(creds()).toEqual(['a.example.com=u:p']);
    api.allowAll();
    await vi.waitFor(() => expect(creds()).toEqual(['a.example.com=u:p', 'b.example.com=x:y']));
  });

  it('reports ok:false with the missing rule when the registries cannot be listed', async () => {
    api.deny({ verb: 'list', resource: 'registries' });
    await startSource();
    await vi.waitFor(() => expect(last()?.ok).toBe(false));
    expect(last()?.errors[0]?.message).toContain('apiGroups: ["admin.okteto.com"], resources: ["registries"], verbs: ["get", "list", "watch"]');
  });

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
