// Provider mode in the shipped manifests: the chart's agent.kubeletCredentials and the kustomize
// variant daemonset/variants/provider give the agent the same environment; the default stays
// config-json (daemonset/ unchanged), and the schema refuses another value.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CHART } from '../../scripts/manifests.ts';
import { kustomizeSync } from '../support/control-plane.ts';
import { goTool, skipWithout } from '../support/go-tools.ts';
import { expectSafeDaemonSet, expectValidObjects, ofKind, type Obj } from '../support/manifest-safety.ts';

const helm = (values: Obj): { status: number | null; objs: Obj[]; stderr: string } => {
  const r = spawnSync(goTool('helm'), ['template', 'node-registry-credentials', CHART, '--namespace', 'okteto', '-f', '-'], { input: JSON.stringify(values), encoding: 'utf8' });
  return { status: r.status, objs: r.status === 0 ? ((loadAllYaml(r.stdout) as Obj[]).filter(Boolean)) : [], stderr: r.stderr };
};
const agentEnv = (objs: Obj[]): [string, unknown][] =>
  ofKind(objs, 'DaemonSet')
    .find((d) => d['metadata'].name === 'node-registry-credentials')!['spec'].template.spec.containers[0].env.map((e: Obj) => [e['name'], e['value'] ?? e['valueFrom']]);

describe.skipIf(skipWithout(['helm']))('the chart: agent.kubeletCredentials', () => {
  it('passes provider to the agent, leaves the default alone, and refuses another value', () => {
    const provider = helm({ agent: { kubeletCredentials: 'provider' } });
    expect(provider.status).toBe(0);
    expect(agentEnv(provider.objs)).toContainEqual(['NRC_KUBELET_CREDENTIALS', 'provider']);
    expect(agentEnv(helm({}).objs).map(([name]) => name)).not.toContain('NRC_KUBELET_CREDENTIALS');
    const bad = helm({ agent: { kubeletCredentials: 'plugin' } });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/kubeletCredentials/);
  });
});

describe.skipIf(skipWithout(['helm', 'kubectl']))('daemonset/variants/provider', () => {
  it('renders valid, safe objects whose agent has the environment the chart gives it', () => {
    const objs = loadAllYaml(kustomizeSync(join('daemonset', 'variants/provider'))) as Obj[];
    expectValidObjects(objs, 'okteto');
    for (const ds of ofKind(objs, 'DaemonSet')) expectSafeDaemonSet(ds, { image: 'node-registry-credentials:dev' });
    expect(agentEnv(objs)).toEqual(agentEnv(helm({ agent: { kubeletCredentials: 'provider' } }).objs));
  });
});

describe.skipIf(skipWithout(['helm', 'kubectl']))('namespace scoping: agent.namespaceScoping and daemonset/variants/provider-scoped', () => {
  const scopedValues = { agent: { kubeletCredentials: 'provider', namespaceScoping: { enabled: true } } };
  const rbac = (objs: Obj[]): Obj[] =>
    objs
      .filter((o) => o['metadata']?.name === 'node-registry-credentials-token-audience')
      .map((o) => ({ kind: o['kind'], rules: o['rules'], roleRef: o['roleRef'], subjects: o['subjects'] }));

  it('grants the nodes only the token audience, passes the mode, and refuses scoping without provider mode', () => {
    const on = helm(scopedValues);
    expect(on.status).toBe(0);
    expect(agentEnv(on.objs)).toContainEqual(['NRC_NAMESPACE_SCOPING', 'serviceaccount']);
    expect(rbac(on.objs)).toEqual([
      { kind: 'ClusterRole', rules: [{ apiGroups: [''], resources: ['registry-credentials.okteto.com'], verbs: ['request-serviceaccounts-token-audience'] }], roleRef: undefined, subjects: undefined },
      { kind: 'ClusterRoleBinding', rules: undefined, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'node-registry-credentials-token-audience' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:nodes' }] },
    ]);
    expect(rbac(helm({ agent: { kubeletCredentials: 'provider' } }).objs)).toEqual([]);
    const wrong = helm({ agent: { namespaceScoping: { enabled: true } } });
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/kubeletCredentials=provider/);
  });

  it('the variant renders valid, safe objects equal to the chart with scoping on', () => {
    const objs = loadAllYaml(kustomizeSync(join('daemonset', 'variants/provider-scoped'))) as Obj[];
    expectValidObjects(objs.filter(Boolean), 'okteto');
    expect(agentEnv(objs)).toEqual(agentEnv(helm(scopedValues).objs));
    expect(rbac(objs.filter(Boolean))).toEqual(rbac(helm(scopedValues).objs));
  });
});
