// The `run` HTTP server: /healthz (process alive), /readyz (first successful apply done),
// /metrics (Prometheus text). Closing drops keep-alive connections so SIGTERM ends at once.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from '../metrics.ts';
import { http } from '../node-http.ts';

export interface AgentServerOptions {
  /** host:port, e.g. 0.0.0.0:8080 or 127.0.0.1:0 (any free port). */
  readonly listenAddress: string;
  readonly registry: Registry;
  /** Ready once the first apply succeeded; the agent flips it with setReady. */
  readonly ready?: boolean;
  /** Extra liveness check (e.g. the reconcile loop is not wedged); default always healthy. */
  readonly healthy?: () => boolean;
}

export interface AgentServer {
  /** The bound address as host:port. */
  readonly address: string;
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`invalid listen address "${text}": expected host:port, e.g. 0.0.0.0:8080`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  let ready = opts.ready ?? false;
  const server: Server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const text = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed\n');
    switch (path) {
      case '/healthz':
        return (opts.healthy?.() ?? true) ? text(200, 'ok\n') : text(503, 'unhealthy\n');
      case '/readyz':
        return ready ? text(200, 'ok\n') : text(503, 'not ready: no successful apply yet\n');
      case '/metrics':
        opts.registry.metrics().then(
          (body) => {
            res.writeHead(200, { 'content-type': opts.registry.contentType });
            res.end(body);
          },
          () => text(500, 'metrics failed\n'),
        );
        return;
      default:
        return text(404, 'not found\n');
    }
  });
  server.keepAliveTimeout = 5000;
  const { host, port } = parseListenAddress(opts.listenAddress);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    setReady(r: boolean) {
      ready = r;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
