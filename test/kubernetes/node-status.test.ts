// Node annotations and Warning Events on the real API server, written as the DaemonSet's
// ServiceAccount (ClusterRole: nodes patch, events create) with a token bound to a Pod on that Node
// (the admission policy lets the agent change only its own Node). Events about a Node must be in
// namespace default: the real API server refuses them anywhere else (the fake used to accept them).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AgentError } from '../../src/errors.ts';
import { ANNOTATION_AT, ANNOTATION_ERRORS, ANNOTATION_HASH, ANNOTATION_PROVIDER_ASKED, NodeStatusReporter } from '../../src/report/node-status.ts';
import { Admin, controlPlane, NS } from './helpers.ts';

const info = controlPlane();
let seq = 0;

describe.skipIf(!info)('node status reporting against the real API server', () => {
  let admin: Admin;
  let agentKc: KubeConfig;
  let node: string;
  let clock: number;
  let failures: AgentError[];

  beforeAll(async () => {
    admin = new Admin(info!);
  });
  beforeEach(async () => {
    node = `status-node-${++seq}`;
    await admin.putNode(node, { 'keep.example.com/other': 'yes' });
    agentKc = (await admin.agent({ onNode: node })).kc;
    clock = Date.parse('2025-01-01T00:00:00Z');
    failures = [];
  });
  afterAll(async () => {
    await admin.deleteTokenAnchors();
    for (let i = 1; i <= seq; i++) await admin.deleteNode(`status-node-${i}`);
  });

  const reporter = (kc: KubeConfig = agentKc): NodeStatusReporter =>
    new NodeStatusReporter({ kubeConfig: kc, nodeName: node, eventIntervalMs: 60_000, maxEventsPerInterval: 3, now: () => new Date(clock), onError: (e) => failures.push(e) });
  const events = async (): Promise<Record<string, unknown>[]> =>
    (await admin.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${node}` })).items as unknown as Record<string, unknown>[];

  it('annotates the Node with the applied hash, time and error codes, keeping other annotations', async () => {
    const r = reporter();
    await r.reportApply({ hash: 'sha256:aaa', at: new Date(clock), errors: [] });
    expect(failures).toEqual([]);
    expect(await admin.nodeAnnotations(node)).toEqual({ 'keep.example.com/other': 'yes', [ANNOTATION_HASH]: 'sha256:aaa', [ANNOTATION_AT]: '2025-01-01T00:00:00.000Z' });

    await r.reportApply({ hash: 'sha256:bbb', at: new Date(clock + 1000), errors: [{ code: 'NRC_E_WRITE_FAILED', subject: '/etc/containerd/certs.d' }, { code: 'NRC_E_AUTH_BASE64', subject: 'reg.example.com' }] });
    expect((await admin.nodeAnnotations(node))[ANNOTATION_ERRORS]).toBe('NRC_E_AUTH_BASE64,NRC_E_WRITE_FAILED');

    // A merge patch with null removes the annotation on the real server.
    await r.reportApply({ hash: 'sha256:bbb', at: new Date(clock + 2000), errors: [] });
    expect((await admin.nodeAnnotations(node))[ANNOTATION_ERRORS]).toBeUndefined();
    expect(failures).toEqual([]);
  });

  it('does not patch the Node again for an identical result (the resourceVersion stays)', async () => {
    const r = reporter();
    await r.reportApply({ hash: 'h1', at: new Date(clock), errors: [] });
    const rv = (await admin.core.readNode({ name: node })).metadata?.resourceVersion;
    await r.reportApply({ hash: 'h1', at: new Date(clock + 5000), errors: [] });
    expect((await admin.core.readNode({ name: node })).metadata?.resourceVersion).toBe(rv);
    expect((await admin.nodeAnnotations(node))[ANNOTATION_AT]).toBe('2025-01-01T00:00:00.000Z');
  });

  it('creates Warning Events on the Node (shown by kubectl describe node), rate-limited', async () => {
    const r = reporter();
    const err = { code: 'NRC_E_WRITE_FAILED', subject: '/var/lib/kubelet/config.json' };
    await r.reportApply({ hash: 'h', at: new Date(clock), errors: [err] });
    await r.reportApply({ hash: 'h', at: new Date(clock), errors: [err] });
    expect(failures).toEqual([]);
    expect(await events()).toHaveLength(1);
    const ev = (await events())[0]!;
    expect(ev).toMatchObject({ type: 'Warning', reason: 'RegistryCredentialsError', involvedObject: { kind: 'Node', name: node } });
    expect(String(ev['message'])).toContain('NRC_E_WRITE_FAILED [/var/lib/kubelet/config.json]: Writing a host file failed');

    clock += 61_000;
    await r.reportApply({ hash: 'h', at: new Date(clock), errors: [err] });
    expect(await events()).toHaveLength(2);
    const many = ['a', 'b', 'c', 'd', 'e'].map((h) => ({ code: 'NRC_E_AUTH_MISSING', subject: `${h}.example.com` }));
    await r.reportApply({ hash: 'h', at: new Date(clock), errors: many });
    expect(await events()).toHaveLength(4); // 3 per window in total
    // The agent's identity cannot read Events back (create only).
    await expect(agentKc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: 'default' })).rejects.toMatchObject({ code: 403 });
  });

  it('regression: the API server refuses an Event about a Node outside namespace default', async () => {
    await expect(
      admin.core.createNamespacedEvent({ namespace: NS, body: { metadata: { generateName: 'x.' }, involvedObject: { apiVersion: 'v1', kind: 'Node', name: node }, reason: 'R', message: 'm', type: 'Warning' } }),
    ).rejects.toMatchObject({ code: 422 });
    await reporter().reportApply({ hash: 'h', at: new Date(clock), errors: [{ code: 'NRC_E_WRITE_FAILED' }] });
    expect(failures).toEqual([]);
    expect(await events()).toHaveLength(1);
  });

  it('provider mode: the provider-asked annotation, patched when its state changes only, without moving applied-at (the admission policy allows it)', async () => {
    const r = reporter();
    const since = new Date(clock + 30_000);
    await r.reportApply({ hash: 'h', at: new Date(clock), errors: [], providerAsked: { state: 'not-asked-yet' } });
    expect(failures).toEqual([]);
    expect(await admin.nodeAnnotations(node)).toEqual({ 'keep.example.com/other': 'yes', [ANNOTATION_HASH]: 'h', [ANNOTATION_AT]: '2025-01-01T00:00:00.000Z', [ANNOTATION_PROVIDER_ASKED]: 'not-asked-yet' });

    await r.reportApply({ hash: 'h', at: new Date(clock + 60_000), errors: [], providerAsked: { state: 'asking', at: since } });
    expect(failures).toEqual([]);
    const asking = await admin.nodeAnnotations(node);
    expect(asking[ANNOTATION_PROVIDER_ASKED]).toBe('asking 2025-01-01T00:00:30.000Z');
    expect(asking[ANNOTATION_AT]).toBe('2025-01-01T00:00:00.000Z');

    // The same state at the next resyncs (the kubelet pulled again): no patch.
    const rv = (await admin.core.readNode({ name: node })).metadata?.resourceVersion;
    await r.reportApply({ hash: 'h', at: new Date(clock + 120_000), errors: [], providerAsked: { state: 'asking', at: since } });
    expect((await admin.core.readNode({ name: node })).metadata?.resourceVersion).toBe(rv);

    // Back to config-json mode: the annotation is removed.
    await r.reportApply({ hash: 'h2', at: new Date(clock + 180_000), errors: [] });
    expect(failures).toEqual([]);
    expect((await admin.nodeAnnotations(node))[ANNOTATION_PROVIDER_ASKED]).toBeUndefined();
  });

  it('an identity without the rights: 403s reported through onError, never thrown', async () => {
    const { kc, remove } = await admin.newServiceAccount('nrc-unbound-status');
    await expect(reporter(kc).reportApply({ hash: 'h', at: new Date(clock), errors: [{ code: 'NRC_E_WRITE_FAILED' }] })).resolves.toBeUndefined();
    expect(failures.map((f) => f.code)).toEqual(['NRC_E_NODE_STATUS_FAILED', 'NRC_E_NODE_STATUS_FAILED']);
    expect(failures[0]?.message).toContain('403 Forbidden');
    await remove();
  });
});
