// The node agent's own Kubernetes client (src/sources/kube-client.ts) with a kubeconfig file: a
// rotated token file is picked up, lists and watches work against the fake API server, an error
// status is a KubeApiError with its code, and a kubeconfig needing a plugin is left to client-node.
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeApiError, kubeconfigClient } from '../../src/sources/kube-client.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';

function kubeconfig(server: string, user: string): string {
  return ['apiVersion: v1', 'kind: Config', 'current-context: c', 'clusters:', '- name: k', '  cluster:', `    server: ${server}`, 'users:', '- name: u', '  user:', user, 'contexts:', '- name: c', '  context:', '    cluster: k', '    user: u', ''].join('\n');
}

describe('kube-client with a kubeconfig', () => {
  let dir: string;
  let api: FakeApiServer | undefined;
  let server: Server | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'nrc-kube-client-'));
  });
  afterEach(async () => {
    await api?.stop();
    api = undefined;
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sends the token of a token file, and the new one once the file is rotated', async () => {
    const seen: string[] = [];
    server = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Status"}');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, 'first-token\n');
    const file = path.join(dir, 'kubeconfig');
    // A relative tokenFile is relative to the kubeconfig, as kubectl reads it.
    fs.writeFileSync(file, kubeconfig(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, '    tokenFile: token'));
    const client = (await kubeconfigClient(file))!;
    await client.request('GET', '/api/v1/namespaces/okteto/secrets');
    fs.writeFileSync(tokenFile, 'second-token\n');
    fs.utimesSync(tokenFile, new Date(), new Date(Date.now() + 5000));
    await client.request('GET', '/api/v1/namespaces/okteto/secrets');
    expect(seen).toEqual(['Bearer first-token', 'Bearer second-token']);
  });

  it('lists and watches a Secret by name, and reports an error status with its code', async () => {
    api = new FakeApiServer();
    await api.start();
    api.putDockerConfigSecret('okteto', 'one', { auths: {} });
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, api.kubeconfigYaml());
    const client = (await kubeconfigClient(file))!;
    const list = await client.request<{ items: { metadata: { name: string } }[]; metadata: { resourceVersion: string } }>('GET', '/api/v1/namespaces/okteto/secrets', { query: { fieldSelector: 'metadata.name=one' } });
    expect(list.items.map((i) => i.metadata.name)).toEqual(['one']);

    const events: string[] = [];
    const handle = await client.watch('/api/v1/namespaces/okteto/secrets', { resourceVersion: list.metadata.resourceVersion, fieldSelector: 'metadata.name=one' }, (type, obj) => {
      events.push(`${type} ${(obj['metadata'] as { name: string }).name}`);
    }, () => undefined);
    await new Promise((r) => setTimeout(r, 100));
    api.putDockerConfigSecret('okteto', 'one', { auths: { 'r.example.com': { auth: 'dTpw' } } });
    for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    handle.abort();
    expect(events).toEqual(['MODIFIED one']);

    const err = await client.request('GET', '/api/v1/nodes/no-such-node').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).code).toBe(404);
  });

  it('leaves a kubeconfig whose user runs an exec plugin to client-node', async () => {
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, kubeconfig('https://127.0.0.1:6443', '    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: get-token'));
    expect(await kubeconfigClient(file)).toBeUndefined();
  });
});
