// The safety rules every shipped DaemonSet keeps, and the Kubernetes schemas every object must
// pass: shared by the kustomize tests (test/unit/daemonset-manifests.test.ts) and the chart's
// (test/unit/chart.test.ts), so both hold the same promises.
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { expect } from 'vitest';

export type Obj = Record<string, any>; // rendered YAML, checked field by field

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
};
// The Prometheus Operator's kinds have no model here; their fields are asserted by the chart test.
const OPERATOR_KINDS = new Set(['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PodMonitor', 'monitoring.coreos.com/v1/PrometheusRule']);

export const ofKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o['kind'] === kind);

/** Every object passes its Kubernetes schema; namespaced ones are in `namespace`. */
export function expectValidObjects(objs: Obj[], namespace: string): void {
  expect(objs.length).toBeGreaterThan(0);
  for (const o of objs) {
    const type = `${o['apiVersion']}/${o['kind']}`;
    const clusterScoped = o['kind'] === 'CustomResourceDefinition' || o['kind'].startsWith('Cluster') || o['kind'].startsWith('ValidatingAdmissionPolicy');
    if (!clusterScoped && o['metadata'].namespace !== undefined) expect(o['metadata'].namespace, `${o['kind']}/${o['metadata'].name}`).toBe(namespace);
    if (OPERATOR_KINDS.has(type)) continue;
    const model = MODELS[type];
    expect(model, `no schema for ${type}`).toBeDefined();
    expect(() => new model!(o as never).validate(), `${o['kind']}/${o['metadata']?.name}`).not.toThrow();
  }
}

export interface DaemonSetExpectations {
  readonly image: string;
  /** Default: the shipped ones (every node, system-node-critical). */
  readonly tolerations?: Obj[];
  readonly priorityClassName?: string | undefined;
}

/** Host directories only, no privileged, no host namespaces, only the three capabilities. */
export function expectSafeDaemonSet(ds: Obj, want: DaemonSetExpectations): void {
  const pod = ds['spec'].template.spec;
  for (const t of want.tolerations ?? [{ operator: 'Exists' }]) expect(pod.tolerations).toContainEqual(t);
  expect(pod.priorityClassName).toBe('priorityClassName' in want ? want.priorityClassName : 'system-node-critical');
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
    expect(c.image).toBe(want.image);
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
