// Renders every kustomization under daemonset/ with `kubectl kustomize` and validates each
// object against the Kubernetes OpenAPI schemas shipped by kubernetes-models, then checks the
// safety properties the agent promises (host directories only, no privileged, capabilities...).
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';
import { kustomizeSync } from '../support/control-plane.ts';
import { skipWithout } from '../support/go-tools.ts';
import { expectSafeDaemonSet, expectValidObjects, ofKind, type Obj } from '../support/manifest-safety.ts';

// kubectl (testenv/kube, the server's minor) renders the manifests; without it these skip locally, never in CI.
const NO_KUBECTL = skipWithout(['kubectl']);
const VARIANTS = ['.', 'crd', 'variants/mounted-secret', 'variants/k3s', 'variants/cleanup', 'variants/per-node-ecr', 'variants/broker-platform-account'];

const rendered = new Map<string, Obj[]>();
function render(variant: string): Obj[] {
  let objs = rendered.get(variant);
  if (!objs) {
    const yaml = kustomizeSync(join('daemonset', variant));
    objs = loadAllYaml(yaml) as Obj[];
    rendered.set(variant, objs);
  }
  return objs;
}

describe.skipIf(NO_KUBECTL).each(VARIANTS)('daemonset/%s', (variant) => {
  it('renders objects that are valid against the Kubernetes schemas', () => {
    expectValidObjects(render(variant), 'okteto');
    for (const o of render(variant)) {
      const clusterScoped = o['kind'] === 'CustomResourceDefinition' || o['kind'].startsWith('Cluster') || o['kind'].startsWith('ValidatingAdmissionPolicy');
      if (!clusterScoped) expect(o['metadata'].namespace).toBe('okteto');
    }
  });

  it('keeps every DaemonSet within the safety rules', () => {
    for (const ds of ofKind(render(variant), 'DaemonSet')) expectSafeDaemonSet(ds, { image: 'node-registry-credentials:dev' });
  });
});

describe.skipIf(NO_KUBECTL)('the agent DaemonSet', () => {
  const agent = (variant: string): Obj => ofKind(render(variant), 'DaemonSet')[0]!['spec'].template.spec;
  const env = (variant: string): Record<string, Obj> =>
    Object.fromEntries(agent(variant).containers[0].env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));

  it('runs `run` with the host root, the node name, the Secret to watch and probes on the server', () => {
    const c = agent('.').containers[0];
    expect(c.args).toEqual(['run']);
    expect(env('.')).toMatchObject({
      NRC_HOST_ROOT: '/host',
      NRC_NODE_NAME: { fieldRef: { fieldPath: 'spec.nodeName' } },
      NRC_SECRET_NAME: 'okteto-dockerconfig-static',
      NRC_LISTEN_ADDRESS: '0.0.0.0:8080',
    });
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    const mounted = agent('.').volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => v.hostPath.path).sort();
    expect(mounted).toEqual(['/etc', '/root', '/var/lib/kubelet', '/var/lib/node-registry-credentials']);
    expect(agent('variants/k3s').volumes.map((v: Obj) => v.hostPath?.path)).toContain('/var/lib/rancher');
  });

  it('gives the agent the registry config from a ConfigMap that the agent can parse', () => {
    const configMap = ofKind(render('.'), 'ConfigMap')[0]!;
    const volume = agent('.').volumes.find((v: Obj) => v.configMap)!;
    expect(volume.configMap.name).toBe(configMap['metadata'].name);
    const mount = agent('.').containers[0].volumeMounts.find((m: Obj) => m.name === volume.name);
    expect(env('.')['NRC_REGISTRY_CONFIG']).toBe(`${mount.mountPath}/registry.toml`);
    const parsed = parseRegistryConfig(configMap['data']['registry.toml']);
    expect(parsed).toMatchObject({ readable: true, errors: [] });
  });

  const roleOf = (variant: string, name: string): Obj[] => ofKind(render(variant), 'Role').find((r) => r['metadata'].name === name)!['rules'] as Obj[];
  const clusterRoleOf = (variant: string, name = 'node-registry-credentials'): Obj[] => ofKind(render(variant), 'ClusterRole').find((r) => r['metadata'].name === name)!['rules'] as Obj[];

  it("grants the node agent exactly: get/list/watch on the two Secrets by name; patch Nodes and create Events at cluster scope (issue 15)", () => {
    expect(roleOf('.', 'node-registry-credentials')).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['okteto-dockerconfig-static', 'node-registry-credentials-broker'], verbs: ['get', 'list', 'watch'] },
    ]);
    // Events about a Node are accepted only in namespace default: create at cluster scope (no read).
    expect(clusterRoleOf('.')).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    const agentBindings = [...ofKind(render('.'), 'RoleBinding'), ...ofKind(render('.'), 'ClusterRoleBinding')].filter((b) => b['metadata'].name === 'node-registry-credentials');
    expect(agentBindings).toHaveLength(2);
    for (const b of agentBindings) expect(b['subjects']).toEqual([{ kind: 'ServiceAccount', name: 'node-registry-credentials', namespace: 'okteto' }]);
    // Nothing else anywhere names the agent's account.
    const all = render('.').filter((o) => o['kind'].endsWith('Binding') && !o['kind'].startsWith('Validating'));
    const toAgent = all.filter((b) => (b['subjects'] as Obj[]).some((s) => s['name'] === 'node-registry-credentials'));
    expect(toAgent.map((b) => b['metadata'].name)).toEqual(['node-registry-credentials', 'node-registry-credentials']);
    // The agent watches both Secrets by name.
    expect(env('.')).toMatchObject({ NRC_SECRET_NAME: 'okteto-dockerconfig-static', NRC_BROKER_SECRET_NAME: 'node-registry-credentials-broker' });
    expect(env('.')['NRC_REGISTRIES']).toBeUndefined();
  });

  it('installs the broker: 2 replicas of the same image running `broker`, its own account and a Role for what only it reads', () => {
    const deployments = ofKind(render('.'), 'Deployment');
    expect(deployments).toHaveLength(1);
    const d = deployments[0]!;
    expect(d['metadata'].name).toBe('node-registry-credentials-broker');
    expect(d['spec'].replicas).toBe(2);
    const pod = d['spec'].template.spec;
    expect(pod.serviceAccountName).toBe('node-registry-credentials-broker');
    const c = pod.containers[0];
    expect(c.image).toBe('node-registry-credentials:dev');
    expect(c.args).toEqual(['broker']);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect((pod.volumes as Obj[]).some((v) => v['hostPath'])).toBe(false);
    const envs = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
    expect(envs).toMatchObject({ POD_NAME: { fieldRef: { fieldPath: 'metadata.name' } }, NRC_BROKER_SECRET_NAME: 'node-registry-credentials-broker', NRC_ECR_SERVICE_ACCOUNT: 'okteto/node-registry-credentials-broker' });
    expect(roleOf('.', 'node-registry-credentials-broker')).toEqual([
      { apiGroups: ['admin.okteto.com'], resources: ['registries'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['node-registry-credentials-broker'], verbs: ['update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['node-registry-credentials-broker'], verbs: ['get', 'update'] },
      // Tokens of its own account only; the platform's okteto account only in the opt-in variant.
      { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['node-registry-credentials-broker'], verbs: ['create'] },
      // Issue 24: its own part of the Registry status (server-side apply) and Events on Registries.
      { apiGroups: ['admin.okteto.com'], resources: ['registries/status'], verbs: ['patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    // Issue 24: the Effective count reads the Nodes' annotations (a metadata-only watch); nothing else at cluster scope.
    expect(clusterRoleOf('.', 'node-registry-credentials-broker')).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] },
      // Issue 26: namespace selectors of scoped registries, resolved by the API server.
      { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
    ]);
    const crb = ofKind(render('.'), 'ClusterRoleBinding').find((b) => b['metadata'].name === 'node-registry-credentials-broker')!;
    expect(crb['roleRef']).toMatchObject({ kind: 'ClusterRole', name: 'node-registry-credentials-broker' });
    expect(crb['subjects']).toEqual([{ kind: 'ServiceAccount', name: 'node-registry-credentials-broker', namespace: 'okteto' }]);
    const platform = roleOf('variants/broker-platform-account', 'node-registry-credentials-broker').find((r) => r['resources'][0] === 'serviceaccounts/token');
    expect(platform).toEqual({ apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['okteto'], verbs: ['create'] });
    expect(roleOf('variants/broker-platform-account', 'node-registry-credentials')).toEqual(roleOf('.', 'node-registry-credentials'));
    // No token right for any account anywhere in the default install but the broker's own.
    const tokenRules = ofKind(render('.'), 'Role').flatMap((r) => (r['rules'] as Obj[]).filter((x) => x['resources'].includes('serviceaccounts/token')));
    expect(tokenRules.map((r) => r['resourceNames'])).toEqual([['node-registry-credentials-broker']]);
  });

  it("ships a ValidatingAdmissionPolicy that limits the agent's Node patch to its own Node (token node name) and its own annotations", () => {
    const [policy] = ofKind(render('.'), 'ValidatingAdmissionPolicy');
    const [binding] = ofKind(render('.'), 'ValidatingAdmissionPolicyBinding');
    expect(binding!['spec']).toEqual({ policyName: policy!['metadata'].name, validationActions: ['Deny'] });
    expect(policy!['spec'].failurePolicy).toBe('Fail');
    expect(policy!['spec'].matchConstraints.resourceRules[0]).toMatchObject({ resources: ['nodes', 'nodes/status'], operations: ['UPDATE'] });
    expect(policy!['spec'].matchConditions[0].expression).toContain("'system:serviceaccount:okteto:node-registry-credentials'");
    const text = JSON.stringify(policy!['spec']);
    expect(text).toContain("authentication.kubernetes.io/node-name");
    expect(text).toContain("registry-credentials.okteto.com/");
  });

  it('per-node ECR variant: no broker; Registry resources and its own account\'s tokens only; never another account', () => {
    const objs = render('variants/per-node-ecr');
    expect(ofKind(objs, 'Deployment')).toEqual([]);
    expect(objs.some((o) => o['metadata'].name === 'node-registry-credentials-broker')).toBe(false);
    expect(env('variants/per-node-ecr')).toMatchObject({ NRC_REGISTRIES: 'true', NRC_BROKER_SECRET_NAME: '', NRC_SECRET_NAME: 'okteto-dockerconfig-static', NRC_ECR_SERVICE_ACCOUNT: 'okteto/node-registry-credentials' });
    expect(roleOf('variants/per-node-ecr', 'node-registry-credentials')).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['okteto-dockerconfig-static'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['admin.okteto.com'], resources: ['registries'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['node-registry-credentials'], verbs: ['create'] },
    ]);
    expect(clusterRoleOf('variants/per-node-ecr')).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    // The admission policy still applies.
    expect(ofKind(objs, 'ValidatingAdmissionPolicy')).toHaveLength(1);
  });

  it("mounted-Secret variant: reads the platform's Secret from a volume, watches only the broker's by name", () => {
    expect(env('variants/mounted-secret')['NRC_SECRET_DIR']).toBe('/etc/node-registry-credentials/secret');
    const vol = agent('variants/mounted-secret').volumes.find((v: Obj) => v.secret);
    expect(vol.secret).toMatchObject({ secretName: 'okteto-dockerconfig-static', optional: true });
    const rules = roleOf('variants/mounted-secret', 'node-registry-credentials');
    expect(rules.filter((r) => r['resources'].includes('secrets'))).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['node-registry-credentials-broker'], verbs: ['get', 'list', 'watch'] },
    ]);
  });

  it('cleanup variant runs `cleanup` on every node with no API access', () => {
    const pod = agent('variants/cleanup');
    expect(pod.initContainers[0].args).toEqual(['cleanup']);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(ofKind(render('variants/cleanup'), 'Role')).toEqual([]);
  });

  it('ships the registries.admin.okteto.com CRD with the three kinds', () => {
    const crd = render('crd')[0]!;
    expect(crd['metadata'].name).toBe('registries.admin.okteto.com');
    expect(crd['spec'].scope).toBe('Namespaced');
    const spec = crd['spec'].versions[0].schema.openAPIV3Schema.properties.spec;
    expect(Object.keys(spec.properties).sort()).toEqual(['awsIamRole', 'awsIamUser', 'static']);
    expect(spec.properties.static.properties.port).toMatchObject({ type: 'integer', minimum: 1, maximum: 65535 });
  });
});
