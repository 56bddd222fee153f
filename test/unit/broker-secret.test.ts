// The broker's Secret with manual clocks and in-memory stores that behave like the API server
// (resourceVersion checked on every write, 409 on a stale one, a watch on the one Secret):
// - it keeps its Secret: deleted or edited by hand, it is restored whole within the debounce,
//   once, logged with the reason (issue 25, item 2);
// - its writes are fenced: a replica paused past its lease never writes its stale snapshot over
//   the new leader's (the monotonic fence), and a write already under way when it froze gets a
//   409 (the new leader's stamp moved the resourceVersion) (issue 25, item 4).
import { Writable } from 'node:stream';
import { KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { Broker } from '../../src/broker/broker.ts';
import { LeaderElector, LeaseConflict, type LeaseRecord, type LeaseStore, type StoredLease } from '../../src/broker/lease.ts';
import { DOCKERCONFIG_KEY, EXPIRIES_ANNOTATION, LEADER_ANNOTATION, LEADER_TRANSITIONS_ANNOTATION, MANAGED_BY_LABEL, type SecretStore, type WriteResult } from '../../src/broker/secret-writer.ts';
import { AgentError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import type { RegistryCredential, Source, SourceSnapshot } from '../../src/model/credential.ts';
import { KubeApiError } from '../../src/sources/kube-client.ts';
import { ManualClock } from '../support/manual-clock.ts';

const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };
const DEBOUNCE_MS = 200;

/** Lets every pending promise chain settle (no I/O here: one macrotask turn drains them). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Advances the clocks together in small steps, settling after each. */
async function run(clocks: readonly (ManualClock)[], ms: number, step = 50): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    for (const c of clocks) c.advance(step);
    await settle();
  }
}

const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

/** The Lease, shared by the replicas. */
class MemoryLease {
  stored: StoredLease | undefined;
  private rv = 1;
  /** Requests per replica. */
  readonly requests = new Map<string, number>();
  /** One replica's view: counts its requests. */
  view(identity: string): LeaseStore {
    const count = (): void => void this.requests.set(identity, (this.requests.get(identity) ?? 0) + 1);
    return {
      description: 'leases okteto/node-registry-credentials-broker',
      get: () => {
        count();
        return Promise.resolve(this.stored);
      },
      create: (record: LeaseRecord) => {
        count();
        return this.stored ? Promise.reject(new LeaseConflict()) : Promise.resolve(this.save(record));
      },
      update: (record: LeaseRecord, resourceVersion: string) => {
        count();
        return this.stored?.resourceVersion !== resourceVersion ? Promise.reject(new LeaseConflict()) : Promise.resolve(this.save(record));
      },
    };
  }
  private save(record: LeaseRecord): StoredLease {
    this.stored = { record, resourceVersion: String(++this.rv) };
    return this.stored;
  }
}

interface SecretWrite {
  readonly verb: 'create' | 'replace';
  readonly leader: string | undefined;
  readonly status: number;
}

/** The broker's Secret as the API server keeps it, shared by the replicas; a watch on it. */
class MemorySecrets {
  secret: V1Secret | undefined;
  private rv = 100;
  readonly writes: SecretWrite[] = [];
  private readonly watchers = new Set<(s: V1Secret | undefined) => void>();
  /** One replica's view; `gate` holds its reads' answers (a process frozen mid-write). */
  view(gate: { hold?: Promise<void> } = {}): SecretStore {
    return {
      description: 'secrets okteto/node-registry-credentials-broker',
      get: async () => {
        const s = clone(this.secret);
        if (gate.hold) await gate.hold;
        return s;
      },
      create: (s) => {
        if (this.secret) return this.refuse('create', s, 409);
        return Promise.resolve(this.save('create', s));
      },
      replace: (s) => {
        if (!this.secret) return this.refuse('replace', s, 404);
        if (s.metadata?.resourceVersion !== this.secret.metadata?.resourceVersion) return this.refuse('replace', s, 409);
        return Promise.resolve(this.save('replace', s));
      },
      watch: (onChange) => {
        this.watchers.add(onChange);
        queueMicrotask(() => onChange(clone(this.secret)));
        return { stop: () => Promise.resolve(void this.watchers.delete(onChange)) };
      },
    };
  }
  /** kubectl delete. */
  delete(): void {
    this.secret = undefined;
    this.notify();
  }
  /** kubectl edit; `silent`: the watch misses it (a dropped event, a watch down at the time). */
  edit(change: (s: V1Secret) => void, opts: { silent?: boolean } = {}): void {
    const s = clone(this.secret)!;
    change(s);
    s.metadata!.resourceVersion = String(++this.rv);
    this.secret = s;
    if (!opts.silent) this.notify();
  }
  private refuse(verb: SecretWrite['verb'], s: V1Secret, status: number): Promise<never> {
    this.writes.push({ verb, leader: s.metadata?.annotations?.[LEADER_ANNOTATION], status });
    return Promise.reject(new KubeApiError(status, { reason: status === 409 ? 'Conflict' : 'NotFound' }));
  }
  private save(verb: SecretWrite['verb'], s: V1Secret): V1Secret {
    this.writes.push({ verb, leader: s.metadata?.annotations?.[LEADER_ANNOTATION], status: 200 });
    const stored = clone(s);
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    this.secret = stored;
    this.notify();
    return clone(stored);
  }
  private notify(): void {
    for (const w of this.watchers) {
      const s = clone(this.secret);
      queueMicrotask(() => w(s));
    }
  }
}

/** The Registry resources as a source the test sets. */
class FakeRegistries implements Source {
  readonly name = 'registries';
  private emit: ((s: SourceSnapshot) => void) | undefined;
  constructor(
    private readonly onEcrRegistries: (specs: readonly never[]) => void,
    private credentials: RegistryCredential[],
  ) {}
  start(emit: (s: SourceSnapshot) => void): Promise<void> {
    this.emit = emit;
    this.onEcrRegistries([]);
    this.publish();
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.emit = undefined;
    return Promise.resolve();
  }
  set(credentials: RegistryCredential[]): void {
    this.credentials = credentials;
    this.publish();
  }
  private publish(): void {
    this.emit?.({ source: this.name, credentials: this.credentials, errors: [], ok: true });
  }
}

const cred = (password: string, key = 'registry.example.com'): RegistryCredential => ({ key, host: key, username: 'alice', password, source: 'registries' });

/** Never contacted: the store and sources are in memory; the ECR token provider is only constructed. */
function unusedKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  return kc;
}

interface Replica {
  readonly identity: string;
  readonly clock: ManualClock;
  readonly broker: Broker;
  readonly registries: () => FakeRegistries;
  readonly elector: LeaderElector | undefined;
  readonly results: (WriteResult | AgentError)[];
  readonly events: string[];
  lost?: AgentError;
  logs: string;
}

function replica(opts: { identity: string; clock: ManualClock; secrets: SecretStore; lease?: MemoryLease; credentials: RegistryCredential[]; resyncMs?: number }): Replica {
  let registries: FakeRegistries | undefined;
  const r: Replica = {
    identity: opts.identity,
    clock: opts.clock,
    results: [],
    events: [],
    logs: '',
    registries: () => registries!,
    elector: undefined,
    broker: undefined as unknown as Broker,
  };
  const elector = opts.lease
    ? new LeaderElector({
        store: opts.lease.view(opts.identity),
        identity: opts.identity,
        timing: TIMING,
        clock: opts.clock,
        random: () => 0.5,
        onStartedLeading: () => {
          r.events.push('started');
          void r.broker.start();
        },
        onStoppedLeading: (reason) => {
          r.events.push('stopped');
          r.lost = reason;
          void r.broker.stop();
        },
      })
    : undefined;
  const broker = new Broker({
    kubeConfig: unusedKubeConfig(),
    namespace: 'okteto',
    secretName: 'node-registry-credentials-broker',
    serviceAccount: { namespace: 'okteto', name: 'node-registry-credentials-broker' },
    logger: createLogger(
      'debug',
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          r.logs += chunk.toString();
          cb();
        },
      }),
    ),
    debounceMs: DEBOUNCE_MS,
    clock: opts.clock,
    random: () => 0.5,
    secretStore: opts.secrets,
    registrySource: (onEcr) => (registries = new FakeRegistries(onEcr, opts.credentials)),
    onWrite: (o) => r.results.push(o),
    ...(elector ? { leadership: elector } : {}),
    ...(opts.resyncMs !== undefined ? { resyncMs: opts.resyncMs } : {}),
  });
  Object.assign(r, { broker, elector });
  return r;
}

const password = (s: V1Secret | undefined): string | undefined => {
  const raw = s?.data?.[DOCKERCONFIG_KEY];
  return raw ? (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as { auths: Record<string, { password: string }> }).auths['registry.example.com']?.password : undefined;
};
/** What the broker owns in its Secret: type, label, data, its annotations (not written-at). */
const owned = (s: V1Secret | undefined): unknown => {
  if (!s) return undefined;
  const a = s.metadata?.annotations ?? {};
  return { type: s.type, managedBy: s.metadata?.labels?.[MANAGED_BY_LABEL], data: s.data, expiries: a[EXPIRIES_ANNOTATION], leader: a[LEADER_ANNOTATION], transitions: a[LEADER_TRANSITIONS_ANNOTATION] };
};
const restoredLines = (logs: string): { reason: string; noticedBy: string; msg: string }[] =>
  logs
    .split('\n')
    .filter((l) => l.includes('restored the registry credentials Secret'))
    .map((l) => JSON.parse(l) as { reason: string; noticedBy: string; msg: string });

/** One leading broker (an elector on a fresh Lease) that has written its Secret. */
async function leadingBroker(opts: { resyncMs?: number } = {}): Promise<{ clock: ManualClock; secrets: MemorySecrets; a: Replica }> {
  const clock = new ManualClock();
  const secrets = new MemorySecrets();
  const a = replica({ identity: 'broker-a', clock, secrets: secrets.view(), lease: new MemoryLease(), credentials: [cred('s3cret-1')], ...opts });
  a.elector!.start();
  await run([clock], 1_000);
  expect(password(secrets.secret)).toBe('s3cret-1');
  return { clock, secrets, a };
}

describe('the broker keeps its Secret (issue 25, item 2)', () => {
  it('someone deletes the broker\'s Secret: it is back, whole, within the debounce (not at the next Registry change), logged once as deleted', async () => {
    const { clock, secrets, a } = await leadingBroker();
    const before = owned(secrets.secret);
    const writes = secrets.writes.length;
    secrets.delete();
    const deletedAt = clock.monotonic();
    let restoredAt: number | undefined;
    for (let i = 0; i < 100 && restoredAt === undefined; i++) {
      await run([clock], 50);
      if (secrets.secret) restoredAt = clock.monotonic();
    }
    expect(restoredAt, 'the deleted Secret was not restored').toBeDefined();
    expect(restoredAt! - deletedAt).toBeLessThanOrEqual(DEBOUNCE_MS + 100);
    expect(owned(secrets.secret)).toEqual(before);
    await run([clock], 5_000);
    // One create, no echo writes after it.
    expect(secrets.writes.slice(writes)).toEqual([{ verb: 'create', leader: 'broker-a', status: 200 }]);
    expect(restoredLines(a.logs)).toEqual([expect.objectContaining({ reason: 'deleted', noticedBy: 'watch' })]);
    expect(a.logs).not.toContain('s3cret-1');
  });

  it('someone edits the broker\'s Secret by hand: it is put back whole (data, annotations, no extra key) within the debounce, logged once as edited', async () => {
    const { clock, secrets, a } = await leadingBroker();
    const before = owned(secrets.secret);
    const writes = secrets.writes.length;
    secrets.edit((s) => {
      s.data = { [DOCKERCONFIG_KEY]: Buffer.from('{"auths":{}}').toString('base64'), extra: Buffer.from('x').toString('base64') };
      delete s.metadata!.annotations![EXPIRIES_ANNOTATION];
    });
    const editedAt = clock.monotonic();
    let restoredAt: number | undefined;
    for (let i = 0; i < 100 && restoredAt === undefined; i++) {
      await run([clock], 50);
      if (password(secrets.secret) === 's3cret-1') restoredAt = clock.monotonic();
    }
    expect(restoredAt, 'the edited Secret was not restored').toBeDefined();
    expect(restoredAt! - editedAt).toBeLessThanOrEqual(DEBOUNCE_MS + 100);
    expect(owned(secrets.secret)).toEqual(before);
    expect(Object.keys(secrets.secret!.data!)).toEqual([DOCKERCONFIG_KEY]);
    await run([clock], 5_000);
    expect(secrets.writes.slice(writes)).toEqual([{ verb: 'replace', leader: 'broker-a', status: 200 }]);
    expect(restoredLines(a.logs)).toEqual([expect.objectContaining({ reason: 'edited', noticedBy: 'watch' })]);
  });

  it('its own writes do not echo: content is compared, so each Registry change is one write and nothing else', async () => {
    const { clock, secrets, a } = await leadingBroker();
    const results = a.results.length;
    for (const pw of ['s3cret-2', 's3cret-3', 's3cret-4']) {
      a.registries().set([cred(pw)]);
      await run([clock], 1_000);
    }
    await run([clock], 10_000);
    expect(password(secrets.secret)).toBe('s3cret-4');
    // No 'unchanged' round trips triggered by the watch events of its own writes.
    expect(a.results.slice(results)).toEqual([{ outcome: 'updated' }, { outcome: 'updated' }, { outcome: 'updated' }]);
    expect(restoredLines(a.logs)).toEqual([]);
  });

  it('a change the watch missed is repaired by the periodic resync (5 min, jittered)', async () => {
    const { clock, secrets, a } = await leadingBroker();
    secrets.edit((s) => void (s.data = { [DOCKERCONFIG_KEY]: Buffer.from('{"auths":{}}').toString('base64') }), { silent: true });
    await run([clock], 4 * 60_000, 1_000);
    expect(password(secrets.secret)).toBeUndefined(); // nothing noticed it yet
    await run([clock], 2 * 60_000, 1_000);
    expect(password(secrets.secret)).toBe('s3cret-1');
    expect(restoredLines(a.logs)).toEqual([expect.objectContaining({ reason: 'edited', noticedBy: 'resync' })]);
  });
});

/** broker-a leads and wrote its Secret; broker-b stands by. Each has its own clock. */
async function twoReplicas(): Promise<{ lease: MemoryLease; secrets: MemorySecrets; a: Replica; b: Replica; ca: ManualClock; cb: ManualClock; gateA: { hold?: Promise<void> } }> {
  const lease = new MemoryLease();
  const secrets = new MemorySecrets();
  const ca = new ManualClock(Date.UTC(2026, 11, 6));
  const cb = new ManualClock(Date.UTC(2026, 11, 6));
  const gateA: { hold?: Promise<void> } = {};
  const a = replica({ identity: 'broker-a', clock: ca, secrets: secrets.view(gateA), lease, credentials: [cred('old')] });
  const b = replica({ identity: 'broker-b', clock: cb, secrets: secrets.view(), lease, credentials: [cred('old')] });
  a.elector!.start();
  await run([ca, cb], 1_000);
  b.elector!.start();
  await run([ca, cb], 3_000);
  expect(a.elector!.isLeader).toBe(true);
  expect(b.elector!.isLeader).toBe(false);
  expect(password(secrets.secret)).toBe('old');
  return { lease, secrets, a, b, ca, cb, gateA };
}

describe('fenced writes (issue 25, item 4)', () => {
  it('a broker thawed after a pause longer than the lease never writes its stale snapshot: NRC_E_BROKER_NOT_LEADER, then it stops leading without a Lease request', async () => {
    const { lease, secrets, a, b, ca, cb } = await twoReplicas();
    // Right after a renewal, A's view changes, and A is frozen (SIGSTOP) before its debounced write
    // runs: on resume that write is due before the next renewal.
    const renewals = lease.requests.get('broker-a');
    while (lease.requests.get('broker-a') === renewals) await run([ca, cb], 50);
    a.registries().set([cred('stale')]);
    ca.paused = true;
    // Meanwhile the Registry changes again; B takes over after the lease duration and writes.
    b.registries().set([cred('current')]);
    await run([ca, cb], 20_000);
    expect(b.elector!.isLeader).toBe(true);
    expect(owned(secrets.secret)).toMatchObject({ leader: 'broker-b', transitions: '1' });
    expect(password(secrets.secret)).toBe('current');
    const writes = secrets.writes.length;
    const leaseRequests = lease.requests.get('broker-a');
    // SIGCONT: A's clocks jump 20 s; its overdue write timer fires before its renew timer.
    expect(a.elector!.isLeader).toBe(true);
    ca.thaw(20_000);
    expect(a.elector!.holdsLease()).toBe(false);
    await run([ca, cb], 3_000);
    expect(secrets.writes.slice(writes).filter((w) => w.leader === 'broker-a')).toEqual([]);
    expect(password(secrets.secret)).toBe('current');
    expect(a.results.at(-1)).toBeInstanceOf(AgentError);
    expect((a.results.at(-1) as AgentError).code).toBe('NRC_E_BROKER_NOT_LEADER');
    expect(a.events).toEqual(['started', 'stopped']);
    expect(a.lost?.code).toBe('NRC_E_BROKER_LEADERSHIP_LOST');
    expect(lease.requests.get('broker-a')).toBe(leaseRequests);
    expect(lease.stored?.record.holderIdentity).toBe('broker-b');
  });

  it('a broker frozen mid-write (its monotonic clock stopped too: a suspended VM) gets 409 Conflict: the new leader wrote its stamp though the content was the same', async () => {
    const { secrets, a, b, ca, cb, gateA } = await twoReplicas();
    const stampOfA = owned(secrets.secret);
    const stampedRv = secrets.secret!.metadata!.resourceVersion;
    // A starts writing a change, reads the Secret, and freezes before its PUT.
    let release!: () => void;
    gateA.hold = new Promise<void>((resolve) => (release = resolve));
    a.registries().set([cred('stale')]);
    await run([ca, cb], DEBOUNCE_MS + 50);
    ca.paused = true;
    // The Registry went back meanwhile: B's content is the Secret's, yet B writes once, stamped.
    b.registries().set([cred('old')]);
    await run([ca, cb], 20_000);
    expect(b.elector!.isLeader).toBe(true);
    const afterB = { rv: secrets.secret!.metadata!.resourceVersion, owned: owned(secrets.secret) };
    const writes = secrets.writes.length;
    // Resumed with no time lost on its clocks: its fence passes; the resourceVersion it read does not.
    ca.thaw(0);
    delete gateA.hold;
    release();
    await settle();
    expect(secrets.writes.slice(writes)[0]).toEqual({ verb: 'replace', leader: 'broker-a', status: 409 });
    expect(password(secrets.secret)).toBe('old');
    // Because B's first write moved the resourceVersion, its stamp being the only change.
    expect(afterB.rv).not.toBe(stampedRv);
    expect(stampOfA).toMatchObject({ leader: 'broker-a', transitions: '0' });
    expect(afterB.owned).toMatchObject({ leader: 'broker-b', transitions: '1' });
    // A learns it was deposed at its next renewal; whatever slipped in between, B's watch puts back.
    await run([ca, cb], 5_000);
    expect(a.events).toEqual(['started', 'stopped']);
    expect(a.lost?.message).toContain('broker-b');
    expect(owned(secrets.secret)).toMatchObject({ leader: 'broker-b', transitions: '1' });
    expect(password(secrets.secret)).toBe('old');
  });

  it('a leader whose renew timer fires late (paused past the renew deadline) stops leading before any Lease request, and renews on time otherwise', async () => {
    const lease = new MemoryLease();
    const clock = new ManualClock(Date.UTC(2026, 11, 6));
    const events: string[] = [];
    let lost: AgentError | undefined;
    const elector = new LeaderElector({
      store: lease.view('broker-a'),
      identity: 'broker-a',
      timing: TIMING,
      clock,
      onStartedLeading: () => events.push('started'),
      onStoppedLeading: (reason) => {
        events.push('stopped');
        lost = reason;
      },
    });
    elector.start();
    await run([clock], 30_000);
    expect(events).toEqual(['started']);
    expect(elector.holdsLease()).toBe(true);
    const requests = lease.requests.get('broker-a');
    clock.paused = true;
    clock.thaw(TIMING.renewDeadlineMs + 1);
    await settle();
    expect(events).toEqual(['started', 'stopped']);
    expect(lost?.code).toBe('NRC_E_BROKER_LEADERSHIP_LOST');
    expect(elector.holdsLease()).toBe(false);
    expect(lease.requests.get('broker-a')).toBe(requests);
  });
});
