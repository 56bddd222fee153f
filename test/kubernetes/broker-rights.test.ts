// What the broker's ServiceAccount may do on a real API server, bound by daemonset/'s manifests as
// shipped: its rights before issue 24, plus exactly the ones issue 24 adds (registries/status
// patch, events create in its namespace, nodes list/watch at cluster scope) and issue 26's
// (namespaces list/watch at cluster scope: namespace selectors), nothing more; each neighbouring
// right is denied. Measured as in rights.test.ts: SelfSubjectRulesReview minus what an
// unbound ServiceAccount gets.
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atoms, type Rule } from '../support/agent-rights.ts';
import { Admin, controlPlane, NS } from './helpers.ts';

const info = controlPlane();
const BROKER = 'node-registry-credentials-broker';
const BASELINE_SA = 'nrc-broker-rights-baseline';

/** The broker's rights before issue 24 (daemonset/base/broker.yaml's Role). */
const BEFORE: Rule[] = [
  { apiGroups: ['admin.okteto.com'], resources: ['registries'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create'] },
  { apiGroups: [''], resources: ['secrets'], resourceNames: [BROKER], verbs: ['update'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [BROKER], verbs: ['get', 'update'] },
  { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: [BROKER], verbs: ['create'] },
];
/** Issue 24: its own part of each Registry's status, Events on Registries, the Nodes' annotations (Effective). */
const ADDED_NAMESPACED: Rule[] = [
  { apiGroups: ['admin.okteto.com'], resources: ['registries/status'], verbs: ['patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];
const ADDED_CLUSTER: Rule[] = [
  { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] },
  // Issue 26: the API server resolves the namespace selectors of scoped registries.
  { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
];

async function rulesIn(kc: KubeConfig, namespace: string): Promise<string[]> {
  const r = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectRulesReview({ body: { spec: { namespace } } });
  return atoms([...(r.status?.resourceRules ?? []), ...(r.status?.nonResourceRules ?? [])] as Rule[]);
}

async function allowed(kc: KubeConfig, attrs: { verb: string; resource: string; namespace?: string; name?: string; group?: string; subresource?: string }): Promise<boolean> {
  const r = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { ...attrs, group: attrs.group ?? '' } } } });
  return r.status?.allowed === true;
}

describe.skipIf(!info)('the broker\'s ServiceAccount on a real API server: the old rights plus issues 24\'s and 26\'s, nothing more', () => {
  let admin: Admin;
  let broker: KubeConfig;
  let baseline: KubeConfig;

  beforeAll(async () => {
    admin = new Admin(info!);
    broker = (await admin.agent({ name: BROKER })).kc;
    baseline = (await admin.newServiceAccount(BASELINE_SA)).kc;
    await admin.ensureNamespace('other');
  });
  afterAll(async () => {
    await admin.core.deleteNamespacedServiceAccount({ namespace: NS, name: BASELINE_SA }).catch(() => undefined);
  });

  it(`in namespace ${NS}: the old Role, registries/status patch, events create, nodes and namespaces list/watch`, async () => {
    const base = await rulesIn(baseline, NS);
    const mine = (await rulesIn(broker, NS)).filter((a) => !base.includes(a));
    expect(mine).toEqual(atoms([...BEFORE, ...ADDED_NAMESPACED, ...ADDED_CLUSTER]));
  });

  it('in another namespace: only nodes and namespaces list/watch (cluster-scoped)', async () => {
    const base = await rulesIn(baseline, 'other');
    expect((await rulesIn(broker, 'other')).filter((a) => !base.includes(a))).toEqual(atoms(ADDED_CLUSTER));
  });

  it('each neighbouring right is denied', async () => {
    const denied: [string, { verb: string; resource: string; namespace?: string; name?: string; group?: string; subresource?: string }][] = [
      ['updating a Registry\'s status (apply needs patch only)', { verb: 'update', resource: 'registries', subresource: 'status', namespace: NS, group: 'admin.okteto.com', name: 'r' }],
      ['patching a Registry\'s spec', { verb: 'patch', resource: 'registries', namespace: NS, group: 'admin.okteto.com', name: 'r' }],
      ['creating Registries', { verb: 'create', resource: 'registries', namespace: NS, group: 'admin.okteto.com' }],
      ['a Registry\'s status in another namespace', { verb: 'patch', resource: 'registries', subresource: 'status', namespace: 'other', group: 'admin.okteto.com', name: 'r' }],
      ['reading one Node (only list/watch, metadata-only in practice)', { verb: 'get', resource: 'nodes', name: 'n' }],
      ['patching a Node', { verb: 'patch', resource: 'nodes', name: 'n' }],
      ['a Node\'s status', { verb: 'patch', resource: 'nodes', subresource: 'status', name: 'n' }],
      ['Events in another namespace', { verb: 'create', resource: 'events', namespace: 'other' }],
      ['reading Events', { verb: 'list', resource: 'events', namespace: NS }],
      ['pods', { verb: 'list', resource: 'pods', namespace: NS }],
      ['reading one Namespace (only list/watch, metadata-only in practice)', { verb: 'get', resource: 'namespaces', name: 'other' }],
      ['changing a Namespace (its labels decide a scope)', { verb: 'patch', resource: 'namespaces', name: 'other' }],
      ['creating Namespaces', { verb: 'create', resource: 'namespaces' }],
      ['Secrets in another namespace', { verb: 'list', resource: 'secrets', namespace: 'other' }],
    ];
    for (const [what, attrs] of denied) expect(await allowed(broker, attrs), what).toBe(false);
  });
});
