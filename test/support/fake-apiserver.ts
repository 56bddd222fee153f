// An in-process Kubernetes API server over plain HTTP, faithful enough for the real
// @kubernetes/client-node: list + watch with resourceVersions, bookmarks, 410 Gone,
// server-side watch timeouts, dropped connections, restarts, RBAC denials (403 Status
// bodies like the real apiserver's), stalled watches and malformed stored objects.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export type JsonObject = Record<string, unknown>;
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** A stored resource kind: `core` group is ''. */
interface ResourceDef {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

const RESOURCES: readonly ResourceDef[] = [
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  { group: 'admin.okteto.com', version: 'v1', plural: 'registries', kind: 'Registry', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
];

export interface DenyRule {
  verb: Verb | '*';
  /** Plural, e.g. "secrets", or "serviceaccounts/token". */
  resource: string;
  namespace?: string;
  name?: string;
}

interface StoredEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: string;
  object: JsonObject;
}

interface WatchConn {
  res: ServerResponse;
  resource: ResourceDef;
  namespace: string | undefined;
  names: Set<string> | undefined;
  stalled: boolean;
  timers: NodeJS.Timeout[];
}

export interface FakeApiServerOptions {
  /** Interval between BOOKMARK events on watches that asked for them; 0 disables. */
  bookmarkIntervalMs?: number;
  /** Server-side cap on a watch's life when the client sets no timeoutSeconds; 0 = none. */
  defaultWatchTimeoutMs?: number;
  /** Events kept for watch resumption; older resourceVersions get 410 Gone. */
  historyLimit?: number;
  /** The service account the RBAC messages name. */
  user?: string;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function meta(obj: JsonObject): JsonObject {
  let m = obj['metadata'];
  if (typeof m !== 'object' || m === null) {
    m = {};
    obj['metadata'] = m;
  }
  return m as JsonObject;
}

function objName(obj: JsonObject): string {
  return String(meta(obj)['name'] ?? '');
}

function status(code: number, reason: string, message: string, details?: JsonObject): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** RFC 7386 JSON merge patch (also used for strategic merge on maps, which is all we patch). */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return clone(patch);
  const out: JsonObject = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as JsonObject) } : {};
  for (const [k, v] of Object.entries(patch as JsonObject)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** RFC 6902 subset: add, replace, remove, test. */
function jsonPatch(target: JsonObject, ops: unknown): JsonObject {
  if (!Array.isArray(ops)) throw new Error('json patch must be an array');
  const doc = clone(target);
  for (const op of ops as JsonObject[]) {
    const parts = String(op['path']).split('/').slice(1).map(unescapePointer);
    const last = parts.pop();
    if (last === undefined) throw new Error('bad path');
    let cur: JsonObject = doc;
    for (const p of parts) {
      const next = cur[p];
      if (typeof next !== 'object' || next === null) {
        if (op['op'] === 'add') {
          cur[p] = {};
        } else throw new Error(`path not found: ${String(op['path'])}`);
      }
      cur = cur[p] as JsonObject;
    }
    switch (op['op']) {
      case 'add':
      case 'replace':
        cur[last] = clone(op['value']);
        break;
      case 'remove':
        if (!(last in cur)) throw new Error(`path not found: ${String(op['path'])}`);
        delete cur[last];
        break;
      case 'test':
        if (JSON.stringify(cur[last]) !== JSON.stringify(op['value'])) throw new Error('test failed');
        break;
      default:
        throw new Error(`unsupported op ${String(op['op'])}`);
    }
  }
  return doc;
}

function b64url(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

export class FakeApiServer {
  readonly opts: Required<FakeApiServerOptions>;
  private server: Server | undefined;
  private port = 0;
  private readonly sockets = new Set<Socket>();
  private readonly store = new Map<string, Map<string, JsonObject>>();
  private history: StoredEvent[] = [];
  private rv = 1000;
  /** Watches from a resourceVersion below this get 410 Gone. */
  private oldestRv = 1000;
  private readonly watches = new Set<WatchConn>();
  private denies: DenyRule[] = [];
  private stallNew = false;
  private readonly counts = new Map<string, number>();
  /** Requests in arrival order, for assertions: "verb resource[/name]". */
  readonly requests: string[] = [];
  readonly createdEvents: JsonObject[] = [];
  readonly tokenRequests: { namespace: string; name: string; audiences: string[]; expirationSeconds: number }[] = [];

  constructor(opts: FakeApiServerOptions = {}) {
    this.opts = {
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 0,
      defaultWatchTimeoutMs: opts.defaultWatchTimeoutMs ?? 0,
      historyLimit: opts.historyLimit ?? 1000,
      user: opts.user ?? 'system:serviceaccount:okteto:node-registry-credentials',
    };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendJson(res, 500, status(500, 'InternalError', String(err)));
        else res.destroy();
      });
    });
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
    this.server = server;
  }

  /** Stops listening and cuts every connection (like a crashed apiserver). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of this.watches) this.endWatch(w);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Stop + start on the same port. `resetResourceVersions` simulates an etcd restore:
   * the watch history is lost, so every client must relist (410 Gone on resume).
   */
  async restart(opts: { resetResourceVersions?: boolean } = {}): Promise<void> {
    await this.stop();
    if (opts.resetResourceVersions) {
      this.history = [];
      this.oldestRv = this.rv + 1;
    }
    await this.start();
  }

  /** A KubeConfig for the real client that points at this server. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeconfigYaml());
    return kc;
  }

  kubeconfigYaml(namespace = 'okteto'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${this.url}`,
      // client-node refuses plain http unless TLS verification is off.
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: agent',
      '  user:',
      '    token: fake-token',
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: agent',
      `    namespace: ${namespace}`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  // ---- test helpers: objects ----

  /** Creates or replaces an object as given (no validation: malformed objects are stored as is). */
  put(obj: JsonObject): JsonObject {
    const def = this.defFor(obj);
    const stored = clone(obj);
    stored['apiVersion'] = def.group ? `${def.group}/${def.version}` : def.version;
    stored['kind'] = def.kind;
    const m = meta(stored);
    const key = this.key(def, m['namespace'] as string | undefined, objName(stored));
    const map = this.bucket(def);
    const existing = map.get(key);
    m['uid'] = existing ? meta(existing)['uid'] : `uid-${this.rv + 1}`;
    m['creationTimestamp'] = existing ? meta(existing)['creationTimestamp'] : new Date().toISOString();
    m['resourceVersion'] = String(++this.rv);
    map.set(key, stored);
    this.record(existing ? 'MODIFIED' : 'ADDED', def, stored);
    return clone(stored);
  }

  /** A kubernetes.io/dockerconfigjson Secret from a docker config object. */
  putDockerConfigSecret(namespace: string, name: string, config: unknown): JsonObject {
    return this.put({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: { name, namespace },
      data: { '.dockerconfigjson': Buffer.from(typeof config === 'string' ? config : JSON.stringify(config)).toString('base64') },
    });
  }

  /** An Opaque Secret from plain string values. */
  putOpaqueSecret(namespace: string, name: string, values: Record<string, string>): JsonObject {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) data[k] = Buffer.from(v).toString('base64');
    return this.put({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace }, data });
  }

  putRegistry(namespace: string, name: string, spec: unknown): JsonObject {
    return this.put({ apiVersion: 'admin.okteto.com/v1', kind: 'Registry', metadata: { name, namespace }, spec });
  }

  putNode(name: string, annotations: Record<string, string> = {}): JsonObject {
    return this.put({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations } });
  }

  get(plural: string, namespace: string | undefined, name: string): JsonObject | undefined {
    const def = this.defByPlural(plural);
    const o = this.bucket(def).get(this.key(def, namespace, name));
    return o ? clone(o) : undefined;
  }

  delete(plural: string, namespace: string | undefined, name: string): boolean {
    const def = this.defByPlural(plural);
    const key = this.key(def, namespace, name);
    const map = this.bucket(def);
    const existing = map.get(key);
    if (!existing) return false;
    map.delete(key);
    const gone = clone(existing);
    meta(gone)['resourceVersion'] = String(++this.rv);
    this.record('DELETED', def, gone);
    return true;
  }

  /** Forgets history up to now, so resuming a watch from any earlier resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestRv = this.rv + 1;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  // ---- test helpers: faults ----

  /** RBAC: requests matching a rule get 403 Forbidden. */
  deny(rule: DenyRule): void {
    this.denies.push(rule);
  }

  allowAll(): void {
    this.denies = [];
  }

  /** Cuts every open watch connection (a network blip or a load balancer idle reset). */
  dropWatches(): void {
    for (const w of this.watches) {
      this.endWatch(w);
      w.res.socket?.destroy();
    }
  }

  /**
   * Makes the open watches go silent: the connections stay open but deliver nothing,
   * not even bookmarks. With `newWatches`, watches opened later stall too until `unstall()`.
   */
  stallWatches(opts: { newWatches?: boolean } = {}): void {
    for (const w of this.watches) w.stalled = true;
    if (opts.newWatches) this.stallNew = true;
  }

  unstall(): void {
    this.stallNew = false;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  /** Requests served so far for a verb (and optionally a resource plural). */
  count(verb: Verb, resource?: string): number {
    if (resource) return this.counts.get(`${verb} ${resource}`) ?? 0;
    return this.counts.get(verb) ?? 0;
  }

  // ---- HTTP ----

  private defFor(obj: JsonObject): ResourceDef {
    const kind = obj['kind'];
    const def = RESOURCES.find((r) => r.kind === kind);
    if (!def) throw new Error(`fake apiserver: unknown kind ${String(kind)}`);
    return def;
  }

  private defByPlural(plural: string): ResourceDef {
    const def = RESOURCES.find((r) => r.plural === plural);
    if (!def) throw new Error(`fake apiserver: unknown resource ${plural}`);
    return def;
  }

  private key(def: ResourceDef, namespace: string | undefined, name: string): string {
    return def.namespaced ? `${namespace ?? ''}/${name}` : name;
  }

  private bucket(def: ResourceDef): Map<string, JsonObject> {
    let m = this.store.get(def.plural);
    if (!m) {
      m = new Map();
      this.store.set(def.plural, m);
    }
    return m;
  }

  private record(type: StoredEvent['type'], def: ResourceDef, object: JsonObject): void {
    const ev: StoredEvent = { rv: this.rv, type, resource: def.plural, object: clone(object) };
    this.history.push(ev);
    if (this.history.length > this.opts.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.oldestRv = dropped.rv + 1;
    }
    for (const w of this.watches) this.deliver(w, ev);
  }

  private matches(w: { resource: ResourceDef; namespace: string | undefined; names: Set<string> | undefined }, resource: string, obj: JsonObject): boolean {
    if (w.resource.plural !== resource) return false;
    const m = meta(obj);
    if (w.namespace !== undefined && m['namespace'] !== w.namespace) return false;
    if (w.names && !w.names.has(String(m['name']))) return false;
    return true;
  }

  private deliver(w: WatchConn, ev: StoredEvent): void {
    if (w.stalled || !this.matches(w, ev.resource, ev.object)) return;
    w.res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
  }

  private endWatch(w: WatchConn): void {
    for (const t of w.timers) clearTimeout(t), clearInterval(t);
    this.watches.delete(w);
    if (!w.res.writableEnded) w.res.end();
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? (JSON.parse(text) as unknown) : undefined;
  }

  private bump(verb: Verb, resource: string, name?: string): void {
    this.counts.set(verb, (this.counts.get(verb) ?? 0) + 1);
    this.counts.set(`${verb} ${resource}`, (this.counts.get(`${verb} ${resource}`) ?? 0) + 1);
    this.requests.push(`${verb} ${resource}${name ? `/${name}` : ''}`);
  }

  private forbidden(verb: Verb, resource: string, group: string, namespace: string | undefined, name: string | undefined): JsonObject | undefined {
    const hit = this.denies.find(
      (d) =>
        (d.verb === '*' || d.verb === verb) &&
        d.resource === resource &&
        (d.namespace === undefined || d.namespace === namespace) &&
        (d.name === undefined || d.name === name),
    );
    if (!hit) return undefined;
    const [plural, sub] = resource.split('/');
    const what = name ? `${plural} "${name}"` : plural;
    const res = sub ? `resource "${plural}/${sub}"` : `resource "${plural}"`;
    const where = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
    return status(403, 'Forbidden', `${what} is forbidden: User "${this.opts.user}" cannot ${verb} ${res} in API group "${group}"${where}`, {
      ...(name ? { name } : {}),
      ...(group ? { group } : {}),
      kind: plural,
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    // /api/v1/... or /apis/{group}/{version}/...
    let group: string;
    let rest: string[];
    if (parts[0] === 'api' && parts[1] === 'v1') {
      group = '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1]!;
      rest = parts.slice(3);
    } else {
      this.sendJson(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest;
    const method = req.method ?? 'GET';

    if (plural === 'serviceaccounts' && name && sub === 'token' && method === 'POST') {
      const denied = this.forbidden('create', 'serviceaccounts/token', '', namespace, name);
      this.bump('create', 'serviceaccounts/token', name);
      if (denied) return this.sendJson(res, 403, denied);
      const body = ((await this.readBody(req)) ?? {}) as JsonObject;
      const spec = (body['spec'] ?? {}) as JsonObject;
      const audiences = Array.isArray(spec['audiences']) ? (spec['audiences'] as string[]) : [];
      const expirationSeconds = typeof spec['expirationSeconds'] === 'number' ? spec['expirationSeconds'] : 3600;
      this.tokenRequests.push({ namespace: namespace ?? '', name, audiences, expirationSeconds });
      const exp = new Date(Date.now() + expirationSeconds * 1000);
      const token = `${b64url({ alg: 'RS256', kid: 'fake' })}.${b64url({
        aud: audiences,
        exp: Math.floor(exp.getTime() / 1000),
        iat: Math.floor(Date.now() / 1000),
        iss: 'https://fake-apiserver.invalid',
        sub: `system:serviceaccount:${namespace ?? ''}:${name}`,
      })}.ZmFrZS1zaWduYXR1cmU`;
      return this.sendJson(res, 201, {
        kind: 'TokenRequest',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { name, namespace, creationTimestamp: new Date().toISOString() },
        spec: { audiences, expirationSeconds },
        status: { token, expirationTimestamp: exp.toISOString().replace(/\.\d{3}Z$/, 'Z') },
      });
    }

    const def = RESOURCES.find((r) => r.plural === plural && r.group === group);
    if (!def || sub !== undefined || (def.namespaced && namespace === undefined && name !== undefined)) {
      this.sendJson(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const verb: Verb =
      method === 'GET' ? (isWatch ? 'watch' : name ? 'get' : 'list') : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : 'delete';

    // Field selector `metadata.name=x` narrows a list/watch to names (RBAC checks it too).
    let names: Set<string> | undefined;
    const fs = url.searchParams.get('fieldSelector');
    if (fs) {
      names = new Set();
      for (const term of fs.split(',')) {
        const m = /^metadata\.name(?:=|==)(.*)$/.exec(term);
        if (m) names.add(m[1]!);
        else if (!/^metadata\.namespace(?:=|==)/.test(term)) {
          this.sendJson(res, 400, status(400, 'BadRequest', `"${term}" is not a known field selector`));
          return;
        }
      }
    }
    const rbacName = name ?? (names && names.size === 1 ? [...names][0] : undefined);
    this.bump(verb, def.plural, rbacName);
    const denied = this.forbidden(verb, def.plural, group, namespace, rbacName);
    if (denied) return this.sendJson(res, 403, denied);

    const bucket = this.bucket(def);
    const inScope = (o: JsonObject): boolean => this.matches({ resource: def, namespace, names }, def.plural, o);

    switch (verb) {
      case 'list': {
        const items = [...bucket.values()].filter(inScope).sort((a, b) => objName(a).localeCompare(objName(b)));
        return this.sendJson(res, 200, {
          kind: `${def.kind}List`,
          apiVersion: group ? `${group}/${def.version}` : def.version,
          metadata: { resourceVersion: String(this.rv) },
          items,
        });
      }
      case 'get': {
        const o = bucket.get(this.key(def, namespace, name!));
        if (!o) return this.sendJson(res, 404, status(404, 'NotFound', `${def.plural} "${name}" not found`, { name: name!, kind: def.plural }));
        return this.sendJson(res, 200, o);
      }
      case 'watch':
        return this.startWatch(req, res, url, def, namespace, names);
      case 'create': {
        const body = (await this.readBody(req)) as JsonObject;
        const m = meta(body);
        if (def.namespaced) m['namespace'] = namespace;
        if (!m['name'] && typeof m['generateName'] === 'string') m['name'] = `${m['generateName']}${(this.rv + 1).toString(36)}`;
        if (def.plural === 'events') {
          // As the real API server (legacyValidateEvent): an Event about a cluster-scoped object
          // (no involvedObject.namespace) is accepted only in namespace "default" (or "kube-system").
          const involved = (body['involvedObject'] ?? {}) as JsonObject;
          const ns = involved['namespace'] ? String(involved['namespace']) : '';
          if ((ns === '' && namespace !== 'default' && namespace !== 'kube-system') || (ns !== '' && ns !== namespace)) {
            return this.sendJson(res, 422, status(422, 'Invalid', `Event "${objName(body)}" is invalid: involvedObject.namespace: Invalid value: "${ns}": does not match event.namespace`));
          }
          this.createdEvents.push(clone(body));
        }
        if (bucket.has(this.key(def, namespace, objName(body)))) {
          return this.sendJson(res, 409, status(409, 'AlreadyExists', `${def.plural} "${objName(body)}" already exists`));
        }
        body['kind'] = def.kind;
        return this.sendJson(res, 201, this.put(body));
      }
      case 'patch':
      case 'update': {
        const existing = bucket.get(this.key(def, namespace, name!));
        if (!existing) return this.sendJson(res, 404, status(404, 'NotFound', `${def.plural} "${name}" not found`, { name: name!, kind: def.plural }));
        const body = await this.readBody(req);
        // Optimistic concurrency as the real apiserver: a PUT carrying another resourceVersion is a 409.
        const sentRv = verb === 'update' ? meta(body as JsonObject)['resourceVersion'] : undefined;
        if (sentRv !== undefined && sentRv !== '' && sentRv !== meta(existing)['resourceVersion']) {
          return this.sendJson(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${def.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
        }
        let next: JsonObject;
        try {
          if (verb === 'update') next = body as JsonObject;
          else if ((req.headers['content-type'] ?? '').includes('json-patch')) next = jsonPatch(existing, body);
          else next = mergePatch(existing, body) as JsonObject;
        } catch (err) {
          return this.sendJson(res, 422, status(422, 'Invalid', String(err)));
        }
        next['kind'] = def.kind;
        meta(next)['name'] = name;
        if (def.namespaced) meta(next)['namespace'] = namespace;
        return this.sendJson(res, 200, this.put(next));
      }
      case 'delete': {
        const o = bucket.get(this.key(def, namespace, name!));
        if (!o) return this.sendJson(res, 404, status(404, 'NotFound', `${def.plural} "${name}" not found`));
        this.delete(def.plural, namespace, name!);
        return this.sendJson(res, 200, status(200, '', '', { name: name! }));
      }
    }
  }

  private startWatch(req: IncomingMessage, res: ServerResponse, url: URL, def: ResourceDef, namespace: string | undefined, names: Set<string> | undefined): void {
    const w: WatchConn = { res, resource: def, namespace, names, stalled: this.stallNew, timers: [] };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const rvParam = url.searchParams.get('resourceVersion');
    const write = (type: string, object: unknown): void => {
      if (!w.stalled && !res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    if (!rvParam || rvParam === '0') {
      // No resourceVersion: synthetic ADDED for the current state, then live events.
      for (const o of [...this.bucket(def).values()]) if (this.matches(w, def.plural, o)) write('ADDED', o);
    } else {
      const from = Number(rvParam);
      if (!Number.isFinite(from) || from + 1 < this.oldestRv || from > this.rv) {
        // The real apiserver answers 200 and sends one ERROR event with a 410 Status.
        write('ERROR', status(410, 'Expired', `too old resource version: ${rvParam} (${this.oldestRv})`));
        res.end();
        return;
      }
      for (const ev of this.history) if (ev.rv > from && this.matches(w, ev.resource, ev.object)) write(ev.type, ev.object);
    }
    this.watches.add(w);
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    const timeoutMs = timeoutSeconds > 0 ? timeoutSeconds * 1000 : this.opts.defaultWatchTimeoutMs;
    if (timeoutMs > 0) w.timers.push(setTimeout(() => this.endWatch(w), timeoutMs));
    if (this.opts.bookmarkIntervalMs > 0 && url.searchParams.get('allowWatchBookmarks') === 'true') {
      w.timers.push(
        setInterval(() => {
          write('BOOKMARK', {
            kind: def.kind,
            apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
            metadata: { resourceVersion: String(this.rv), annotations: { 'k8s.io/initial-events-end': 'false' } },
          });
        }, this.opts.bookmarkIntervalMs),
      );
    }
    req.on('close', () => this.endWatch(w));
  }
}
