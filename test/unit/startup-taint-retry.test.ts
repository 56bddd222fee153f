// The startup taint's removal when the Node's taints change under it (the node lifecycle
// controller lifting its not-ready taint at the same moment) or the API server fails: the agent
// reads the Node again and retries, backing off with jitter, until it has removed exactly its
// taint. The API server is a stub here because a real one cannot be made to answer the JSON
// patch's test with a conflict at a chosen moment; test/kubernetes/startup-taint.test.ts covers
// the removal itself and the admission policy on the real server.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_STARTUP_TAINT } from '../../src/report/node-annotations.ts';
import { NodeStatusReporter } from '../../src/report/node-status.ts';
import { KubeApiError, KubeClient } from '../../src/sources/kube-client.ts';

const NOT_READY = { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' };
const STARTUP = { key: DEFAULT_STARTUP_TAINT, effect: 'NoSchedule' };

interface Call {
  readonly contentType: string | undefined;
  readonly body: unknown;
}

/** A KubeClient whose PATCHes of the Node are answered by `answer`, in call order. */
function stubClient(answer: (call: Call, n: number) => unknown): { client: KubeClient; calls: Call[] } {
  const calls: Call[] = [];
  const client = Object.create(KubeClient.prototype) as KubeClient;
  client.request = (async (_method: string, _path: string, o: { body?: unknown; contentType?: string } = {}) => {
    const call = { contentType: o.contentType, body: o.body };
    calls.push(call);
    return answer(call, calls.length);
  }) as KubeClient['request'];
  return { client, calls };
}

const effective = { state: 'effective' as const, at: new Date(), via: ['provider' as const], how: 'at-write' as const };

afterEach(() => vi.useRealTimers());

describe('the startup taint removed after a conflict or an API error', () => {
  it('a 422 from the test of the taint: the Node is read again and exactly its taint removed, at its new index', async () => {
    vi.useFakeTimers();
    let jsonPatches = 0;
    const { client, calls } = stubClient((call) => {
      if (call.contentType === 'application/json-patch+json') {
        jsonPatches++;
        if (jsonPatches === 1) throw new KubeApiError(422, { message: 'the test operation failed' });
        return {};
      }
      // The first read: both taints; after that the lifecycle controller has lifted its own.
      return { spec: { taints: jsonPatches === 0 ? [NOT_READY, STARTUP] : [STARTUP] } };
    });
    const outcomes: string[] = [];
    const errors: string[] = [];
    const r = new NodeStatusReporter({ kubeConfig: client, nodeName: 'n1', startupTaint: DEFAULT_STARTUP_TAINT, onStartupTaint: (o) => outcomes.push(o), onError: (e) => errors.push(e.code) });
    await r.reportApply({ hash: 'sha256:x', at: new Date(), errors: [], effective });
    expect(calls.filter((c) => c.contentType === 'application/json-patch+json')[0]?.body).toEqual([
      { op: 'test', path: '/spec/taints/1', value: STARTUP },
      { op: 'remove', path: '/spec/taints/1' },
    ]);
    expect(outcomes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.filter((c) => c.contentType === 'application/json-patch+json').at(-1)?.body).toEqual([
      { op: 'test', path: '/spec/taints/0', value: STARTUP },
      { op: 'remove', path: '/spec/taints/0' },
    ]);
    expect(outcomes).toEqual(['removed']);
    expect(errors).toEqual(['NRC_E_NODE_STATUS_FAILED']);
    r.stop();
  });

  it('the Node cannot be read again: the retries go on, each later than the one before, until it is removed', async () => {
    vi.useFakeTimers();
    let jsonPatches = 0;
    let reads = 0;
    const readAt: number[] = [];
    const { client } = stubClient((call) => {
      if (call.contentType === 'application/json-patch+json') {
        jsonPatches++;
        if (jsonPatches === 1) throw new KubeApiError(422, {});
        return {};
      }
      reads++;
      readAt.push(Date.now());
      // The report's own patch, then three reads that fail (503), then one that works.
      if (reads >= 2 && reads <= 4) throw new KubeApiError(503, {});
      return { spec: { taints: [STARTUP] } };
    });
    const outcomes: string[] = [];
    const r = new NodeStatusReporter({ kubeConfig: client, nodeName: 'n1', startupTaint: DEFAULT_STARTUP_TAINT, onStartupTaint: (o) => outcomes.push(o) });
    await r.reportApply({ hash: 'sha256:x', at: new Date(), errors: [], effective });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(outcomes).toEqual(['removed']);
    expect(reads).toBe(5);
    const gaps = readAt.slice(1).map((t, i) => t - readAt[i]!);
    // Doubling from 500 ms with jitter (0.5–1x): each gap within its bounds, none fixed.
    gaps.forEach((g, i) => {
      const full = Math.min(30_000, 500 * 2 ** (i + 1));
      expect(g, `retry ${i + 1}`).toBeGreaterThanOrEqual(full / 2);
      expect(g, `retry ${i + 1}`).toBeLessThanOrEqual(full);
    });
    r.stop();
  });
});
