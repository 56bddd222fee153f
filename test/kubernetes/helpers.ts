// Shared helpers of the real-API-server suites (test/kubernetes/): the run's control plane (from
// the project's globalSetup), admin operations, and the agent's own credential: a TokenRequest
// token of the DaemonSet's ServiceAccount, bound only by daemonset/'s manifests.
import { request } from 'node:https';
import { AuthenticationV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api, type V1LeaseSpec } from '@kubernetes/client-node';
import { inject, vi } from 'vitest';
import { AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT, type ControlPlaneInfo, kubeConfigFor, serviceAccountKubeconfig, serviceAccountToken, tokenAnchorPod } from '../support/control-plane.ts';

export const NS = AGENT_NAMESPACE;
export const SECRET = 'okteto-dockerconfig-static';

/** The shared control plane, or undefined when the Go tools are not built (suites skip). */
/**
 * A PATCH of Node `name` as `bearer` (merge patch by default), straight over HTTPS so that the
 * API server's refusal comes back as it is: the HTTP status and its message.
 */
export function patchNodeAs(info: ControlPlaneInfo, ca: Buffer): (bearer: string, name: string, body: unknown, type?: string) => Promise<{ status: number; message: string }> {
  return (bearer, name, body, type = 'application/merge-patch+json') =>
    new Promise((resolve, reject) => {
      const req = request(new URL(`/api/v1/nodes/${name}`, info.server), { method: 'PATCH', ca, headers: { authorization: `Bearer ${bearer}`, 'content-type': type }, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, message: String((JSON.parse(text) as { message?: string }).message ?? '') }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
}

export function controlPlane(): ControlPlaneInfo | undefined {
  return inject('controlPlane') ?? undefined;
}

/**
 * vi.waitFor with a 10 s default timeout (vitest's is 1 s): a real API server on a loaded 2-core CI
 * machine, running beside other suites, can take longer than that to deliver a first list.
 */
export function waitFor<T>(fn: () => T | Promise<T>, opts: { timeout?: number; interval?: number } = {}): Promise<T> {
  return vi.waitFor(fn, { timeout: 10_000, interval: 50, ...opts });
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');

export function auths(entries: Record<string, [string, string]>): unknown {
  const out: Record<string, { username: string; password: string }> = {};
  for (const [host, [username, password]] of Object.entries(entries)) out[host] = { username, password };
  return { auths: out };
}

const isStatus = (err: unknown, code: number): boolean => typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;

/**
 * Waits until the API server accepts a ServiceAccount token: the token authenticator looks the
 * account up through an informer, so a token of an account created a moment ago can get 401 at first.
 */
export async function authenticated(kc: KubeConfig, timeoutMs = 10_000): Promise<void> {
  const api = kc.makeApiClient(AuthenticationV1Api);
  const t0 = Date.now();
  for (;;) {
    try {
      await api.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
      return;
    } catch (err) {
      if (!isStatus(err, 401) || Date.now() - t0 > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export class Admin {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly rbac: RbacAuthorizationV1Api;
  constructor(readonly info: ControlPlaneInfo) {
    this.kc = kubeConfigFor(info);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.rbac = this.kc.makeApiClient(RbacAuthorizationV1Api);
  }

  /**
   * A kubeconfig (file and object) with a fresh token of the DaemonSet's ServiceAccount. With
   * `onNode`, the token is bound to a Pod of that account on that Node (created here, with the
   * Node if missing), as the kubelet binds the DaemonSet pod's projected token: it then carries the
   * node name the ValidatingAdmissionPolicy (daemonset/base/admission-policy.yaml) checks, and the
   * agent may annotate that Node. Without it, the token names no Node and may patch none.
   */
  async agent(opts: { onNode?: string; namespace?: string; name?: string } = {}): Promise<{ path: string; token: string; kc: KubeConfig }> {
    const namespace = opts.namespace ?? NS;
    const name = opts.name ?? AGENT_SERVICE_ACCOUNT;
    const boundPod = opts.onNode ? await this.agentPod(opts.onNode, namespace, name) : undefined;
    const { path, token } = await serviceAccountKubeconfig(this.info, namespace, name, boundPod);
    const kc = kubeConfigFor(this.info, token);
    await authenticated(kc);
    return { path, token, kc };
  }

  /** Removes the Pods agentPod created (their tokens stop authenticating). */
  async deleteTokenAnchors(namespace = NS): Promise<void> {
    await this.core.deleteCollectionNamespacedPod({ namespace, labelSelector: 'nrc-test=token-anchor', gracePeriodSeconds: 0 }).catch(() => undefined);
  }

  /** A Pod of `serviceAccount` scheduled onto `node` (no kubelet runs it: it only anchors the token). */
  agentPod(node: string, namespace = NS, serviceAccount = AGENT_SERVICE_ACCOUNT): Promise<{ name: string; uid: string }> {
    return tokenAnchorPod(this.info, node, namespace, serviceAccount);
  }

  /** A ServiceAccount created now (no bindings) and a KubeConfig with its token. */
  async newServiceAccount(name: string, namespace = NS): Promise<{ kc: KubeConfig; remove: () => Promise<void> }> {
    await this.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err: unknown) => {
      if (!isStatus(err, 409)) throw err;
    });
    const kc = kubeConfigFor(this.info, await serviceAccountToken(this.info, namespace, name));
    await authenticated(kc);
    return { kc, remove: async () => void (await this.core.deleteNamespacedServiceAccount({ namespace, name }).catch(() => undefined)) };
  }

  async putSecret(namespace: string, body: { type: string; name: string; data: Record<string, string> }): Promise<void> {
    const secret = { apiVersion: 'v1', kind: 'Secret', type: body.type, metadata: { name: body.name, namespace }, data: body.data };
    try {
      await this.core.createNamespacedSecret({ namespace, body: secret });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      await this.core.replaceNamespacedSecret({ namespace, name: body.name, body: secret });
    }
  }
  putDockerConfigSecret(namespace: string, name: string, config: unknown): Promise<void> {
    const text = typeof config === 'string' ? config : JSON.stringify(config);
    return this.putSecret(namespace, { type: 'kubernetes.io/dockerconfigjson', name, data: { '.dockerconfigjson': b64(text) } });
  }
  putOpaqueSecret(namespace: string, name: string, values: Record<string, string>): Promise<void> {
    return this.putSecret(namespace, { type: 'Opaque', name, data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, b64(v)])) });
  }
  async deleteSecret(namespace: string, name: string): Promise<void> {
    await this.core.deleteNamespacedSecret({ namespace, name }).catch((err: unknown) => {
      if (!isStatus(err, 404)) throw err;
    });
  }

  async putRegistry(namespace: string, name: string, spec: unknown): Promise<void> {
    const body = { apiVersion: 'admin.okteto.com/v1', kind: 'Registry', metadata: { name, namespace }, ...(spec === undefined ? {} : { spec }) };
    const ref = { group: 'admin.okteto.com', version: 'v1', namespace, plural: 'registries' };
    try {
      await this.custom.createNamespacedCustomObject({ ...ref, body });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      const current = (await this.custom.getNamespacedCustomObject({ ...ref, name })) as { metadata: { resourceVersion: string } };
      await this.custom.replaceNamespacedCustomObject({ ...ref, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata.resourceVersion } } });
    }
  }
  async deleteRegistry(namespace: string, name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace, plural: 'registries', name }).catch((err: unknown) => {
      if (!isStatus(err, 404)) throw err;
    });
  }

  async lease(namespace: string, name: string): Promise<V1LeaseSpec | undefined> {
    return this.kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace, name })
      .then((l) => l.spec ?? {})
      .catch((err: unknown) => {
        if (!isStatus(err, 404)) throw err;
        return undefined;
      });
  }
  async deleteLease(namespace: string, name: string): Promise<void> {
    await this.kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ namespace, name }).catch((err: unknown) => {
      if (!isStatus(err, 404)) throw err;
    });
  }

  async ensureNamespace(name: string): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name } } }).catch((err: unknown) => {
      if (!isStatus(err, 409)) throw err;
    });
  }

  /** What an operator adds for a Registry's referenced Secrets (docs/kubernetes.md): get/list/watch on those names. */
  async grantSecrets(namespace: string, names: string[], serviceAccount = { namespace: NS, name: AGENT_SERVICE_ACCOUNT }): Promise<() => Promise<void>> {
    const name = `nrc-test-extra-${names.join('-')}`.slice(0, 60);
    await this.rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: names, verbs: ['get', 'list', 'watch'] }] } });
    await this.rbac.createNamespacedRoleBinding({ namespace, body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', ...serviceAccount }] } });
    return async () => {
      await this.rbac.deleteNamespacedRoleBinding({ namespace, name }).catch(() => undefined);
      await this.rbac.deleteNamespacedRole({ namespace, name }).catch(() => undefined);
    };
  }

  async putNode(name: string, annotations: Record<string, string> = {}): Promise<void> {
    const body = { apiVersion: 'v1', kind: 'Node', metadata: { name, annotations } };
    try {
      await this.core.createNode({ body });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      const current = await this.core.readNode({ name });
      await this.core.replaceNode({ name, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } } });
    }
  }
  async nodeAnnotations(name: string): Promise<Record<string, string>> {
    return (await this.core.readNode({ name })).metadata?.annotations ?? {};
  }
  async deleteNode(name: string): Promise<void> {
    await this.core.deleteNode({ name }).catch((err: unknown) => {
      if (!isStatus(err, 404)) throw err;
    });
  }

  /** Secrets and Registry resources of `namespace` (not the ServiceAccounts' or the platform's own objects). */
  async clean(namespace = NS): Promise<void> {
    const regs = (await this.custom.listNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace, plural: 'registries' })) as { items: { metadata: { name: string } }[] };
    for (const r of regs.items) await this.deleteRegistry(namespace, r.metadata.name);
    const secrets = await this.core.listNamespacedSecret({ namespace });
    for (const s of secrets.items) await this.deleteSecret(namespace, s.metadata!.name!);
  }
}
