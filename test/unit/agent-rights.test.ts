// daemonset/'s rendered Role and ClusterRole grant exactly the rights listed in
// docs/agent-rights.json (the documented list); test/kubernetes/rights.test.ts checks the same list
// against what a real API server lets the DaemonSet's ServiceAccount do.
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { AGENT_RIGHTS, atoms, type Rule } from '../support/agent-rights.ts';
import { kustomizeSync } from '../support/control-plane.ts';
import { skipWithout } from '../support/go-tools.ts';


type Obj = { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; subjects?: { kind: string; name: string; namespace?: string }[]; roleRef?: { kind: string; name: string } };

describe.skipIf(skipWithout(['kubectl']))('the documented rights (docs/agent-rights.json) equal the manifests', () => {
  const objs = (): Obj[] => loadAllYaml(kustomizeSync('daemonset')) as Obj[];

  it('Role (namespace okteto) and ClusterRole rules, bound to the DaemonSet\'s ServiceAccount', () => {
    const all = objs();
    const sa = all.find((o) => o.kind === 'ServiceAccount');
    expect(sa?.metadata).toMatchObject({ name: AGENT_RIGHTS.serviceAccount, namespace: AGENT_RIGHTS.namespace });
    const subject = { kind: 'ServiceAccount', name: AGENT_RIGHTS.serviceAccount, namespace: AGENT_RIGHTS.namespace };
    const bound = (bindingKind: string, roleKind: string): Rule[] =>
      all
        .filter((b) => b.kind === bindingKind && b.subjects?.some((s) => s.kind === subject.kind && s.name === subject.name && (s.namespace ?? b.metadata.namespace) === subject.namespace))
        .flatMap((b) => all.filter((r) => r.kind === roleKind && r.metadata.name === b.roleRef?.name).flatMap((r) => r.rules ?? []));
    expect(atoms(bound('RoleBinding', 'Role'))).toEqual(atoms(AGENT_RIGHTS.namespaced));
    expect(atoms(bound('ClusterRoleBinding', 'ClusterRole'))).toEqual(atoms(AGENT_RIGHTS.cluster));
    // Nothing else grants anything: every other Role and ClusterRole belongs to the broker (its own
    // account, bound to nothing of the agent's).
    const agentRoles = new Set(['Role/node-registry-credentials', 'ClusterRole/node-registry-credentials']);
    const others = all.filter((o) => (o.kind === 'Role' || o.kind === 'ClusterRole') && !agentRoles.has(`${o.kind}/${o.metadata.name}`));
    expect(others.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['ClusterRole/node-registry-credentials-broker', 'Role/node-registry-credentials-broker']);
    const brokerBindings = all.filter((b) => b.roleRef?.name === 'node-registry-credentials-broker');
    for (const b of brokerBindings) expect(b.subjects?.map((s) => ({ ...s, namespace: s.namespace ?? b.metadata.namespace }))).toEqual([{ kind: 'ServiceAccount', name: 'node-registry-credentials-broker', namespace: AGENT_RIGHTS.namespace }]);
    expect(brokerBindings.map((b) => b.kind).sort()).toEqual(['ClusterRoleBinding', 'RoleBinding']);
    expect(all.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole').filter((r) => agentRoles.has(`${r.kind}/${r.metadata.name}`)).flatMap((r) => r.rules ?? []).length).toBe(AGENT_RIGHTS.namespaced.length + AGENT_RIGHTS.cluster.length);
  });
});
