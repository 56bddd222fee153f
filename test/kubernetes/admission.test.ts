// The ValidatingAdmissionPolicy node-registry-credentials-own-node (daemonset/base/admission-policy.yaml,
// installed with daemonset/ as shipped) on the real kube-apiserver: RBAC lets the agent patch every
// Node; the policy narrows that to the Node named in its pod-bound token (user extra
// authentication.kubernetes.io/node-name, added by the API server for a TokenRequest bound to a Pod
// with spec.nodeName) and to annotations under registry-credentials.okteto.com/. Every refusal below
// is the policy's: without its binding the same requests succeed (RBAC allows them).
import { readFile } from 'node:fs/promises';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_HASH, NodeStatusReporter } from '../../src/report/node-status.ts';
import type { AgentError } from '../../src/errors.ts';
import { AGENT_SERVICE_ACCOUNT, kubeConfigFor, serviceAccountToken } from '../support/control-plane.ts';
import { Admin, controlPlane, NS, patchNodeAs, waitFor } from './helpers.ts';

const info = controlPlane();
const OWN = 'vap-node-own';
const OTHER = 'vap-node-other';
const OURS = 'registry-credentials.okteto.com/applied-hash';
const FOREIGN = { 'keep.example.com/other': 'yes' };

describe.skipIf(!info)("the admission policy on the agent's Node patch (real API server)", () => {
  let admin: Admin;
  let token: string;
  let ca: Buffer;

  /** A merge patch of Node `name` as `bearer`: the HTTP status and the API server's message. */
  const patch = (bearer: string, name: string, body: unknown): Promise<{ status: number; message: string }> => patchNodeAs(info!, ca)(bearer, name, body);
  const annotate = (annotations: Record<string, string | null>): { metadata: { annotations: Record<string, string | null> } } => ({ metadata: { annotations } });

  beforeAll(async () => {
    admin = new Admin(info!);
    ca = await readFile(info!.caFile);
    for (const n of [OWN, OTHER]) await admin.putNode(n, FOREIGN);
    token = (await admin.agent({ onNode: OWN })).token;
  });
  afterAll(async () => {
    await admin.deleteTokenAnchors();
    for (const n of [OWN, OTHER]) await admin.deleteNode(n);
  });

  it('the pod-bound token carries its Node: the API server adds the node-name extra the policy reads', async () => {
    const review = await kubeConfigFor(info!, token).makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${NS}:${AGENT_SERVICE_ACCOUNT}`);
    expect(review.status?.userInfo?.extra?.['authentication.kubernetes.io/node-name']).toEqual([OWN]);
  });

  it('refuses a patch of another Node (403, the policy\'s message); the Node is unchanged', async () => {
    // The policy is loaded asynchronously after the install: wait for it to answer (10 s at most).
    await waitFor(async () => expect((await patch(token, OTHER, annotate({ [OURS]: 'sha256:x' }))).status).toBe(403));
    const r = await patch(token, OTHER, annotate({ [OURS]: 'sha256:x' }));
    expect(r.message).toContain('node-registry-credentials may only change its own Node');
    expect(r.message).toContain(`token bound to node ${OWN}, request for ${OTHER}`);
    expect(await admin.nodeAnnotations(OTHER)).toEqual(FOREIGN);
  });

  it('allows its own annotations on its own Node, set and removed', async () => {
    expect(await patch(token, OWN, annotate({ [OURS]: 'sha256:own' }))).toMatchObject({ status: 200 });
    expect(await admin.nodeAnnotations(OWN)).toEqual({ ...FOREIGN, [OURS]: 'sha256:own' });
    expect(await patch(token, OWN, annotate({ [OURS]: null }))).toMatchObject({ status: 200 });
    expect(await admin.nodeAnnotations(OWN)).toEqual(FOREIGN);
  });

  it('refuses foreign annotation keys on its own Node: adding, changing and removing them; labels and spec too', async () => {
    // (The API server's TaintNodesByCondition admission gave the new Node its not-ready taint.)
    const before = await admin.core.readNode({ name: OWN });
    const refused: [string, unknown, string][] = [
      ['a new foreign key', annotate({ 'evil.example.com/x': '1' }), 'may only add or change annotations under registry-credentials.okteto.com/'],
      ['a look-alike prefix', annotate({ 'registry-credentials.okteto.com.evil/x': '1' }), 'may only add or change annotations under registry-credentials.okteto.com/'],
      ['changing a foreign key', annotate({ 'keep.example.com/other': 'no' }), 'may only add or change annotations under registry-credentials.okteto.com/'],
      ['removing a foreign key', annotate({ 'keep.example.com/other': null }), 'may only remove annotations under registry-credentials.okteto.com/'],
      ['ours plus a foreign key in one patch', annotate({ [OURS]: 'sha256:y', 'evil.example.com/x': '1' }), 'may only add or change annotations under registry-credentials.okteto.com/'],
      ['a label', { metadata: { labels: { 'node-role.kubernetes.io/control-plane': '' } } }, "may not change a Node's labels"],
      ['spec.unschedulable', { spec: { unschedulable: true } }, "may not change a Node's spec"],
      ['a taint', { spec: { taints: [{ key: 'evil', effect: 'NoSchedule' }] } }, 'may only remove the startup taint'],
    ];
    for (const [what, body, message] of refused) {
      const r = await patch(token, OWN, body);
      expect(r.status, what).toBe(403);
      expect(r.message, what).toContain(message);
    }
    const node = await admin.core.readNode({ name: OWN });
    expect(node.metadata?.annotations).toEqual(FOREIGN);
    expect(node.metadata?.labels ?? {}).toEqual({});
    expect(node.spec).toEqual(before.spec);
    expect(node.spec?.unschedulable).toBeUndefined();
  });

  it('a token not bound to a Pod names no Node and may change none, not even with its own keys', async () => {
    const unbound = await serviceAccountToken(info!, NS, AGENT_SERVICE_ACCOUNT);
    for (const n of [OWN, OTHER]) {
      const r = await patch(unbound, n, annotate({ [OURS]: 'sha256:z' }));
      expect(r.status, n).toBe(403);
      expect(r.message).toContain('token bound to node <none>');
    }
  });

  it("the agent's own reporter: its Node annotated, another Node's patch refused and reported with a code, never thrown", async () => {
    const failures: AgentError[] = [];
    const kc = kubeConfigFor(info!, token);
    const report = (nodeName: string): NodeStatusReporter => new NodeStatusReporter({ kubeConfig: kc, nodeName, eventIntervalMs: 60_000, maxEventsPerInterval: 3, onError: (e) => failures.push(e) });
    await report(OWN).reportApply({ hash: 'sha256:reporter', at: new Date(), errors: [] });
    expect((await admin.nodeAnnotations(OWN))[ANNOTATION_HASH]).toBe('sha256:reporter');
    await report(OTHER).reportApply({ hash: 'sha256:reporter', at: new Date(), errors: [] });
    expect((await admin.nodeAnnotations(OTHER))[ANNOTATION_HASH]).toBeUndefined();
    expect(failures.map((f) => f.code)).toEqual(['NRC_E_NODE_STATUS_FAILED']);
    expect(failures[0]?.message).toContain('403');
  });
});
