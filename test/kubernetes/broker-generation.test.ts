// The node side of issue 24's Effective count, on the real API server: the broker Secret's write
// counter (annotation generation) reaches the agent through its Secret source, and the agent's
// NodeStatusReporter writes it on its own Node (annotation broker-generation) through the
// admission policy, without moving applied-at when only the counter changed.
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_AT, ANNOTATION_BROKER_GENERATION, NodeStatusReporter } from '../../src/report/node-status.ts';
import { BROKER_GENERATION_ANNOTATION, KubernetesSecretSource } from '../../src/sources/kubernetes/secret-source.ts';
import { Admin, auths, b64, controlPlane, NS, waitFor } from './helpers.ts';

const info = controlPlane();
const BROKER = 'node-registry-credentials-broker';
const NODE_NAME = 'generation-node-1';

describe.skipIf(!info)('the broker write counter, from the broker\'s Secret to the Node (real API server)', () => {
  let admin: Admin;
  let agent: KubeConfig;

  beforeAll(async () => {
    admin = new Admin(info!);
    await admin.putNode(NODE_NAME);
    agent = (await admin.agent({ onNode: NODE_NAME })).kc;
  });
  afterAll(async () => {
    await admin.clean();
    await admin.deleteTokenAnchors();
    await admin.deleteNode(NODE_NAME);
  });

  it('the Secret source reports the counter with each snapshot; the Node gets it, applied-at stays', async () => {
    const secret = (generation: string) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: { name: BROKER, namespace: NS, annotations: { [BROKER_GENERATION_ANNOTATION]: generation } },
      data: { '.dockerconfigjson': b64(JSON.stringify(auths({ 'reg.example.com': ['u', 'p'] }))) },
    });
    await admin.deleteSecret(NS, BROKER);
    await admin.core.createNamespacedSecret({ namespace: NS, body: secret('7') });
    const seen: (number | undefined)[] = [];
    const source = new KubernetesSecretSource({ kubeConfig: agent, namespace: NS, name: BROKER, onGeneration: (g) => seen.push(g) });
    await source.start(() => undefined);
    try {
      await waitFor(() => expect(seen).toContain(7));
      const current = await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER });
      await admin.core.replaceNamespacedSecret({ namespace: NS, name: BROKER, body: { ...secret('8'), metadata: { ...secret('8').metadata, resourceVersion: current.metadata!.resourceVersion! } } });
      await waitFor(() => expect(seen.at(-1)).toBe(8));
      await admin.deleteSecret(NS, BROKER);
      await waitFor(() => expect(seen.at(-1)).toBeUndefined());
    } finally {
      await source.stop();
    }

    const failures: unknown[] = [];
    const r = new NodeStatusReporter({ kubeConfig: agent, nodeName: NODE_NAME, onError: (e) => failures.push(e.message) });
    const at = new Date('2026-12-06T04:00:00.000Z');
    await r.reportApply({ hash: 'h1', at, errors: [], brokerGeneration: 7 });
    expect((await admin.nodeAnnotations(NODE_NAME))[ANNOTATION_BROKER_GENERATION]).toBe('7');
    await r.reportApply({ hash: 'h1', at: new Date(at.getTime() + 60_000), errors: [], brokerGeneration: 8 });
    const a = await admin.nodeAnnotations(NODE_NAME);
    expect(a[ANNOTATION_BROKER_GENERATION]).toBe('8');
    expect(a[ANNOTATION_AT]).toBe(at.toISOString());
    await r.reportApply({ hash: 'h1', at, errors: [] });
    expect((await admin.nodeAnnotations(NODE_NAME))[ANNOTATION_BROKER_GENERATION]).toBeUndefined();
    expect(failures).toEqual([]);
  });
});
