// Registry resources through the project's CRD (daemonset/crd) on the real API server, read as the
// broker's ServiceAccount (the one component of the default install that reads them, with
// daemonset/base/broker.yaml's Role; the node agent has no right to them). The CRD's schema is
// enforced by the API server: malformed resources never reach the source. An identity granted
// referenced Secrets by name (a narrowed Role) gets the exact rule to add.
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import type { EcrRegistrySpec } from '../../src/sources/ecr/types.ts';
import type { WatchTuning } from '../../src/sources/kubernetes/list-watch.ts';
import { KubernetesRegistrySource } from '../../src/sources/kubernetes/registry-source.ts';
import { Admin, controlPlane, NS, waitFor } from './helpers.ts';

const FAST: WatchTuning = { initialBackoffMs: 20, maxBackoffMs: 100, watchdogMs: 60_000 };
const staticSpec = (secret: string, port?: number): unknown => ({
  static: { ...(port ? { port } : {}), userSecretRef: { name: secret, key: 'username' }, passwordSecretRef: { name: secret, key: 'password' } },
});
const info = controlPlane();

describe.skipIf(!info)('Registry resource source against the real API server and the project\'s CRD', () => {
  let admin: Admin;
  let agentKc: KubeConfig;
  let source: KubernetesRegistrySource | undefined;
  let snapshots: SourceSnapshot[];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    admin = new Admin(info!);
    agentKc = (await admin.agent({ name: 'node-registry-credentials-broker' })).kc;
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

  async function startSource(onEcrRegistries?: (s: EcrRegistrySpec[]) => void, kc: KubeConfig = agentKc): Promise<void> {
    snapshots = [];
    source = new KubernetesRegistrySource({ kubeConfig: kc, tuning: FAST, ...(onEcrRegistries ? { onEcrRegistries } : {}) });
    await source.start((s) => snapshots.push(s));
  }
  const last = (): SourceSnapshot | undefined => snapshots.at(-1);
  const creds = (): string[] => (last()?.credentials ?? []).map((c) => `${c.key}=${c.username}:${c.password}`).sort();
  const codes = (): string[] => (last()?.errors ?? []).map((e) => e.code).sort();

  it('turns spec.static into a credential for name[:port] and follows a change of the referenced Secret', async () => {
    await admin.putOpaqueSecret(NS, 'reg-secret', { username: 'alice', password: 'pw1\n' });
    await admin.putRegistry(NS, 'registry.example.com', staticSpec('reg-secret', 5000));
    await startSource();
    await waitFor(() => expect(creds()).toEqual(['registry.example.com:5000=alice:pw1']));
    expect(last()?.ok).toBe(true);

    await admin.putOpaqueSecret(NS, 'reg-secret', { username: 'alice', password: 'pw2' });
    await waitFor(() => expect(creds()).toEqual(['registry.example.com:5000=alice:pw2']));

    // Pointing the Registry at another Secret moves the watch to that name.
    await admin.putOpaqueSecret(NS, 'other-secret', { username: 'bob', password: 'pw3' });
    await admin.putRegistry(NS, 'registry.example.com', staticSpec('other-secret'));
    await waitFor(() => expect(creds()).toEqual(['registry.example.com=bob:pw3']));
    await waitFor(() => expect(source?.watchedSecrets).toEqual(['other-secret']));

    // The referenced Secret deleted and re-created.
    await admin.deleteSecret(NS, 'other-secret');
    await waitFor(() => expect(codes()).toEqual(['NRC_E_REGISTRY_SECRET_MISSING']));
    await admin.putOpaqueSecret(NS, 'other-secret', { username: 'bob', password: 'pw4' });
    await waitFor(() => expect(creds()).toEqual(['registry.example.com=bob:pw4']));

    await admin.deleteRegistry(NS, 'registry.example.com');
    await waitFor(() => expect(creds()).toEqual([]));
    expect(last()?.ok).toBe(true);
  });

  it('the API server refuses malformed Registry resources (the CRD\'s schema), so only valid ones reach the agent', async () => {
    const refused: [string, string, unknown][] = [
      ['two kinds at once', 'both.example.com', { ...(staticSpec('s') as object), awsIamRole: { roleARN: 'arn:x', audience: 'a' } }],
      ['no passwordSecretRef', 'noref.example.com', { static: { userSecretRef: { name: 's', key: 'username' } } }],
      ['a ref without key', 'nokey.example.com', { static: { userSecretRef: { name: 's' }, passwordSecretRef: { name: 's', key: 'password' } } }],
      ['port out of range', 'badport.example.com', staticSpec('s', 70000)],
      ['no spec', 'nospec.example.com', undefined],
      ['an empty spec', 'empty.example.com', {}],
      ['awsIamRole without audience', 'role.example.com', { awsIamRole: { roleARN: 'arn:x' } }],
      // metadata.name must be a lowercase DNS subdomain: the fake accepted this, the real server does not.
      ['an upper-case name', 'Registry.Example.com', staticSpec('s')],
    ];
    for (const [what, name, spec] of refused) {
      await expect(admin.putRegistry(NS, name, spec), what).rejects.toMatchObject({ code: 422 });
    }
    await admin.putOpaqueSecret(NS, 's', { username: 'u', password: 'p' });
    await admin.putRegistry(NS, 'good.example.com', staticSpec('s'));
    await startSource();
    await waitFor(() => expect(creds()).toEqual(['good.example.com=u:p']));
    expect(codes()).toEqual([]);
  });

  it('reports a missing Secret or key, then configures the registry once it appears', async () => {
    await admin.putRegistry(NS, 'a.example.com', staticSpec('later'));
    await startSource();
    await waitFor(() => expect(codes()).toEqual(['NRC_E_REGISTRY_SECRET_MISSING']));
    expect(last()?.errors[0]?.message).toContain('"later"');
    await admin.putOpaqueSecret(NS, 'later', { username: 'u' });
    await waitFor(() => expect(last()?.errors[0]?.message).toContain('the key is not in the Secret'));
    await admin.putOpaqueSecret(NS, 'later', { username: 'u', password: 'p' });
    await waitFor(() => expect(creds()).toEqual(['a.example.com=u:p']));
    expect(codes()).toEqual([]);
  });

  it('reports awsIamUser/awsIamRole as NRC_E_REGISTRY_KIND_UNSUPPORTED without an ECR callback', async () => {
    await admin.putOpaqueSecret(NS, 'ecr-secret', { 'access-key-id': 'AKIAEXAMPLE', 'secret-access-key': 'topsecret' });
    await admin.putRegistry(NS, '123456789012.dkr.ecr.us-east-2.amazonaws.com', {
      awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-secret', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-secret', key: 'secret-access-key' } },
    });
    await admin.putRegistry(NS, '210987654321.dkr.ecr.eu-west-1.amazonaws.com', { awsIamRole: { audience: 'okteto.example.com/eu', roleARN: 'arn:aws:iam::210987654321:role/r' } });
    await startSource();
    await waitFor(() => expect(codes()).toEqual(['NRC_E_REGISTRY_KIND_UNSUPPORTED', 'NRC_E_REGISTRY_KIND_UNSUPPORTED']));
    expect(last()?.credentials).toEqual([]);
    expect(source?.watchedSecrets).toEqual([]);
    expect(JSON.stringify(last()?.errors)).not.toContain('topsecret');
  });

  it('hands ECR registries with resolved keys to the callback and updates it on key rotation', async () => {
    const calls: EcrRegistrySpec[][] = [];
    await admin.putOpaqueSecret(NS, 'ecr-secret', { 'access-key-id': 'AKIA1', 'secret-access-key': 'k1' });
    await admin.putRegistry(NS, '123456789012.dkr.ecr.us-east-2.amazonaws.com', {
      awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-secret', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-secret', key: 'secret-access-key' } },
    });
    await admin.putRegistry(NS, '210987654321.dkr.ecr.eu-west-1.amazonaws.com', { awsIamRole: { audience: 'okteto.example.com/eu', roleARN: 'arn:aws:iam::210987654321:role/r' } });
    await startSource((s) => calls.push(s));
    await waitFor(() => expect(calls.at(-1)?.[0]).toMatchObject({ accessKeyId: 'AKIA1' }));
    expect(calls.at(-1)).toEqual([
      { host: '123456789012.dkr.ecr.us-east-2.amazonaws.com', kind: 'awsIamUser', accessKeyId: 'AKIA1', secretAccessKey: 'k1' },
      { host: '210987654321.dkr.ecr.eu-west-1.amazonaws.com', kind: 'awsIamRole', roleArn: 'arn:aws:iam::210987654321:role/r', audience: 'okteto.example.com/eu' },
    ]);
    expect(codes()).toEqual([]);
    await admin.putOpaqueSecret(NS, 'ecr-secret', { 'access-key-id': 'AKIA2', 'secret-access-key': 'k2' });
    await waitFor(() => expect(calls.at(-1)?.[0]).toMatchObject({ accessKeyId: 'AKIA2', secretAccessKey: 'k2' }));
  });

  it('a referenced Secret the Role does not grant: the exact rule to add, the last good credential kept, recovery once added', async () => {
    // An identity with the registries rule and Secrets by name only (not the broker's namespace-wide read).
    const narrow = await admin.newServiceAccount('nrc-narrow-registries');
    cleanups.push(narrow.remove);
    const sa = { namespace: NS, name: 'nrc-narrow-registries' };
    const role = 'nrc-test-registries';
    await admin.rbac.createNamespacedRole({ namespace: NS, body: { metadata: { name: role }, rules: [{ apiGroups: ['admin.okteto.com'], resources: ['registries'], verbs: ['get', 'list', 'watch'] }] } });
    await admin.rbac.createNamespacedRoleBinding({ namespace: NS, body: { metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role }, subjects: [{ kind: 'ServiceAccount', ...sa }] } });
    cleanups.push(async () => {
      await admin.rbac.deleteNamespacedRoleBinding({ namespace: NS, name: role }).catch(() => undefined);
      await admin.rbac.deleteNamespacedRole({ namespace: NS, name: role }).catch(() => undefined);
    });
    const grant = async (...names: string[]): Promise<void> => {
      cleanups.push(await admin.grantSecrets(NS, names, sa));
    };
    await grant('s');
    await admin.putOpaqueSecret(NS, 's', { username: 'u', password: 'p' });
    await admin.putRegistry(NS, 'a.example.com', staticSpec('s'));
    await startSource(undefined, narrow.kc);
    await waitFor(() => expect(creds()).toEqual(['a.example.com=u:p']));

    await admin.putOpaqueSecret(NS, 'locked', { username: 'x', password: 'y' });
    await admin.putRegistry(NS, 'b.example.com', staticSpec('locked'));
    await waitFor(() => expect(codes()).toEqual(['NRC_E_K8S_FORBIDDEN']));
    expect(last()?.errors[0]?.message).toContain('resourceNames: ["locked"]');
    expect(creds()).toEqual(['a.example.com=u:p']);
    await grant('locked');
    await waitFor(() => expect(creds()).toEqual(['a.example.com=u:p', 'b.example.com=x:y']), { timeout: 10_000 });
  });

  it('an identity without the Role: ok:false naming the registries rule', async () => {
    const unbound = await admin.newServiceAccount('nrc-unbound');
    cleanups.push(unbound.remove);
    await startSource(undefined, unbound.kc);
    await waitFor(() => expect(last()?.ok).toBe(false));
    expect(last()?.errors[0]?.message).toContain('apiGroups: ["admin.okteto.com"], resources: ["registries"], verbs: ["get", "list", "watch"]');
  });
});
