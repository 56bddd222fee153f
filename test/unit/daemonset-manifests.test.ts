// Renders every kustomization under daemonset/ with `kubectl kustomize` and validates each
// object against the Kubernetes OpenAPI schemas shipped by kubernetes-models, then checks the
// safety properties the agent promises (host directories only, no privileged, capabilities...).
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadAllYaml } from '@kubernetes/client-node';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { describe, expect, it } from 'vitest';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';

const ROOT = fileURLToPath(new URL('../../daemonset/', import.meta.url));
// kubectl renders the manifests; without it these tests skip locally but fail in CI.
const HAS_KUBECTL = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!HAS_KUBECTL && process.env['CI']) throw new Error('kubectl is required for the manifest tests (kubectl kustomize); install it (see scripts/setup-host.sh)');
if (!HAS_KUBECTL) console.warn('daemonset manifest tests SKIPPED: kubectl not found on PATH');
const VARIANTS = ['.', 'crd', 'variants/mounted-secret', 'variants/k3s', 'variants/cleanup'];

type Obj = Record<string, any>; // rendered YAML, checked field by field below

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'apps/v1/DaemonSet': DaemonSet,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
};

const rendered = new Map<string, Obj[]>();
function render(variant: string): Obj[] {
  let objs = rendered.get(variant);
  if (!objs) {
    const yaml = execFileSync('kubectl', ['kustomize', `${ROOT}${variant}`], { encoding: 'utf8' });
    objs = loadAllYaml(yaml) as Obj[];
    rendered.set(variant, objs);
  }
  return objs;
}
const ofKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o['kind'] === kind);

describe.skipIf(!HAS_KUBECTL).each(VARIANTS)('daemonset/%s', (variant) => {
  it('renders objects that are valid against the Kubernetes schemas', () => {
    const objs = render(variant);
    expect(objs.length).toBeGreaterThan(0);
    for (const o of objs) {
      const model = MODELS[`${o['apiVersion']}/${o['kind']}`];
      expect(model, `no schema for ${o['apiVersion']}/${o['kind']}`).toBeDefined();
      expect(() => new model!(o as never).validate(), `${o['kind']}/${o['metadata']?.name}`).not.toThrow();
      if (o['kind'] !== 'CustomResourceDefinition' && !o['kind'].startsWith('Cluster')) expect(o['metadata'].namespace).toBe('okteto');
    }
  });

  it('keeps every DaemonSet within the safety rules', () => {
    for (const ds of ofKind(render(variant), 'DaemonSet')) {
      const pod = ds['spec'].template.spec;
      expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
      expect(pod.priorityClassName).toBe('system-node-critical');
      expect(pod.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostIPC ?? false).toBe(false);
      const hostVolumes = new Map<string, Obj>();
      for (const v of pod.volumes ?? []) {
        if (!v.hostPath) continue;
        hostVolumes.set(v.name, v);
        // Directories only; only the agent's own state dir may be created on the host.
        expect(['Directory', 'DirectoryOrCreate'], `${v.name} hostPath type`).toContain(v.hostPath.type);
        if (v.hostPath.type === 'DirectoryOrCreate') expect(v.hostPath.path).toBe('/var/lib/node-registry-credentials');
      }
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const sc = c.securityContext;
        expect(sc.privileged ?? false).toBe(false);
        expect(sc.allowPrivilegeEscalation).toBe(false);
        expect(sc.readOnlyRootFilesystem).toBe(true);
        expect(sc.capabilities.drop).toEqual(['ALL']);
        for (const cap of sc.capabilities.add ?? []) expect(['CHOWN', 'DAC_OVERRIDE', 'FOWNER']).toContain(cap);
        expect(c.resources.requests.cpu).toBeDefined();
        expect(c.resources.requests.memory).toBeDefined();
        expect(c.resources.limits.memory).toBeDefined();
        expect(c.image).toBe('node-registry-credentials:dev');
        for (const m of c.volumeMounts ?? []) {
          const hv = hostVolumes.get(m.name);
          if (!hv) continue;
          // Host dirs appear at the same path under /host, where the agent expects them.
          expect(m.mountPath).toBe(`/host${hv.hostPath.path}`);
          expect(sc.runAsUser).toBe(0);
        }
        if (!(c.volumeMounts ?? []).some((m: Obj) => hostVolumes.has(m.name))) {
          expect(sc.capabilities.add ?? []).toEqual([]); // no host access, no capabilities
        }
      }
    }
  });
});

describe.skipIf(!HAS_KUBECTL)('the agent DaemonSet', () => {
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

  it('grants only what the agent reads: its Secret by name, registries, one service account\'s tokens; nodes get/patch and events create at cluster scope', () => {
    const role = ofKind(render('.'), 'Role')[0]!;
    expect(role['rules']).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['okteto-dockerconfig-static'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['admin.okteto.com'], resources: ['registries'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['okteto'], verbs: ['create'] },
    ]);
    const clusterRole = ofKind(render('.'), 'ClusterRole')[0]!;
    // Events about a Node are accepted only in namespace default: create at cluster scope (no read).
    expect(clusterRole['rules']).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    for (const b of [...ofKind(render('.'), 'RoleBinding'), ...ofKind(render('.'), 'ClusterRoleBinding')]) {
      expect(b['subjects']).toEqual([{ kind: 'ServiceAccount', name: 'node-registry-credentials', namespace: 'okteto' }]);
    }
  });

  it('mounted-Secret variant: reads the Secret from a volume and has no Secret RBAC', () => {
    expect(env('variants/mounted-secret')['NRC_SECRET_DIR']).toBe('/etc/node-registry-credentials/secret');
    const vol = agent('variants/mounted-secret').volumes.find((v: Obj) => v.secret);
    expect(vol.secret).toMatchObject({ secretName: 'okteto-dockerconfig-static', optional: true });
    const rules = ofKind(render('variants/mounted-secret'), 'Role')[0]!['rules'] as Obj[];
    expect(rules.some((r) => r['resources'].includes('secrets'))).toBe(false);
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
