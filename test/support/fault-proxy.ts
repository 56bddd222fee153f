// A counting TCP/TLS proxy in front of the real kube-apiserver (test/support/control-plane.ts), for
// the control-plane trouble suite (test/kubernetes/trouble.test.ts) and `npm run bench -- --only
// trouble`. Clients connect to it instead of the API server; it terminates TLS with a serving cert
// signed by the control plane's own CA (so the clients' kubeconfig keeps the same CA file) and
// opens one TLS connection to the API server per client connection, forwarding bytes both ways.
// It counts, per second: connections, connections refused because the API server is down,
// requests (read from the plaintext request line) and response statuses.
//
// Faults it injects on demand. A faulty proxy is legitimate only for what a real API server cannot
// be made to produce on demand, so each stands for something IN FRONT of the API server:
// - `status`: every request answered with a fixed HTTP response: 429 with Retry-After, 403, 503
//   as a load balancer, API gateway or WAF answers them on its own (the API server's own 403 from
//   RBAC is exercised in test/kubernetes/secret-source.test.ts, its 429 while a resource's storage
//   initializes by the restarts in test/kubernetes/faults.test.ts), and a **200 with an HTML page**
//   (a misbehaving load balancer: the real server never answers a list with HTML).
// - `blackhole`: a half-open path as dropped packets make it: open connections stay open but
//   nothing is forwarded either way, new connections are accepted and never answered (no TLS
//   handshake). The real server only ever ends a stream cleanly or goes away.
// - `refuse`: every new connection reset at once (a load balancer with no backend). For "the API
//   server is stopped" the suite stops the real one (ControlPlane.stopApiserver) instead: in
//   `pass` mode a connection the upstream refuses is reset and counted as `refused`.
// Everything listens and connects on 127.0.0.1 only.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type FaultMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'refuse' }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'status'; readonly status: number; readonly reason: string; readonly headers?: Readonly<Record<string, string>>; readonly contentType: string; readonly body: string };

const statusBody = (code: number, reason: string, message: string, details?: Record<string, unknown>): string =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });

/** The injected answers the suite uses. */
export const FAULTS = {
  pass: { kind: 'pass' } as FaultMode,
  refuse: { kind: 'refuse' } as FaultMode,
  blackhole: { kind: 'blackhole' } as FaultMode,
  tooManyRequests: (retryAfterSeconds: number): FaultMode => ({
    kind: 'status',
    status: 429,
    reason: 'Too Many Requests',
    headers: { 'retry-after': String(retryAfterSeconds) },
    contentType: 'application/json',
    body: statusBody(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds }),
  }),
  forbidden: (): FaultMode => ({ kind: 'status', status: 403, reason: 'Forbidden', contentType: 'application/json', body: statusBody(403, 'Forbidden', 'forbidden by the gateway in front of the API server') }),
  unavailable: (): FaultMode => ({ kind: 'status', status: 503, reason: 'Service Unavailable', contentType: 'application/json', body: statusBody(503, 'ServiceUnavailable', 'no healthy upstream') }),
  /** A load balancer's error page served with 200: the one fault the agent could mistake for an empty list. */
  htmlOk: (): FaultMode => ({
    kind: 'status',
    status: 200,
    reason: 'OK',
    contentType: 'text/html; charset=utf-8',
    body: '<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>\n<body><h1>We will be back soon</h1><p>The service is under maintenance.</p></body></html>\n',
  }),
} as const;

/** Counter names; `status NNN` are also counted, for responses forwarded or injected. */
export type Counter = 'connections' | 'refused' | 'blackholed' | 'injected' | 'requests' | 'watchRequests' | 'listRequests' | 'cut';

export interface RequestSeen {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly userAgent: string | undefined;
  readonly mode: FaultMode['kind'];
}

export interface FaultProxyOptions {
  /** https://127.0.0.1:<port> of the API server. */
  readonly upstream: string;
  /** The control plane's pki dir (ca.crt, ca.key): signs the proxy's serving cert, verifies the upstream. */
  readonly pkiDir: string;
  /** Every request line seen (optional; the suite tells brokers from agents by user agent). */
  readonly onRequest?: (r: RequestSeen) => void;
  readonly name?: string;
}

const certs = new Map<string, Promise<{ key: Buffer; cert: Buffer }>>();

/** A serving cert for IP:127.0.0.1 signed by the control plane's CA (openssl, as makePki signs the API server's). */
export function proxyServingCert(pkiDir: string): Promise<{ key: Buffer; cert: Buffer }> {
  let p = certs.get(pkiDir);
  if (!p) {
    p = (async () => {
      const dir = join(pkiDir, 'fault-proxy');
      await mkdir(dir, { recursive: true });
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
      await execFileP('openssl', ['req', ...ec, '-keyout', 'proxy.key', '-out', 'proxy.csr', '-subj', '/CN=nrc-fault-proxy'], { cwd: dir });
      await writeFile(join(dir, 'proxy.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
      await execFileP('openssl', ['x509', '-req', '-in', 'proxy.csr', '-CA', join(pkiDir, 'ca.crt'), '-CAkey', join(pkiDir, 'ca.key'), '-CAcreateserial', '-out', 'proxy.crt', '-days', '30', '-extfile', 'proxy.ext'], { cwd: dir });
      return { key: await readFile(join(dir, 'proxy.key')), cert: await readFile(join(dir, 'proxy.crt')) };
    })();
    certs.set(pkiDir, p);
    p.catch(() => certs.delete(pkiDir));
  }
  return p;
}

/** One client connection and, in pass mode, its upstream twin. */
interface Conn {
  readonly raw: Socket;
  client?: TLSSocket;
  upstream?: TLSSocket;
  frozen: boolean;
}

const REQUEST_LINE = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP\/1\.[01]\r\n/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3}) /;

export class FaultProxy {
  private readonly opts: FaultProxyOptions;
  private readonly upstreamPort: number;
  private server: Server | undefined;
  private context: SecureContext | undefined;
  private ca: Buffer | undefined;
  private readonly conns = new Set<Conn>();
  /** Per-second buckets: second → counter → count. */
  private readonly buckets = new Map<number, Map<string, number>>();
  private readonly totals = new Map<string, number>();
  mode: FaultMode = FAULTS.pass;
  url = '';

  constructor(opts: FaultProxyOptions) {
    this.opts = opts;
    const u = new URL(opts.upstream);
    if (u.hostname !== '127.0.0.1') throw new Error(`fault proxy: upstream must be on 127.0.0.1, not ${u.hostname}`);
    this.upstreamPort = Number(u.port);
  }

  get name(): string {
    return this.opts.name ?? 'proxy';
  }

  async start(): Promise<string> {
    const { key, cert } = await proxyServingCert(this.opts.pkiDir);
    this.ca = await readFile(join(this.opts.pkiDir, 'ca.crt'));
    this.context = createSecureContext({ key, cert });
    // pauseOnConnect: nothing is read from a client until its fate (reset, hold, answer, forward) is decided.
    const server = createServer({ pauseOnConnect: true, noDelay: true }, (raw) => this.onConnection(raw));
    server.maxConnections = 20_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const addr = server.address();
    this.url = `https://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this.url;
  }

  /**
   * Switches the fault. `cut` destroys every open connection (both sides), so clients with a
   * long-lived watch reconnect into the new mode instead of keeping their healthy stream. Leaving
   * `blackhole` always resets the held connections: without that they would hang until the
   * clients' own timers fire, which is what the blackhole is for, not the recovery.
   */
  setMode(mode: FaultMode, opts: { cut?: boolean } = {}): void {
    const leavingBlackhole = this.mode.kind === 'blackhole' && mode.kind !== 'blackhole';
    this.mode = mode;
    if (mode.kind === 'blackhole') {
      for (const c of this.conns) this.freeze(c);
    }
    if (opts.cut || mode.kind === 'refuse') this.cutAll();
    else if (leavingBlackhole) {
      for (const c of [...this.conns]) if (c.frozen) this.destroy(c, true);
    }
  }

  /** Destroys every open connection (a connection reset on each). */
  cutAll(): number {
    const n = this.conns.size;
    for (const c of [...this.conns]) {
      this.bump('cut');
      this.destroy(c, true);
    }
    return n;
  }

  get openConnections(): number {
    return this.conns.size;
  }

  /** Counter `name` summed over whole seconds from `fromMs` up to (not including) the second of `toMs`. */
  count(name: Counter | `status ${number}`, fromMs = 0, toMs = Date.now()): number {
    let n = 0;
    const from = Math.floor(fromMs / 1000);
    const to = Math.floor(toMs / 1000);
    for (const [s, m] of this.buckets) if (s >= from && s < to) n += m.get(name) ?? 0;
    return n;
  }

  total(name: Counter | `status ${number}`): number {
    return this.totals.get(name) ?? 0;
  }

  /** Per-second series of a counter between two times (for the report). */
  series(name: Counter | `status ${number}`, fromMs: number, toMs: number): number[] {
    const out: number[] = [];
    for (let s = Math.floor(fromMs / 1000); s < Math.floor(toMs / 1000); s++) out.push(this.buckets.get(s)?.get(name) ?? 0);
    return out;
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  private bump(name: string, at = Date.now()): void {
    const s = Math.floor(at / 1000);
    let m = this.buckets.get(s);
    if (!m) this.buckets.set(s, (m = new Map()));
    m.set(name, (m.get(name) ?? 0) + 1);
    this.totals.set(name, (this.totals.get(name) ?? 0) + 1);
  }

  private onConnection(raw: Socket): void {
    this.bump('connections');
    const conn: Conn = { raw, frozen: false };
    this.conns.add(conn);
    raw.on('error', () => undefined);
    raw.once('close', () => this.destroy(conn, false));
    const mode = this.mode;
    switch (mode.kind) {
      case 'refuse':
        this.bump('refused');
        this.destroy(conn, true);
        return;
      case 'blackhole':
        // Accepted, never read, never answered: the client's ClientHello waits for a ServerHello
        // that does not come, as behind a path that drops packets.
        this.bump('blackholed');
        conn.frozen = true;
        return;
      case 'status':
        this.answer(conn, mode);
        return;
      case 'pass':
        this.forward(conn);
        return;
    }
  }

  private terminate(conn: Conn): TLSSocket {
    const client = new TLSSocket(conn.raw, { isServer: true, secureContext: this.context! });
    conn.client = client;
    client.on('error', () => this.destroy(conn, true));
    client.once('close', () => this.destroy(conn, false));
    conn.raw.resume();
    return client;
  }

  /** Reads each request head and answers it with the injected response, then closes (Connection: close). */
  private answer(conn: Conn, mode: Extract<FaultMode, { kind: 'status' }>): void {
    const client = this.terminate(conn);
    let head = '';
    client.setEncoding('latin1');
    client.on('data', (chunk: string) => {
      if (head.length > 65_536) return this.destroy(conn, true);
      head += chunk;
      if (!head.includes('\r\n\r\n')) return;
      this.sniffRequest(head);
      this.bump('injected');
      this.bump(`status ${mode.status}`);
      const body = Buffer.from(mode.body, 'utf8');
      const extra = Object.entries(mode.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      client.end(`HTTP/1.1 ${mode.status} ${mode.reason}\r\ncontent-type: ${mode.contentType}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n${extra}\r\n${body.toString('latin1')}`, 'latin1');
      head = '';
    });
  }

  private forward(conn: Conn): void {
    let connected = false;
    const up = netConnect({ host: '127.0.0.1', port: this.upstreamPort, noDelay: true });
    up.on('error', () => {
      // The API server is not listening (stopped, restarting): reset the client as a refused
      // connection would leave it, before any TLS.
      if (!connected) this.bump('refused');
      this.destroy(conn, true);
    });
    up.once('connect', () => {
      connected = true;
      if (this.mode.kind === 'blackhole' || !this.conns.has(conn)) {
        up.destroy();
        if (this.conns.has(conn)) conn.frozen = true;
        return;
      }
      const upstream = tlsConnect({ socket: up, ca: this.ca, host: '127.0.0.1' });
      conn.upstream = upstream;
      upstream.on('error', () => this.destroy(conn, true));
      upstream.once('close', () => this.destroy(conn, false));
      const client = this.terminate(conn);
      this.pump(conn, client, upstream, (chunk) => this.sniffRequest(chunk.toString('latin1', 0, Math.min(chunk.length, 4096))));
      this.pump(conn, upstream, client, (chunk) => {
        const m = STATUS_LINE.exec(chunk.toString('latin1', 0, 16));
        if (m) this.bump(`status ${m[1]}`);
      });
      if (conn.frozen) this.freeze(conn);
    });
  }

  /** from → to with backpressure; `sniff` sees every chunk; a frozen connection forwards nothing. */
  private pump(conn: Conn, from: TLSSocket, to: TLSSocket, sniff: (chunk: Buffer) => void): void {
    from.on('data', (chunk: Buffer) => {
      sniff(chunk);
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!conn.frozen) from.resume();
        });
      }
    });
    from.once('end', () => to.end());
  }

  private sniffRequest(text: string): void {
    const m = REQUEST_LINE.exec(text);
    if (!m) return;
    const path = m[2]!;
    this.bump('requests');
    const watch = /[?&]watch=(true|1)(&|$)/.test(path);
    if (watch) this.bump('watchRequests');
    else if (m[1] === 'GET') this.bump('listRequests');
    if (this.opts.onRequest) {
      const ua = /\r\nuser-agent: ([^\r\n]*)/i.exec(text)?.[1];
      this.opts.onRequest({ at: Date.now(), method: m[1]!, path, userAgent: ua, mode: this.mode.kind });
    }
  }

  /** Nothing more is read or written on either side; the sockets stay open. */
  private freeze(conn: Conn): void {
    conn.frozen = true;
    conn.raw.pause();
    conn.client?.pause();
    conn.upstream?.pause();
  }

  private destroy(conn: Conn, reset: boolean): void {
    if (!this.conns.delete(conn)) return;
    conn.upstream?.destroy();
    conn.client?.destroy();
    if (reset && !conn.raw.destroyed && typeof conn.raw.resetAndDestroy === 'function' && !conn.client) conn.raw.resetAndDestroy();
    else conn.raw.destroy();
  }
}
