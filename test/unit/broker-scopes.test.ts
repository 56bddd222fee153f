// The broker's side of scoped registries (issue 26), without an API server: what its Secret says
// (scoped credentials in scoped.json only, the Secret unchanged byte for byte when nothing is
// scoped, scoped ECR tokens reused, `since` covering scoped entries), the Registry annotations it
// reads, and the namespace selectors' re-resolution (one pass per burst of namespace events, the
// watch only while a selector is in use, a refused selector an NRC_E_SCOPE_INVALID).
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { NamespaceSelectors } from '../../src/broker/namespace-selectors.ts';
import { scopeText } from '../../src/broker/registry-status.ts';
import { BROKER_MANAGER, BrokerSecretWriter, DOCKERCONFIG_KEY, EXPIRIES_ANNOTATION, FINGERPRINTS_ANNOTATION, MANAGED_BY_LABEL, renderBrokerSecret, type SecretStore, sinceOf, tokensFromSecret } from '../../src/broker/secret-writer.ts';
import { AgentError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { NAMESPACE_SELECTOR_ANNOTATION, NAMESPACES_ANNOTATION, parseScoped, SCOPED_DATA_KEY } from '../../src/model/scope.ts';
import { KubeApiError, type KubeClient } from '../../src/sources/kube-client.ts';
import { parseRegistry } from '../../src/sources/kubernetes/registry-source.ts';
import { ManualClock } from '../support/manual-clock.ts';

const silent = createLogger('silent');
const decode = (b64: string | undefined): string => Buffer.from(b64 ?? '', 'base64').toString('utf8');
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const OPEN: RegistryCredential = { key: 'open.example.com', host: 'open.example.com', username: 'u', password: 'open-password', source: 'registries:okteto' };
const SCOPED: RegistryCredential = { key: 'scoped.example.com', host: 'scoped.example.com', username: 'u', password: 'scoped-password', source: 'registries:okteto', namespaces: ['team-b', 'team-a'] };
const ECR: RegistryCredential = {
  key: '123456789012.dkr.ecr.us-east-2.amazonaws.com',
  host: '123456789012.dkr.ecr.us-east-2.amazonaws.com',
  username: 'AWS',
  password: 'ecr-token-of-a-scoped-registry',
  source: 'registry:okteto/123456789012.dkr.ecr.us-east-2.amazonaws.com',
  expiresAt: new Date('2026-01-01T12:00:00Z'),
  namespaces: ['team-a'],
};

describe('the broker Secret with scoped registries', () => {
  it('nothing scoped: the Secret is byte for byte what it was before (no scoped.json key)', () => {
    const r = renderBrokerSecret({ credentials: [OPEN], fingerprints: new Map() });
    expect(r.data).toEqual({ [DOCKERCONFIG_KEY]: Buffer.from('{"auths":{"open.example.com":{"username":"u","password":"open-password","auth":"dTpvcGVuLXBhc3N3b3Jk"}}}').toString('base64') });
    expect(r.annotations).toEqual({ [EXPIRIES_ANNOTATION]: '{}', [FINGERPRINTS_ANNOTATION]: '{}' });
  });

  it('a scoped credential is in scoped.json only, never in .dockerconfigjson; ECR expiries and fingerprints cover it', () => {
    const r = renderBrokerSecret({ credentials: [SCOPED, OPEN, ECR], fingerprints: new Map([[ECR.key, 'fp1']]), selectors: { 'tier=gold': ['b', 'a'] } });
    expect(Object.keys(r.data)).toEqual([DOCKERCONFIG_KEY, SCOPED_DATA_KEY]);
    const node = decode(r.data[DOCKERCONFIG_KEY]);
    expect(Object.keys((JSON.parse(node) as { auths: object }).auths)).toEqual([OPEN.key]);
    // Grep everything but scoped.json: neither scoped secret is there, in any form.
    const outside = node + JSON.stringify(r.annotations);
    for (const c of [SCOPED, ECR]) {
      expect(outside).not.toContain(c.password);
      expect(outside).not.toContain(Buffer.from(`${c.username}:${c.password}`).toString('base64'));
    }
    const scoped = parseScoped(decode(r.data[SCOPED_DATA_KEY]), 'test');
    expect(scoped.errors).toEqual([]);
    expect(scoped.doc.entries).toEqual([
      { key: ECR.key, username: 'AWS', password: ECR.password, namespaces: ['team-a'], source: ECR.source },
      { key: SCOPED.key, username: 'u', password: SCOPED.password, namespaces: ['team-a', 'team-b'], source: SCOPED.source },
    ]);
    expect(scoped.doc.selectors).toEqual({ 'tier=gold': ['a', 'b'] });
    expect(JSON.parse(r.annotations[EXPIRIES_ANNOTATION]!)).toEqual({ [ECR.key]: '2026-01-01T12:00:00.000Z' });
    // Stable bytes for the same content, whatever the order it came in.
    expect(renderBrokerSecret({ credentials: [ECR, OPEN, SCOPED], fingerprints: new Map([[ECR.key, 'fp1']]), selectors: { 'tier=gold': ['a', 'b'] } })).toEqual(r);
  });

  it('only the static Secret\'s selectors: scoped.json carries them, with no entry', () => {
    const r = renderBrokerSecret({ credentials: [OPEN], fingerprints: new Map(), selectors: { 'tier=gold': [] } });
    expect(JSON.parse(decode(r.data[SCOPED_DATA_KEY]))).toEqual({ entries: [], selectors: { 'tier=gold': [] } });
  });

  it('a scoped ECR token is reused from the Secret by a new leader, as an unscoped one is', () => {
    const r = renderBrokerSecret({ credentials: [OPEN, ECR], fingerprints: new Map([[ECR.key, 'fp1']]) });
    const secret: V1Secret = { metadata: { labels: { [MANAGED_BY_LABEL]: BROKER_MANAGER }, annotations: r.annotations }, data: r.data };
    const { tokens, error } = tokensFromSecret(secret);
    expect(error).toBeUndefined();
    expect([...tokens]).toEqual([[ECR.key, { username: 'AWS', password: ECR.password, expiresAt: ECR.expiresAt!.getTime(), fingerprint: 'fp1' }]]);
  });

  it('`since` covers scoped entries: a new scope is a new value for the nodes, an unchanged one keeps its write', async () => {
    let stored: V1Secret | undefined;
    const store: SecretStore = {
      description: 'memory',
      get: () => Promise.resolve(stored === undefined ? undefined : (JSON.parse(JSON.stringify(stored)) as V1Secret)),
      create: (s) => Promise.resolve((stored = s)),
      replace: (s) => Promise.resolve((stored = s)),
      watch: () => ({ stop: () => Promise.resolve() }),
    };
    const writer = new BrokerSecretWriter({ store, namespace: 'okteto', name: 'b' });
    const t = new Date('2026-01-01T00:00:00Z');
    expect(await writer.write({ credentials: [OPEN, SCOPED], fingerprints: new Map() }, t)).toEqual({ outcome: 'created' });
    expect(Object.fromEntries([...sinceOf(stored)].map(([k, v]) => [k, v.generation]))).toEqual({ [OPEN.key]: 1, [SCOPED.key]: 1 });
    await writer.write({ credentials: [OPEN, { ...SCOPED, namespaces: ['team-a', 'team-b', 'team-c'] }], fingerprints: new Map() }, t);
    expect(Object.fromEntries([...sinceOf(stored)].map(([k, v]) => [k, v.generation]))).toEqual({ [OPEN.key]: 1, [SCOPED.key]: 2 });
  });
});

describe('Registry scope annotations', () => {
  const reg = (annotations: Record<string, string>): Parameters<typeof parseRegistry>[0] => ({
    metadata: { name: 'r.example.com', annotations } as { name: string },
    spec: { static: { userSecretRef: { name: 's', key: 'u' }, passwordSecretRef: { name: 's', key: 'p' } } },
  });

  it('none: node-wide as before; a list and a selector: the scope; unreadable: an NRC_E_SCOPE_INVALID for that Registry', () => {
    expect(parseRegistry(reg({}))).not.toHaveProperty('scope');
    expect(parseRegistry(reg({ [NAMESPACES_ANNOTATION]: 'b, a', [NAMESPACE_SELECTOR_ANNOTATION]: 'team in (x,y)' }))).toMatchObject({ scope: { namespaces: ['a', 'b'], namespaceSelector: 'team in (x,y)' } });
    const bads: Record<string, string>[] = [{ [NAMESPACES_ANNOTATION]: 'Not_A_Namespace' }, { [NAMESPACES_ANNOTATION]: ' , ' }, { [NAMESPACE_SELECTOR_ANNOTATION]: '  ' }];
    for (const bad of bads) {
      const r = parseRegistry(reg(bad));
      expect(r).toBeInstanceOf(AgentError);
      expect(r).toMatchObject({ code: 'NRC_E_SCOPE_INVALID', subject: 'registry "r.example.com"' });
    }
  });

  it('the Resolved message shows the scope: the list when short, a count when long', () => {
    expect(scopeText(['a', 'b'])).toBe('Scoped to 2 namespace(s): a, b; never written node-wide.');
    expect(scopeText(['a', 'b', 'c', 'd', 'e', 'f'])).toBe('Scoped to 6 namespace(s) (a, b, c, …); never written node-wide.');
    expect(scopeText([])).toContain('none match');
  });
});

/** Namespaces behind a KubeClient: lists with labelSelector (k=v only, or 400), one watch stream. */
class FakeNamespaces {
  namespaces = new Map<string, Record<string, string>>();
  lists = 0;
  labelLists = 0;
  watches = 0;
  fail: number | undefined;
  private rv = 1;
  private stream: ((type: string, obj: Record<string, unknown>) => void) | undefined;
  private done: ((err: unknown) => void) | undefined;

  private obj(name: string): Record<string, unknown> {
    return { metadata: { name, labels: this.namespaces.get(name), resourceVersion: String(this.rv) } };
  }
  put(name: string, labels: Record<string, string>): void {
    const type = this.namespaces.has(name) ? 'MODIFIED' : 'ADDED';
    this.namespaces.set(name, labels);
    this.rv++;
    this.stream?.(type, this.obj(name));
  }
  annotate(name: string): void {
    this.rv++;
    this.stream?.('MODIFIED', this.obj(name));
  }
  get watching(): boolean {
    return this.stream !== undefined;
  }
  client(): KubeClient {
    const self = this;
    return {
      request(_method: string, _path: string, o: { query?: Record<string, unknown> } = {}) {
        self.lists++;
        const sel = o.query?.['labelSelector'];
        if (typeof sel === 'string') {
          self.labelLists++;
          if (self.fail !== undefined) return Promise.reject(new KubeApiError(self.fail, { message: 'unavailable' }));
          const m = /^([a-z]+)=([a-z0-9]+)$/.exec(sel);
          if (!m) return Promise.reject(new KubeApiError(400, { message: `unable to parse requirement: ${sel}` }));
          const items = [...self.namespaces].filter(([, l]) => l[m[1]!] === m[2]).map(([n]) => self.obj(n));
          return Promise.resolve({ kind: 'PartialObjectMetadataList', metadata: { resourceVersion: String(self.rv) }, items });
        }
        return Promise.resolve({ kind: 'PartialObjectMetadataList', metadata: { resourceVersion: String(self.rv) }, items: [...self.namespaces.keys()].map((n) => self.obj(n)) });
      },
      watch(_path: string, _q: unknown, onEvent: (type: string, obj: Record<string, unknown>) => void, onDone: (err: unknown) => void, onOpen?: () => void) {
        self.watches++;
        self.stream = onEvent;
        self.done = onDone;
        onOpen?.();
        return Promise.resolve({
          abort: () => {
            self.stream = undefined;
            const d = self.done;
            self.done = undefined;
            d?.(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          },
        });
      },
    } as unknown as KubeClient;
  }
}

describe('namespace selectors, resolved by the API server', () => {
  async function setup(): Promise<{ api: FakeNamespaces; clock: ManualClock; sel: NamespaceSelectors; changes: () => number; advance: (ms: number) => Promise<void> }> {
    const api = new FakeNamespaces();
    api.put('a1', { team: 'a' });
    api.put('b1', { team: 'b' });
    const clock = new ManualClock();
    const sel = new NamespaceSelectors({ client: api.client(), logger: silent, clock, debounceMs: 1_000, maxDelayMs: 5_000 });
    let n = 0;
    sel.subscribe(() => n++);
    const advance = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t += 100) {
        clock.advance(100);
        await settle();
        await sel.idle();
      }
    };
    sel.start();
    return { api, clock, sel, changes: () => n, advance };
  }

  it('no selector in use: no list, no watch; the first one lists and starts the watch, the last one stops it', async () => {
    const { api, sel, advance } = await setup();
    await advance(2_000);
    expect([api.lists, api.watches, sel.watching]).toEqual([0, 0, false]);
    sel.use('registries', ['team=a']);
    await advance(2_000);
    expect(sel.lookup('team=a')).toEqual(['a1']);
    expect(api.watching).toBe(true);
    sel.use('registries', []);
    await advance(100);
    expect(sel.watching).toBe(false);
    expect(api.watching).toBe(false);
    expect(sel.lookup('team=a')).toBeUndefined();
    await sel.stop();
  });

  it('a burst of namespace events is one re-resolution; annotation churn is none', async () => {
    const { api, sel, changes, advance } = await setup();
    sel.use('registries', ['team=a']);
    sel.use('static-secret', ['team=b']);
    await advance(3_000);
    const passes = sel.passes;
    const before = changes();
    for (let i = 0; i < 30; i++) api.put(`n${i}`, { team: i === 29 ? 'a' : 'c' });
    await advance(200);
    api.put('b2', { team: 'b' });
    await advance(3_000);
    expect(sel.passes - passes).toBe(1);
    expect(changes() - before).toBe(1);
    expect(sel.lookup('team=a')).toEqual(['a1', 'n29']);
    expect(sel.lookup('team=b')).toEqual(['b1', 'b2']);
    for (let i = 0; i < 20; i++) api.annotate('a1');
    await advance(3_000);
    expect(sel.passes - passes).toBe(1);
    await sel.stop();
  });

  it('a steady storm still re-resolves within the cap', async () => {
    const { api, sel, advance } = await setup();
    sel.use('registries', ['team=a']);
    await advance(3_000);
    const passes = sel.passes;
    for (let i = 0; i < 12; i++) {
      api.put(`s${i}`, { team: i === 0 ? 'a' : 'c' });
      await advance(500);
    }
    expect(sel.passes - passes).toBeGreaterThanOrEqual(1);
    expect(sel.lookup('team=a')).toContain('s0');
    await sel.stop();
  });

  it('a selector the API server refuses is NRC_E_SCOPE_INVALID; the API server unreachable keeps the last namespaces', async () => {
    const { api, sel, advance } = await setup();
    sel.use('registries', ['team=a', 'team in (a']);
    await advance(2_000);
    expect(sel.lookup('team in (a')).toMatchObject({ code: 'NRC_E_SCOPE_INVALID' });
    expect(sel.lookup('team=a')).toEqual(['a1']);
    api.fail = 503;
    api.put('a2', { team: 'a' });
    await advance(3_000);
    expect(sel.lookup('team=a')).toEqual(['a1']);
    api.fail = undefined;
    await advance(5_000);
    expect(sel.lookup('team=a')).toEqual(['a1', 'a2']);
    api.fail = 403;
    api.put('a3', { team: 'a' });
    await advance(3_000);
    expect(sel.lookup('team=a')).toMatchObject({ code: 'NRC_E_K8S_FORBIDDEN' });
    await sel.stop();
  });
});
