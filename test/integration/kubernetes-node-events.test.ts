// Regression (found against the real kube-apiserver, test/kubernetes/node-status.test.ts): an Event
// about a Node is accepted only in namespace "default"; the agent used to create them in its own
// namespace and every one was refused with 422. The fake now validates Events as the real server does.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentError } from '../../src/errors.ts';
import { NODE_EVENT_NAMESPACE, NodeStatusReporter } from '../../src/report/node-status.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';

describe('Node Events go where the API server accepts them', () => {
  let api: FakeApiServer;
  beforeEach(async () => {
    api = new FakeApiServer();
    await api.start();
    api.putNode('node-1');
  });
  afterEach(async () => {
    await api.stop();
  });

  it('creates Events about the Node in namespace default by default', async () => {
    const failures: AgentError[] = [];
    const r = new NodeStatusReporter({ kubeConfig: api.kubeConfig(), nodeName: 'node-1', onError: (e) => failures.push(e) });
    await r.reportApply({ hash: 'h', at: new Date(), errors: [{ code: 'NRC_E_WRITE_FAILED' }] });
    expect(failures).toEqual([]);
    expect(NODE_EVENT_NAMESPACE).toBe('default');
    expect(api.createdEvents.map((e) => (e['metadata'] as { namespace?: string }).namespace)).toEqual(['default']);
  });

  it('an Event about the Node in another namespace is refused (422), as by the real server', async () => {
    const failures: AgentError[] = [];
    const r = new NodeStatusReporter({ kubeConfig: api.kubeConfig(), nodeName: 'node-1', eventNamespace: 'okteto', onError: (e) => failures.push(e) });
    await r.reportApply({ hash: 'h', at: new Date(), errors: [{ code: 'NRC_E_WRITE_FAILED' }] });
    expect(failures.map((f) => f.message)).toEqual([expect.stringContaining('HTTP 422')]);
  });
});
