// What an operator notices when the control plane misbehaves, on the agent's own client and watch
// (issue 25, defects 1, 3 and 5). The server here is a small scripted HTTP server, not an API
// server: it produces what a real one cannot be made to do on demand (a list then a 503 on every
// watch, a 200 HTML page from a proxy in front, a Retry-After) or what a test cannot bind to (a
// plain-HTTP service port). The same troubles on the real kube-apiserver and etcd:
// test/kubernetes/trouble.test.ts.
import * as fs from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SourceSnapshot } from '../../src/model/credential.ts';
import { inClusterClient, KubeClient } from '../../src/sources/kube-client.ts';
import { ListWatch, type WatchStateEvent } from '../../src/sources/kubernetes/list-watch.ts';
import { KubernetesSecretSource } from '../../src/sources/kubernetes/secret-source.ts';

const NS = 'okteto';
const NAME = 'okteto-dockerconfig-static';
const secret = (rv: string, password: string): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Secret',
  type: 'kubernetes.io/dockerconfigjson',
  metadata: { name: NAME, namespace: NS, resourceVersion: rv },
  data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { 'reg.example.com': { username: 'u', password } } })).toString('base64') },
});
const list = (rv: string, items: unknown[]): string => JSON.stringify({ kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: rv }, items });
const HTML = '<html><body><h1>502 Bad Gateway</h1></body></html>';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

/** A scripted server: `handler` answers every request; `requests` records them (watch or list, and the resourceVersion asked). */
class Scripted {
  requests: { at: number; watch: boolean; resourceVersion: string | null }[] = [];
  handler: Handler = (_req, res) => res.writeHead(503).end();
  private server: Server | undefined;
  private readonly open = new Set<ServerResponse>();

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      this.requests.push({ at: Date.now(), watch: url.searchParams.get('watch') === 'true', resourceVersion: url.searchParams.get('resourceVersion') });
      this.open.add(res);
      res.on('close', () => this.open.delete(res));
      this.handler(req, res, url);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  /** Ends every open response (a watch cut by a restarting proxy). */
  cut(): void {
    for (const res of this.open) res.destroy();
  }
  watches(sinceMs = 0): number {
    return this.requests.filter((r) => r.watch && r.at >= sinceMs).length;
  }
  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** Serves the Secret at `rv` as a real API server would: a list, then a watch that stays open (and brings an older watcher up to date). */
function healthy(password: string, rv = '7'): Handler {
  return (_req, res, url) => {
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      if (url.searchParams.get('resourceVersion') !== rv) res.write(`${JSON.stringify({ type: 'MODIFIED', object: secret(rv, password) })}\n`);
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Secret', metadata: { resourceVersion: rv } } })}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(list(rv, [secret(rv, password)]));
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('the watch under control-plane trouble (scripted server)', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
  });

  async function scripted(): Promise<{ s: Scripted; client: KubeClient }> {
    const s = new Scripted();
    const url = await s.start();
    stops.push(() => s.stop());
    return { s, client: new KubeClient(url, () => ({ headers: {} })) };
  }

  it('an API server that lists once and then refuses every watch gets fewer and fewer retries, up to the cap, and gave-up fires when asked', async () => {
    const { s, client } = await scripted();
    let listed = false;
    s.handler = (_req, res, url) => {
      if (url.searchParams.get('watch') === 'true' || listed) return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"kind":"Status","code":503}');
      listed = true;
      res.writeHead(200, { 'content-type': 'application/json' }).end(list('5', [secret('5', 'p')]));
    };
    const states: WatchStateEvent[] = [];
    const w = new ListWatch({
      client,
      path: `/api/v1/namespaces/${NS}/secrets`,
      description: 'secrets okteto/x',
      rbac: { apiGroup: '', resource: 'secrets', namespace: NS },
      tuning: { initialBackoffMs: 40, maxBackoffMs: 640, maxConsecutiveFailures: 8, random: () => 1 },
    });
    w.on('state', (e) => states.push(e));
    w.start();
    stops.push(() => w.stop());
    await expect.poll(() => states.at(-1)?.state, { timeout: 10_000 }).toBe('gave-up');
    // The delays double from the first failure on (40, 80, 160 ... capped at 640); before the fix
    // every retry waited the first delay, forever, and gave-up never came.
    expect(states.filter((e) => e.state === 'disconnected').map((e) => e.retryInMs)).toEqual([40, 80, 160, 320, 640, 640, 640]);
    expect(states.at(-1)?.error?.code).toBe('NRC_E_K8S_UNAVAILABLE');
    expect(s.watches()).toBe(8);
  });

  it('a watch the server accepts and closes at once, with nothing in it, backs off too', async () => {
    const { s, client } = await scripted();
    s.handler = (_req, res, url) => {
      if (url.searchParams.get('watch') === 'true') return void res.writeHead(200, { 'content-type': 'application/json' }).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(list('5', []));
    };
    const states: WatchStateEvent[] = [];
    const w = new ListWatch({ client, path: `/api/v1/namespaces/${NS}/secrets`, description: 'x', rbac: { apiGroup: '', resource: 'secrets', namespace: NS }, tuning: { initialBackoffMs: 40, maxBackoffMs: 320, random: () => 1 } });
    w.on('state', (e) => states.push(e));
    w.start();
    stops.push(() => w.stop());
    await sleep(2500);
    // Waits of 40, 80, 160, then 320 ms: 10 watches in 2.5 s at the most; a retry without backoff made dozens.
    expect(s.watches()).toBeLessThanOrEqual(10);
    expect(states.filter((e) => e.state === 'disconnected').at(-1)?.retryInMs).toBe(320);
  });

  it('a 429 with Retry-After is waited out', async () => {
    const { s, client } = await scripted();
    s.handler = (_req, res) => void res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' }).end('{"kind":"Status","code":429,"message":"too many requests"}');
    const states: WatchStateEvent[] = [];
    const w = new ListWatch({ client, path: `/api/v1/namespaces/${NS}/secrets`, description: 'x', rbac: { apiGroup: '', resource: 'secrets', namespace: NS }, tuning: { initialBackoffMs: 40, maxBackoffMs: 30_000, random: () => 0 } });
    w.on('state', (e) => states.push(e));
    w.start();
    stops.push(() => w.stop());
    await expect.poll(() => states.find((e) => e.state === 'disconnected'), { timeout: 5000 }).toBeDefined();
    expect(states.find((e) => e.state === 'disconnected')?.retryInMs).toBe(2000);
    expect(states.find((e) => e.state === 'disconnected')?.error?.message).toContain('HTTP 429');
  });

  it('a proxy answering 200 with an HTML page never wipes the node\'s credentials: a coded error, backoff, and the watch resumes from the real resourceVersion', async () => {
    const { s, client } = await scripted();
    s.handler = healthy('before');
    const snapshots: SourceSnapshot[] = [];
    const states: WatchStateEvent[] = [];
    const source = new KubernetesSecretSource({ kubeConfig: client, namespace: NS, name: NAME, onState: (e) => states.push(e), tuning: { initialBackoffMs: 40, maxBackoffMs: 320 } });
    await source.start((snap) => snapshots.push(snap));
    stops.push(() => source.stop());
    await expect.poll(() => snapshots.at(-1)?.credentials.map((c) => c.password)).toEqual(['before']);

    // The load balancer now answers every request with its own page, then the watch is cut.
    s.handler = (_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end(HTML);
    const cutAt = Date.now();
    s.cut();
    await expect.poll(() => states.filter((e) => e.state === 'disconnected').length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    // The cut itself is a network error; what follows is the proxy's page, named as such.
    expect(states.filter((e) => e.state === 'disconnected').slice(1).map((e) => e.error?.code)).toContain('NRC_E_K8S_BAD_RESPONSE');
    // No snapshot without the credential (the node would remove it), and no watch from an empty resourceVersion.
    expect(snapshots.every((snap) => snap.credentials.some((c) => c.password === 'before'))).toBe(true);
    expect(s.requests.filter((r) => r.watch).every((r) => r.resourceVersion === '7')).toBe(true);
    expect(s.watches(cutAt)).toBeLessThanOrEqual(8);

    // A JSON 200 that is not a list (a Status, an empty object) is refused the same way.
    s.handler = (_req, res, url) => void res.writeHead(200, { 'content-type': 'application/json' }).end(url.searchParams.get('watch') === 'true' ? '' : '{}');
    await sleep(600);
    expect(snapshots.every((snap) => snap.credentials.some((c) => c.password === 'before'))).toBe(true);

    s.handler = healthy('after', '8');
    await expect.poll(() => snapshots.at(-1)?.credentials.map((c) => c.password), { timeout: 5000 }).toEqual(['after']);
  }, 20_000);

  it('a first list answered by an HTML page is not "no Secret": nothing is applied until the real list comes', async () => {
    const { s, client } = await scripted();
    s.handler = (_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end(HTML);
    const snapshots: SourceSnapshot[] = [];
    const source = new KubernetesSecretSource({ kubeConfig: client, namespace: NS, name: NAME, tuning: { initialBackoffMs: 40, maxBackoffMs: 160 } });
    await source.start((snap) => snapshots.push(snap));
    stops.push(() => source.stop());
    await expect.poll(() => snapshots.length).toBeGreaterThan(0);
    await sleep(300);
    expect(snapshots.every((snap) => !snap.ok)).toBe(true);
    expect(snapshots[0]?.errors[0]?.code).toBe('NRC_E_K8S_BAD_RESPONSE');
    s.handler = healthy('first');
    await expect.poll(() => snapshots.at(-1)?.credentials.map((c) => c.password), { timeout: 5000 }).toEqual(['first']);
  });
});

describe('request deadlines', () => {
  it('a half-open connection (the TLS handshake never answered) fails a request at its deadline, not twice later', async () => {
    // Accepts the TCP connection and never answers: packets dropped past the handshake's first step.
    const sockets = new Set<import('node:net').Socket>();
    const tcp = createTcpServer((sock) => {
      sockets.add(sock);
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    try {
      const client = new KubeClient(`https://127.0.0.1:${(tcp.address() as AddressInfo).port}`, () => ({ headers: {} }));
      const started = performance.now();
      await expect(client.request('GET', '/apis/coordination.k8s.io/v1/namespaces/okteto/leases/x', { timeoutMs: 600 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      // A socket idle timeout fired at 1,200 ms here (twice its value while the handshake is pending).
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
    }
  });
});

describe('in-cluster client', () => {
  it('never sends the ServiceAccount token in clear, even when the service port is 8001', async () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'nrc-incluster-'));
    fs.writeFileSync(path.join(dir, 'token'), 'sa-token-must-stay-encrypted');
    fs.writeFileSync(path.join(dir, 'ca.crt'), '');
    // A plain TCP listener on the port that made the old client speak http: it records the bytes.
    const received: Buffer[] = [];
    const tcp = createTcpServer((sock) => {
      sock.on('data', (d: Buffer) => {
        received.push(d);
        sock.destroy();
      });
    });
    const bound = await new Promise<boolean>((r) => {
      tcp.once('error', () => r(false));
      tcp.listen(8001, '127.0.0.1', () => r(true));
    });
    if (!bound) return void fs.rmSync(dir, { recursive: true, force: true }); // port taken: nothing to prove here
    const env = { host: process.env['KUBERNETES_SERVICE_HOST'], port: process.env['KUBERNETES_SERVICE_PORT'] };
    process.env['KUBERNETES_SERVICE_HOST'] = '127.0.0.1';
    process.env['KUBERNETES_SERVICE_PORT'] = '8001';
    try {
      const client = inClusterClient(dir);
      await client.request('GET', '/api/v1/namespaces/okteto/secrets', { timeoutMs: 2000 }).catch(() => undefined);
      await expect.poll(() => received.length).toBeGreaterThan(0);
      const bytes = Buffer.concat(received);
      expect(bytes.toString('latin1')).not.toContain('sa-token-must-stay-encrypted');
      expect(bytes[0]).toBe(0x16); // a TLS handshake record, not "GET /api..."
    } finally {
      for (const [k, v] of [['KUBERNETES_SERVICE_HOST', env.host], ['KUBERNETES_SERVICE_PORT', env.port]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await new Promise<void>((r) => tcp.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
