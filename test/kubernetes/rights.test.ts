// What the DaemonSet's ServiceAccount may do on a real API server (Node,RBAC), bound by daemonset/'s
// manifests exactly as shipped: its SelfSubjectRulesReview, minus what every ServiceAccount gets
// from the cluster's default bindings (measured with an unbound ServiceAccount), equals the
// documented rights in docs/agent-rights.json; each neighbouring right is denied. Adding a rule to
// or removing one from daemonset/base/rbac.yaml makes this fail.
import { AuthorizationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_RIGHTS, atoms, type Rule } from '../support/agent-rights.ts';
import { Admin, auths, controlPlane, NS, SECRET } from './helpers.ts';

const info = controlPlane();
const BASELINE_SA = 'nrc-rights-baseline';

async function rulesIn(kc: KubeConfig, namespace: string): Promise<{ atoms: string[]; incomplete: boolean; error?: string }> {
  const r = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectRulesReview({ body: { spec: { namespace } } });
  const rules: Rule[] = [...(r.status?.resourceRules ?? []), ...(r.status?.nonResourceRules ?? [])] as Rule[];
  return { atoms: atoms(rules), incomplete: r.status?.incomplete ?? false, ...(r.status?.evaluationError ? { error: r.status.evaluationError } : {}) };
}

async function allowed(kc: KubeConfig, attrs: { verb: string; resource: string; namespace?: string; name?: string; group?: string; subresource?: string }): Promise<boolean> {
  const r = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { ...attrs, group: attrs.group ?? '' } } } });
  return r.status?.allowed === true;
}

describe.skipIf(!info)('the DaemonSet\'s ServiceAccount on a real API server has exactly the documented rights', () => {
  let admin: Admin;
  let agent: KubeConfig;
  let baseline: KubeConfig;

  beforeAll(async () => {
    admin = new Admin(info!);
    agent = (await admin.agent()).kc;
    baseline = (await admin.newServiceAccount(BASELINE_SA)).kc;
    await admin.ensureNamespace('other');
  });
  afterAll(async () => {
    await admin.core.deleteNamespacedServiceAccount({ namespace: NS, name: BASELINE_SA }).catch(() => undefined);
    await admin.clean();
  });

  it(`in namespace ${AGENT_RIGHTS.namespace}: the Role's and the ClusterRole's rules, nothing more`, async () => {
    const mine = await rulesIn(agent, NS);
    const base = await rulesIn(baseline, NS);
    // RBAC answers completely; the Node authorizer (first in the chain) has no rules for a ServiceAccount.
    expect(mine.incomplete, mine.error).toBe(base.incomplete);
    const extra = mine.atoms.filter((a) => !base.atoms.includes(a));
    expect(extra).toEqual(atoms([...AGENT_RIGHTS.namespaced, ...AGENT_RIGHTS.cluster]));
    // What the cluster gives every ServiceAccount (discovery, self reviews) is not the manifests' doing.
    expect(base.atoms).toContain('authorization.k8s.io|selfsubjectrulesreviews|*|create');
  });

  it('in another namespace: only the cluster-scoped rules (nodes patch, events create)', async () => {
    const mine = await rulesIn(agent, 'other');
    const base = await rulesIn(baseline, 'other');
    expect(mine.atoms.filter((a) => !base.atoms.includes(a))).toEqual(atoms(AGENT_RIGHTS.cluster));
  });

  it('each documented right is allowed', async () => {
    for (const name of [SECRET, 'node-registry-credentials-broker']) {
      for (const verb of ['get', 'list', 'watch']) expect(await allowed(agent, { verb, resource: 'secrets', namespace: NS, name }), `${verb} secrets/${name}`).toBe(true);
    }
    expect(await allowed(agent, { verb: 'patch', resource: 'nodes', name: 'node-1' })).toBe(true);
    expect(await allowed(agent, { verb: 'create', resource: 'events', namespace: 'default' })).toBe(true);
  });

  it('each neighbouring right is denied (another Secret, another namespace, writing, other tokens, other kinds)', async () => {
    const denied: [string, { verb: string; resource: string; namespace?: string; name?: string; group?: string; subresource?: string }][] = [
      ['another Secret', { verb: 'get', resource: 'secrets', namespace: NS, name: 'okteto-tls' }],
      ['every Secret of the namespace', { verb: 'list', resource: 'secrets', namespace: NS }],
      ['the same Secret in another namespace', { verb: 'get', resource: 'secrets', namespace: 'other', name: SECRET }],
      ['writing the Secret', { verb: 'update', resource: 'secrets', namespace: NS, name: SECRET }],
      ['patching the Secret', { verb: 'patch', resource: 'secrets', namespace: NS, name: SECRET }],
      ['deleting the Secret', { verb: 'delete', resource: 'secrets', namespace: NS, name: SECRET }],
      ['creating Secrets', { verb: 'create', resource: 'secrets', namespace: NS }],
      ['writing the broker\'s Secret', { verb: 'update', resource: 'secrets', namespace: NS, name: 'node-registry-credentials-broker' }],
      ['a Secret a Registry references (the broker reads those)', { verb: 'get', resource: 'secrets', namespace: NS, name: 'ecr-keys' }],
      // Issue 15: Registry resources and every token right moved to the broker.
      ['reading Registry resources', { verb: 'list', resource: 'registries', namespace: NS, group: 'admin.okteto.com' }],
      ['watching Registry resources', { verb: 'watch', resource: 'registries', namespace: NS, group: 'admin.okteto.com' }],
      ['writing Registry resources', { verb: 'create', resource: 'registries', namespace: NS, group: 'admin.okteto.com' }],
      ['a token for the platform\'s ServiceAccount', { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'okteto' }],
      ['a token for the broker\'s ServiceAccount', { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'node-registry-credentials-broker' }],
      ['a token for another ServiceAccount', { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'default' }],
      ['a token for its own ServiceAccount', { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'node-registry-credentials' }],
      ['the broker\'s Lease', { verb: 'update', resource: 'leases', group: 'coordination.k8s.io', namespace: NS, name: 'node-registry-credentials-broker' }],
      ['reading a Node', { verb: 'get', resource: 'nodes', name: 'node-1' }],
      ['reading Events', { verb: 'list', resource: 'events', namespace: 'default' }],
      ['changing Events', { verb: 'patch', resource: 'events', namespace: 'default', name: 'x' }],
      ['listing Nodes', { verb: 'list', resource: 'nodes' }],
      ['updating a Node', { verb: 'update', resource: 'nodes', name: 'node-1' }],
      ['a Node\'s status', { verb: 'patch', resource: 'nodes', subresource: 'status', name: 'node-1' }],
      ['deleting a Node', { verb: 'delete', resource: 'nodes', name: 'node-1' }],
      ['pods', { verb: 'list', resource: 'pods', namespace: NS }],
      ['ConfigMaps', { verb: 'get', resource: 'configmaps', namespace: NS, name: 'node-registry-credentials-registries' }],
    ];
    for (const [what, attrs] of denied) expect(await allowed(agent, attrs), what).toBe(false);
  });

  it('the API server refuses the real requests too (403)', async () => {
    await admin.putDockerConfigSecret(NS, SECRET, auths({ 'reg.example.com': ['u', 'p'] }));
    await admin.putOpaqueSecret(NS, 'okteto-tls', { 'tls.key': 'k' });
    const core = agent.makeApiClient(CoreV1Api);
    expect((await core.readNamespacedSecret({ namespace: NS, name: SECRET })).metadata?.name).toBe(SECRET);
    await expect(core.readNamespacedSecret({ namespace: NS, name: 'okteto-tls' })).rejects.toMatchObject({ code: 403 });
    await expect(core.listNamespacedSecret({ namespace: NS })).rejects.toMatchObject({ code: 403 });
    await expect(core.readNamespacedSecret({ namespace: 'other', name: SECRET })).rejects.toMatchObject({ code: 403 });
    await expect(core.patchNamespacedSecret({ namespace: NS, name: SECRET, body: [{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }] })).rejects.toMatchObject({ code: 403 });
    await expect(core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'planted' }, stringData: { a: 'b' } } })).rejects.toMatchObject({ code: 403 });
    await expect(core.listNode()).rejects.toMatchObject({ code: 403 });
    await expect(agent.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace: NS, plural: 'registries' })).rejects.toMatchObject({ code: 403 });
    await expect(core.createNamespacedServiceAccountToken({ namespace: NS, name: 'okteto', body: { spec: { audiences: ['sts.amazonaws.com'] } } })).rejects.toMatchObject({ code: 403 });
    await expect(agent.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace: NS, plural: 'registries', body: { apiVersion: 'admin.okteto.com/v1', kind: 'Registry', metadata: { name: 'evil.example.com' }, spec: { awsIamRole: { roleARN: 'a', audience: 'b' } } } })).rejects.toMatchObject({ code: 403 });
  });
});
