import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentError } from '../../src/errors.ts';
import { ANNOTATION_AT, ANNOTATION_ERRORS, ANNOTATION_HASH, NodeStatusReporter } from '../../src/reconcile/node-status.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';

describe('node status reporting', () => {
  let api: FakeApiServer;
  let clock: number;
  let failures: AgentError[];
  let reporter: NodeStatusReporter;

  beforeEach(async () => {
    api = new FakeApiServer();
    await api.start();
    api.putNode('node-1', { 'keep.example.com/other': 'yes' });
    clock = Date.parse('2025-01-01T00:00:00Z');
    failures = [];
    reporter = new NodeStatusReporter({
      kubeConfig: api.kubeConfig(),
      nodeName: 'node-1',
      eventIntervalMs: 60_000,
      maxEventsPerInterval: 3,
      now: () => new Date(clock),
      onError: (e) => failures.push(e),
    });
  });
  afterEach(async () => {
    await api.stop();
  });

  const annotations = (): Record<string, string> => ((api.get('nodes', undefined, 'node-1')?.['metadata'] as { annotations: Record<string, string> }).annotations);

  it('annotates the Node with the applied hash, time and error codes, keeping other annotations', async () => {
    await reporter.reportApply({ hash: 'sha256:aaa', at: new Date(clock), errors: [] });
    expect(annotations()).toEqual({ 'keep.example.com/other': 'yes', [ANNOTATION_HASH]: 'sha256:aaa', [ANNOTATION_AT]: '2025-01-01T00:00:00.000Z' });

    await reporter.reportApply({ hash: 'sha256:bbb', at: new Date(clock + 1000), errors: [{ code: 'NRC_E_WRITE_FAILED', subject: '/etc/containerd/certs.d' }, { code: 'NRC_E_AUTH_BASE64', subject: 'reg.example.com' }] });
    expect(annotations()[ANNOTATION_ERRORS]).toBe('NRC_E_AUTH_BASE64,NRC_E_WRITE_FAILED');
    expect(annotations()[ANNOTATION_HASH]).toBe('sha256:bbb');

    await reporter.reportApply({ hash: 'sha256:bbb', at: new Date(clock + 2000), errors: [] });
    expect(annotations()[ANNOTATION_ERRORS]).toBeUndefined();
    expect(failures).toEqual([]);
  });

  it('does not patch the Node again for an identical result (periodic resyncs)', async () => {
    await reporter.reportApply({ hash: 'h1', at: new Date(clock), errors: [] });
    await reporter.reportApply({ hash: 'h1', at: new Date(clock + 5000), errors: [] });
    expect(api.count('patch', 'nodes')).toBe(1);
    expect(annotations()[ANNOTATION_AT]).toBe('2025-01-01T00:00:00.000Z');
  });

  it('creates a Warning Event on the Node per failure, rate-limited per code and subject and in total', async () => {
    const err = { code: 'NRC_E_WRITE_FAILED', subject: '/var/lib/kubelet/config.json' };
    await reporter.reportApply({ hash: 'h', at: new Date(clock), errors: [err] });
    await reporter.reportApply({ hash: 'h', at: new Date(clock), errors: [err] });
    expect(api.createdEvents).toHaveLength(1);
    const ev = api.createdEvents[0]!;
    expect(ev).toMatchObject({ type: 'Warning', reason: 'RegistryCredentialsError', involvedObject: { kind: 'Node', name: 'node-1' } });
    expect(String(ev['message'])).toContain('NRC_E_WRITE_FAILED [/var/lib/kubelet/config.json]: Writing a host file failed');

    clock += 61_000;
    await reporter.reportApply({ hash: 'h', at: new Date(clock), errors: [err] });
    expect(api.createdEvents).toHaveLength(2);

    const many = ['a', 'b', 'c', 'd', 'e'].map((h) => ({ code: 'NRC_E_AUTH_MISSING', subject: `${h}.example.com` }));
    await reporter.reportApply({ hash: 'h', at: new Date(clock), errors: many });
    expect(api.createdEvents).toHaveLength(4); // 3 per window in total
  });

  it('reports RBAC failures through onError and never throws', async () => {
    api.deny({ verb: 'patch', resource: 'nodes' });
    api.deny({ verb: 'create', resource: 'events' });
    await expect(reporter.reportApply({ hash: 'h', at: new Date(clock), errors: [{ code: 'NRC_E_WRITE_FAILED' }] })).resolves.toBeUndefined();
    expect(failures.map((f) => f.code)).toEqual(['NRC_E_NODE_STATUS_FAILED', 'NRC_E_NODE_STATUS_FAILED']);
    expect(failures[0]?.message).toContain('403 Forbidden');
  });
});
