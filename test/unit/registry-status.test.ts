// The broker's Registry status, pure parts and the rate limit (issue 24): conditions and fields
// from what the broker resolved, its Secret's `since` and the Nodes' annotations; the masked hint;
// lastTransitionTime only moving with the status; and a fleet of 1,000 nodes changing state
// becoming a handful of status applies, not 1,000 (fake API: list, watch, apply counted).
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { BROKER_GENERATION_ANNOTATION, BrokerSecretWriter, sinceOf, type SecretStore } from '../../src/broker/secret-writer.ts';
import { assessRegistries, formatRegistries } from '../../src/commands/status.ts';
import { countEffective, credentialHint, desiredStatus, RegistryStatusReporter, type Condition, type NodeView } from '../../src/broker/registry-status.ts';
import { AgentError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { ANNOTATION_BROKER_GENERATION, ANNOTATION_EFFECTIVE } from '../../src/report/node-annotations.ts';
import { KubeApiError, type KubeClient } from '../../src/sources/kube-client.ts';
import type { KubeObject } from '../../src/sources/kubernetes/list-watch.ts';

const NOW = Date.parse('2026-12-06T04:00:00.000Z');
const registry = (name: string, spec: unknown, generation = 3): KubeObject => ({ metadata: { name, namespace: 'okteto', uid: `uid-${name}`, generation, resourceVersion: '1' } as KubeObject['metadata'], spec });
const staticSpec = { static: { port: 5000, userSecretRef: { name: 's', key: 'u' }, passwordSecretRef: { name: 's', key: 'p' } } };
const cred = (key: string, password: string, expiresAt?: Date): RegistryCredential => ({ key, host: key, username: 'u', password, source: 'test', ...(expiresAt ? { expiresAt } : {}) });
const since = new Map([['reg.example.com:5000', { generation: 5, at: '2026-12-06T03:59:00.000Z' }]]);
const node = (generation: number | undefined, state: 'effective' | 'pending' | 'not-written', atMs: number): NodeView => ({
  ...(generation !== undefined ? { generation } : {}),
  effective: { state, at: new Date(atMs), via: ['config.json'] },
});

describe('Registry status (pure)', () => {
  it('the hint: the last 4 characters only for values of 12 characters or more', () => {
    expect(credentialHint('abcdefghijkl')).toBe('****ijkl');
    expect(credentialHint('short-pass1')).toBe('****');
    expect(credentialHint('')).toBe('****');
  });

  it('counts a node when it applied the write that brought the credential and it is effective (or pending, past due)', () => {
    const nodes = [node(5, 'effective', NOW - 1), node(6, 'pending', NOW - 1), node(7, 'pending', NOW + 60_000), node(4, 'effective', NOW - 1), node(undefined, 'effective', NOW), node(9, 'not-written', NOW)];
    expect(countEffective(nodes, 5, NOW)).toEqual({ effective: 2, nodes: 6, pending: 1, nextAt: NOW + 60_000 });
  });

  it('static, resolved: Resolved=True, Effective counted, host with port, hint, no secret anywhere', () => {
    const s = desiredStatus(
      registry('reg.example.com', staticSpec),
      { resolution: { credentials: [cred('reg.example.com:5000', 'p4ssw0rd-long-enough')], errors: [] }, since, nodes: [node(5, 'effective', NOW), node(4, 'effective', NOW)], now: NOW },
      [],
    );
    expect(s.conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).toEqual([
      ['Resolved', 'True', 'Resolved', 3],
      ['Effective', 'False', 'Propagating', 3],
    ]);
    expect(s.fields).toEqual({ type: 'static', host: 'reg.example.com:5000', effective: '1/2', effectiveNodes: 1, nodes: 2, lastRefreshTime: '2026-12-06T03:59:00Z', hint: '****ough' });
    expect(JSON.stringify(s)).not.toContain('p4ssw0rd-long-enough');
  });

  it('a failure of its own: Resolved=False with the code as reason; another registry\'s error is not its own', () => {
    const err = new AgentError('NRC_E_REGISTRY_SECRET_MISSING', { subject: 'registry "reg.example.com"', detail: 'Secret "s" key "p": the Secret does not exist.' });
    const other = new AgentError('NRC_E_REGISTRY_SECRET_MISSING', { subject: 'registry "other.example.com"' });
    const s = desiredStatus(registry('reg.example.com', staticSpec), { resolution: { credentials: [], errors: [err, other] }, since, nodes: [], now: NOW }, []);
    expect(s.conditions[0]).toMatchObject({ type: 'Resolved', status: 'False', reason: 'NRC_E_REGISTRY_SECRET_MISSING' });
    expect(s.conditions[1]).toMatchObject({ type: 'Effective', status: 'False', reason: 'NotWritten' });
    const ok = desiredStatus(registry('other2.example.com', { static: { userSecretRef: { name: 's', key: 'u' }, passwordSecretRef: { name: 's', key: 'p' } } }), { resolution: { credentials: [cred('other2.example.com', 'x')], errors: [err, other] }, since: new Map(), nodes: [], now: NOW }, []);
    expect(ok.conditions[0]).toMatchObject({ status: 'True' });
  });

  it('ECR: the token expiry; a duplicate is only the ignored Registry\'s failure', () => {
    const host = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
    const spec = { awsIamRole: { roleARN: 'arn:aws:iam::123456789012:role/r', audience: 'a' } };
    const s = desiredStatus(registry(host, spec), { resolution: { credentials: [cred(host, 'x'.repeat(40) + 'tail', new Date(NOW + 12 * 3600_000))], errors: [] }, since: new Map(), nodes: [], now: NOW }, []);
    expect(s.fields).toMatchObject({ type: 'awsIamRole', host, expiresAt: '2026-12-06T16:00:00Z', hint: '****tail' });
    // The broker's own service-account token failing (subject: the account) is every awsIamRole registry's failure.
    const sa = new AgentError('NRC_E_ECR_SA_TOKEN_FAILED', { subject: 'serviceaccount okteto/node-registry-credentials-broker' });
    expect(desiredStatus(registry(host, spec), { resolution: { credentials: [], errors: [sa] }, since: new Map(), nodes: [], now: NOW }, []).conditions[0]).toMatchObject({ status: 'False', reason: 'NRC_E_ECR_SA_TOKEN_FAILED' });
    const dup = new AgentError('NRC_E_DUPLICATE_REGISTRY', { subject: 'reg.example.com', detail: 'Registry "b.example.com" was ignored.' });
    const a = desiredStatus(registry('reg.example.com', { static: { userSecretRef: { name: 's', key: 'u' }, passwordSecretRef: { name: 's', key: 'p' } } }), { resolution: { credentials: [cred('reg.example.com', 'x')], errors: [dup] }, since: new Map(), nodes: [], now: NOW }, []);
    expect(a.conditions[0]!.status).toBe('True');
  });

  it('lastTransitionTime stays while the status stays, moves when it changes; nothing resolved yet is Unknown', () => {
    const prev: Condition[] = [{ type: 'Resolved', status: 'True', reason: 'Resolved', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }];
    const same = desiredStatus(registry('reg.example.com', staticSpec), { resolution: { credentials: [cred('reg.example.com:5000', 'x')], errors: [] }, since, nodes: undefined, now: NOW }, prev);
    expect(same.conditions[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(same.conditions[1]).toMatchObject({ status: 'Unknown', reason: 'NodesUnknown' });
    const pending = desiredStatus(registry('reg.example.com', staticSpec), { resolution: undefined, since, nodes: [], now: NOW }, prev);
    expect(pending.conditions[0]).toMatchObject({ status: 'Unknown', reason: 'Pending', lastTransitionTime: '2026-12-06T04:00:00Z' });
  });
});

/** A fake API server: Registries and Nodes to list and watch, status applies counted. */
class FakeApi {
  readonly applies: { path: string; body: unknown; contentType?: string; query?: unknown }[] = [];
  readonly events: unknown[] = [];
  /** Status applies to refuse with a 503 (the API server in trouble), counted down. */
  failApplies = 0;
  readonly applyTimes: number[] = [];
  private rv = 10;
  private readonly watchers = new Map<string, (type: string, obj: Record<string, unknown>) => void>();
  readonly nodes = new Map<string, KubeObject>();
  constructor(readonly registries: KubeObject[]) {}
  client(): KubeClient {
    const api = this;
    return {
      request: async (method: string, path: string, o: { body?: unknown; contentType?: string; query?: unknown; accept?: string } = {}) => {
        if (method === 'GET') {
          const items = path.includes('/nodes') ? [...api.nodes.values()] : api.registries;
          return { kind: path.includes('/nodes') ? 'PartialObjectMetadataList' : 'RegistryList', metadata: { resourceVersion: String(api.rv) }, items };
        }
        if (method === 'PATCH') {
          api.applyTimes.push(performance.now());
          if (api.failApplies > 0) {
            api.failApplies--;
            throw new KubeApiError(503, {});
          }
          api.applies.push({ path, body: o.body, contentType: o.contentType, query: o.query });
          return { metadata: { resourceVersion: String(++api.rv) } };
        }
        if (method === 'POST') api.events.push(o.body);
        return {};
      },
      watch: async (path: string, _q: unknown, onEvent: (type: string, obj: Record<string, unknown>) => void, _done: unknown, onOpen?: () => void) => {
        api.watchers.set(path.includes('/nodes') ? 'nodes' : 'registries', onEvent);
        onOpen?.();
        return { abort: () => undefined };
      },
    } as unknown as KubeClient;
  }
  setNode(name: string, annotations: Record<string, string>): void {
    const obj = { metadata: { name, resourceVersion: String(++this.rv), annotations } as KubeObject['metadata'] };
    this.nodes.set(name, obj);
    this.watchers.get('nodes')?.('MODIFIED', obj);
  }
  get watching(): boolean {
    return this.watchers.has('nodes') && this.watchers.has('registries');
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Registry status: rate at fleet scale', () => {
  it('1,000 nodes becoming effective one by one over ~1 s: a few applies per Registry, each server-side apply with the broker\'s manager, never forced', async () => {
    const api = new FakeApi([registry('reg.example.com', staticSpec), registry('b.example.com', { static: { userSecretRef: { name: 's', key: 'u' }, passwordSecretRef: { name: 's', key: 'p' } } })]);
    for (let i = 0; i < 1000; i++) api.nodes.set(`n${i}`, { metadata: { name: `n${i}`, resourceVersion: '1' } });
    const r = new RegistryStatusReporter({ client: api.client(), namespace: 'okteto', logger: createLogger('error'), debounceMs: 10, minIntervalMs: 250 });
    r.start();
    r.setResolution({ credentials: [cred('reg.example.com:5000', 'secret-password-1234'), cred('b.example.com', 'another-password-99')], errors: [] });
    r.setSince(new Map([...since, ['b.example.com', { generation: 5, at: '2026-12-06T03:59:00.000Z' }]]));
    await sleep(100);
    expect(api.watching).toBe(true);
    const before = api.applies.length;
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) {
      api.setNode(`n${i}`, { [ANNOTATION_BROKER_GENERATION]: '5', [ANNOTATION_EFFECTIVE]: `effective ${new Date(Date.now() - 1000).toISOString()} config.json kubelet-read` });
      if (i % 50 === 49) await sleep(50);
    }
    const spreadMs = Date.now() - t0;
    await sleep(800);
    await r.idle();
    await r.stop();
    const during = api.applies.slice(before);
    const perRegistry = (name: string): number => during.filter((a) => a.path.includes(`/registries/${name}/status`)).length;
    console.log(`1,000 node changes over ${spreadMs} ms: ${perRegistry('reg.example.com')} + ${perRegistry('b.example.com')} status applies (interval 250 ms)`);
    // At most one per interval per Registry, plus the first: far from 1,000.
    for (const name of ['reg.example.com', 'b.example.com']) {
      expect(perRegistry(name)).toBeGreaterThan(0);
      expect(perRegistry(name)).toBeLessThanOrEqual(Math.ceil((spreadMs + 800) / 250) + 1);
    }
    const last = during.filter((a) => a.path.includes('/registries/reg.example.com/status')).at(-1)!;
    expect(last.contentType).toBe('application/apply-patch+yaml');
    expect(last.query).toEqual({ fieldManager: 'node-registry-credentials-broker' });
    expect((last.body as { status: { nodeCredentials: { effective: string } } }).status.nodeCredentials.effective).toBe('1000/1000');
    expect(JSON.stringify(api.applies)).not.toContain('secret-password-1234');
  });
});

describe('Registry status: a failing apply', () => {
  it('backs off with jitter, doubling from the interval (never sooner), then writes once the API server answers', async () => {
    const api = new FakeApi([registry('reg.example.com', staticSpec)]);
    api.failApplies = 4;
    const r = new RegistryStatusReporter({ client: api.client(), namespace: 'okteto', logger: createLogger('error'), debounceMs: 10, minIntervalMs: 50, watchNodes: false });
    r.start();
    r.setResolution({ credentials: [cred('reg.example.com:5000', 'secret-password-1234')], errors: [] });
    r.setSince(since);
    await vi.waitFor(() => expect(api.applies.length).toBe(1), { timeout: 5000, interval: 20 });
    await r.stop();
    // Four refusals, then the write: each wait from 50 ms doubling, times 1–1.5 (timers fire a little late, never early).
    const gaps = api.applyTimes.slice(1).map((t, i) => t - api.applyTimes[i]!);
    expect(gaps).toHaveLength(4);
    gaps.forEach((g, i) => {
      expect(g, `retry ${i + 1}`).toBeGreaterThanOrEqual(50 * 2 ** i - 2);
      expect(g, `retry ${i + 1}`).toBeLessThan(50 * 2 ** i * 1.5 + 1000);
    });
  });
});

describe('the broker Secret\'s write counter and `since` (what the Effective count starts from)', () => {
  /** An in-memory Secret with resourceVersions, as the API server keeps it. */
  const memoryStore = (): SecretStore & { secret: V1Secret | undefined } => {
    let rv = 1;
    const store = {
      secret: undefined as V1Secret | undefined,
      description: 'memory',
      get: async () => (store.secret ? (JSON.parse(JSON.stringify(store.secret)) as V1Secret) : undefined),
      create: async (s: V1Secret) => (store.secret = { ...s, metadata: { ...s.metadata, resourceVersion: String(++rv) } }),
      replace: async (s: V1Secret) => (store.secret = { ...s, metadata: { ...s.metadata, resourceVersion: String(++rv) } }),
      watch: () => ({ stop: async () => undefined }),
    };
    return store;
  };
  const content = (entries: Record<string, string>) => ({ credentials: Object.entries(entries).map(([k, p]) => cred(k, p)), fingerprints: new Map<string, string>() });

  it('counts writes, keeps an entry\'s generation while its value stays, continues after a new leader and above what the nodes report', async () => {
    const store = memoryStore();
    const w = new BrokerSecretWriter({ store, namespace: 'okteto', name: 'b' });
    await w.write(content({ a: 'pa', b: 'pb' }), new Date(NOW));
    expect(store.secret?.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]).toBe('1');
    expect([...sinceOf(store.secret)].map(([k, v]) => [k, v.generation])).toEqual([['a', 1], ['b', 1]]);
    await w.write(content({ a: 'pa', b: 'pb2' }), new Date(NOW + 1000));
    expect(store.secret?.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]).toBe('2');
    expect(Object.fromEntries([...sinceOf(store.secret)].map(([k, v]) => [k, v.generation]))).toEqual({ a: 1, b: 2 });
    expect(await w.write(content({ a: 'pa', b: 'pb2' }), new Date(NOW + 2000))).toEqual({ outcome: 'unchanged' });
    expect(store.secret?.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]).toBe('2');
    // A new leader (another process) continues from the Secret.
    const w2 = new BrokerSecretWriter({ store, namespace: 'okteto', name: 'b' });
    await w2.write(content({ a: 'pa', b: 'pb2', c: 'pc' }), new Date(NOW + 3000));
    expect(Object.fromEntries([...sinceOf(store.secret)].map(([k, v]) => [k, v.generation]))).toEqual({ a: 1, b: 2, c: 3 });
    // Deleted by hand, recreated by a new leader that knows nothing: above the nodes' highest counter.
    store.secret = undefined;
    const w3 = new BrokerSecretWriter({ store, namespace: 'okteto', name: 'b', generationFloor: () => 41 });
    await w3.write(content({ a: 'pa' }), new Date(NOW + 4000));
    expect(store.secret!.metadata?.annotations?.[BROKER_GENERATION_ANNOTATION]).toBe('42');
    expect(sinceOf(store.secret).get('a')).toEqual({ generation: 42, at: new Date(NOW + 4000).toISOString() });
  });
});

describe('status: the per-registry view', () => {
  it('shows the broker\'s figures, marks a Registry not resolved, and never more than the hint', () => {
    const views = assessRegistries([
      { metadata: { name: 'b.example.com' }, status: { conditions: [{ type: 'Resolved', status: 'False', reason: 'NRC_E_REGISTRY_SECRET_MISSING' }, { type: 'Ready', status: 'True' }] } },
      { metadata: { name: 'a.example.com' }, status: { conditions: [{ type: 'Resolved', status: 'True', reason: 'Resolved' }], nodeCredentials: { type: 'static', host: 'a.example.com:5000', effective: '998/1000', lastRefreshTime: '2026-12-06T03:58:00Z', hint: '****wxyz' } } },
      { metadata: { name: 'c.example.com' } },
    ]);
    expect(views.map((v) => [v.name, v.attention])).toEqual([['a.example.com', false], ['b.example.com', true], ['c.example.com', true]]);
    const text = formatRegistries(views, new Date(NOW));
    expect(text.split('\n')[1]).toMatch(/^ {2}a\.example\.com\s+static\s+a\.example\.com:5000\s+True\s+998\/1000\s+-\s+2m ago\s+\*\*\*\*wxyz$/);
    expect(text).toContain('False (NRC_E_REGISTRY_SECRET_MISSING)');
    expect(text).toContain('not reported (is the broker running?)');
  });
});
