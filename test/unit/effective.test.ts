// When the node's configuration is effective (issue 22): the rules of report/effective.ts, the
// annotation's format, and the observer's checks between passes on a real file's times.
import { mkdtempSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decideEffective, KUBELET_CONFIG_CACHE_MS, type EffectiveInput } from '../../src/report/effective.ts';
import { formatEffective, parseEffective } from '../../src/report/node-annotations.ts';
import { EffectiveObserver } from '../../src/commands/effective-observer.ts';
import { HostFs } from '../../src/host/host-fs.ts';
import type { ApplyReport } from '../../src/model/apply-report.ts';
import type { EffectiveState } from '../../src/report/node-annotations.ts';

const T = Date.parse('2026-12-06T04:00:00Z');
const base: EffectiveInput = { written: true, passAt: T, mode: 'config-json', kubeletFile: { atimeMs: T, mtimeMs: T }, kubeletChangedAt: T, atimeTrusted: true, providerWrittenAt: undefined, hostsToml: true, nowMs: T + 1000 };

describe('decideEffective', () => {
  it('config.json just written and not read: pending until the kubelet cache lifetime has run out', () => {
    expect(decideEffective(base)).toEqual({ state: 'pending', at: new Date(T + KUBELET_CONFIG_CACHE_MS), via: ['config.json', 'hosts.toml'], how: 'cache-lifetime' });
  });
  it('config.json read by the kubelet after the write (atime past mtime): effective since that read', () => {
    expect(decideEffective({ ...base, kubeletFile: { atimeMs: T + 700, mtimeMs: T } })).toMatchObject({ state: 'effective', at: new Date(T + 700), how: 'kubelet-read' });
  });
  it('a read that may be the agent\'s own (O_NOATIME refused) is not trusted', () => {
    expect(decideEffective({ ...base, atimeTrusted: false, kubeletFile: { atimeMs: T + 700, mtimeMs: T } }).state).toBe('pending');
  });
  it('a read before the agent\'s last change (a deletion leaves no file) does not count', () => {
    expect(decideEffective({ ...base, kubeletFile: undefined, kubeletChangedAt: T }).state).toBe('pending');
    expect(decideEffective({ ...base, kubeletFile: { atimeMs: T + 50, mtimeMs: T - 60_000 }, kubeletChangedAt: T + 100 }).state).toBe('pending');
  });
  it('after the lifetime: effective since write + 5 min, whether read or not', () => {
    expect(decideEffective({ ...base, nowMs: T + KUBELET_CONFIG_CACHE_MS })).toMatchObject({ state: 'effective', at: new Date(T + KUBELET_CONFIG_CACHE_MS), how: 'cache-lifetime' });
    // A read after that does not move "since" later.
    const late = T + KUBELET_CONFIG_CACHE_MS + 700;
    expect(decideEffective({ ...base, kubeletFile: { atimeMs: late, mtimeMs: T }, nowMs: late + 1 })).toMatchObject({ state: 'effective', at: new Date(T + KUBELET_CONFIG_CACHE_MS), how: 'cache-lifetime' });
  });
  it('no config.json and nothing changed by the agent: nothing the kubelet could hold an older copy of', () => {
    expect(decideEffective({ ...base, kubeletFile: undefined, kubeletChangedAt: undefined })).toMatchObject({ state: 'effective', how: 'at-write' });
  });
  it('provider mode: effective at the write of the plugin\'s state', () => {
    expect(decideEffective({ ...base, mode: 'provider', providerWrittenAt: T - 5, hostsToml: false })).toEqual({ state: 'effective', at: new Date(T - 5), via: ['provider'], how: 'at-write' });
  });
  it('a failed pass: not written', () => {
    expect(decideEffective({ ...base, written: false })).toEqual({ state: 'not-written', at: new Date(T), via: ['config.json', 'hosts.toml'] });
  });
});

describe('the effective annotation', () => {
  it('round-trips, and refuses what it does not know', () => {
    const e: EffectiveState = { state: 'pending', at: new Date(T), via: ['config.json', 'hosts.toml'], how: 'cache-lifetime' };
    expect(formatEffective(e)).toBe('pending 2026-12-06T04:00:00.000Z config.json+hosts.toml cache-lifetime');
    expect(parseEffective(formatEffective(e))).toEqual(e);
    expect(parseEffective('not-written 2026-12-06T04:00:00.000Z provider')).toEqual({ state: 'not-written', at: new Date(T), via: ['provider'] });
    for (const bad of ['', 'effective', 'effective yesterday config.json', 'maybe 2026-12-06T04:00:00.000Z config.json', 'effective 2026-12-06T04:00:00.000Z docker']) expect(parseEffective(bad), bad).toBeUndefined();
  });
});

describe('EffectiveObserver on a real file', () => {
  let dir: string | undefined;
  afterEach(() => {
    vi.useRealTimers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("sees the kubelet's read of config.json at the next check, while the agent's own reads leave the access time alone", async () => {
    dir = mkdtempSync(join(tmpdir(), 'nrc-effective-'));
    mkdirSync(join(dir, 'var/lib/kubelet'), { recursive: true });
    const file = join(dir, 'var/lib/kubelet/config.json');
    writeFileSync(file, '{"auths":{}}');
    // As after an atomic write: access time = modification time, both in the past.
    const written = new Date(Date.now() - 10_000);
    utimesSync(file, written, written);
    const host = new HostFs(dir);
    const changes: EffectiveState[] = [];
    const obs = new EffectiveObserver({ host, mode: 'config-json', pollMs: 20, onChange: (e) => changes.push(e) });
    const report = { at: written, hash: 'h', registries: 1, changes: [{ path: '/var/lib/kubelet/config.json', change: 'update', added: [], updated: [], removed: [] }], bytesWritten: 1, errors: [], hostOk: true, expiries: new Map(), targets: { kubeletConfig: '/var/lib/kubelet/config.json', kubeletFallbacks: [], dockerConfig: undefined, containerdHostsDir: undefined, certsDirs: [] } } satisfies ApplyReport;
    expect(obs.applied(report).state).toBe('pending');
    // The agent reads the file (as a pass or the drift check does): the access time does not move.
    expect(host.readText('/var/lib/kubelet/config.json')).toBe('{"auths":{}}');
    expect(host.atimeTrusted).toBe(true);
    expect(statSync(file).atimeMs).toBe(written.getTime());
    await new Promise((r) => setTimeout(r, 100));
    expect(changes).toEqual([]);
    // Another process reads it, as the kubelet does (os.ReadFile): relatime moves atime past mtime.
    closeSync(openSync(file, 'r'));
    readFileSync(file);
    const read = statSync(file).atimeMs;
    // Some filesystems are mounted noatime: there the rule falls back to the lifetime (shown above).
    if (read === written.getTime()) return;
    await vi.waitFor(() => expect(changes.at(-1)).toMatchObject({ state: 'effective', how: 'kubelet-read' }), { timeout: 2000 });
    obs.stop();
  });
});

describe('EffectiveObserver: when it looks while pending (issue 23: an idle agent wakes rarely)', () => {
  let dir: string | undefined;
  afterEach(() => {
    vi.useRealTimers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // config.json written at T, the observer told 1.5 s later (so its looks and the deadline are not
  // on one grid); the clock (Date and timers) is fake, the file and its times real.
  const START = T + 1500;
  function setup() {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: START });
    dir = mkdtempSync(join(tmpdir(), 'nrc-effective-poll-'));
    mkdirSync(join(dir, 'var/lib/kubelet'), { recursive: true });
    const file = join(dir, 'var/lib/kubelet/config.json');
    writeFileSync(file, '{"auths":{}}');
    utimesSync(file, new Date(T), new Date(T));
    const host = new HostFs(dir);
    const looks = vi.spyOn(host, 'times');
    const changes: { at: number; state: EffectiveState }[] = [];
    const obs = new EffectiveObserver({ host, mode: 'config-json', onChange: (e) => changes.push({ at: Date.now(), state: e }) });
    const report = { at: new Date(T), hash: 'h', registries: 1, changes: [{ path: '/var/lib/kubelet/config.json', change: 'update', added: [], updated: [], removed: [] }], bytesWritten: 1, errors: [], hostOk: true, expiries: new Map(), targets: { kubeletConfig: '/var/lib/kubelet/config.json', kubeletFallbacks: [], dockerConfig: undefined, containerdHostsDir: undefined, certsDirs: [] } } satisfies ApplyReport;
    expect(obs.applied(report).state).toBe('pending');
    // The kubelet reads the file now (its access time moves past the modification time).
    const kubeletReads = () => utimesSync(file, new Date(Date.now()), new Date(T));
    return { obs, looks, changes, kubeletReads };
  }

  it('a read in the first 30 s is reported within 5 s', () => {
    const { obs, changes, kubeletReads } = setup();
    // Just after a look: the worst case, seen at the next one.
    vi.advanceTimersByTime(10_001);
    kubeletReads();
    vi.advanceTimersByTime(4_998);
    expect(changes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(changes).toEqual([{ at: START + 15_000, state: expect.objectContaining({ state: 'effective', how: 'kubelet-read', at: new Date(START + 10_001) }) }]);
    obs.stop();
  });

  it('a read later is reported within 20 s, and then nothing is looked at any more', () => {
    const { obs, looks, changes, kubeletReads } = setup();
    vi.advanceTimersByTime(120_000);
    kubeletReads();
    vi.advanceTimersByTime(20_000);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.state).toMatchObject({ state: 'effective', how: 'kubelet-read', at: new Date(START + 120_000) });
    expect(changes[0]!.at - (START + 120_000)).toBeLessThanOrEqual(20_000);
    const n = looks.mock.calls.length;
    vi.advanceTimersByTime(10 * 60_000);
    expect(looks.mock.calls.length).toBe(n);
    obs.stop();
  });

  it('never read: effective exactly at the 5-minute deadline, after about 20 looks in all, not 60', () => {
    const { obs, looks, changes } = setup();
    vi.advanceTimersByTime(T + KUBELET_CONFIG_CACHE_MS - START - 1);
    expect(changes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(changes).toEqual([{ at: T + KUBELET_CONFIG_CACHE_MS, state: expect.objectContaining({ state: 'effective', how: 'cache-lifetime' }) }]);
    // 6 in the first 30 s at 5 s, 14 in the rest at 20 s, the deadline: 21 (+ the pass's own).
    expect(looks.mock.calls.length).toBeLessThanOrEqual(22);
    vi.advanceTimersByTime(10 * 60_000);
    expect(looks.mock.calls.length).toBeLessThanOrEqual(22);
    obs.stop();
  });
});

describe('status and /metrics: effective per node', () => {
  it("an EFFECTIVE column: effective since, pending until (the kubelet's cache), not written; and a count of nodes where it is effective", async () => {
    const { assessFleet, formatFleet } = await import('../../src/commands/status.ts');
    const { ANNOTATION_AT, ANNOTATION_EFFECTIVE, ANNOTATION_HASH } = await import('../../src/report/node-annotations.ts');
    const now = new Date(T + 60_000);
    const at = { [ANNOTATION_HASH]: 'sha256:a', [ANNOTATION_AT]: new Date(T).toISOString() };
    const fleet = assessFleet(
      [
        { name: 'read', annotations: { ...at, [ANNOTATION_EFFECTIVE]: `effective ${new Date(T + 2000).toISOString()} config.json+hosts.toml kubelet-read` } },
        { name: 'waiting', annotations: { ...at, [ANNOTATION_EFFECTIVE]: `pending ${new Date(T + KUBELET_CONFIG_CACHE_MS).toISOString()} config.json cache-lifetime` } },
        { name: 'plugin', annotations: { ...at, [ANNOTATION_EFFECTIVE]: `effective ${new Date(T).toISOString()} provider at-write` } },
        { name: 'old', annotations: at },
      ],
      now,
      { behindAfterMs: 600_000, expiryWarningMs: 3_600_000 },
    );
    expect(fleet.nodes.find((n) => n.name === 'waiting')?.effective).toEqual({ state: 'pending', at: new Date(T + KUBELET_CONFIG_CACHE_MS).toISOString(), via: ['config.json'], how: 'cache-lifetime' });
    const text = formatFleet(fleet, now);
    expect(text).toMatch(/^ +NODE +STATE +HASH +APPLIED +EFFECTIVE /);
    expect(text).toContain('yes, 58s ago (config.json+hosts.toml, kubelet read it)');
    expect(text).toContain('pending, by 4m from now (config.json cache)');
    expect(text).toContain('yes, 1m ago (provider)');
    expect(text).toContain('effective on 2 of 3 reporting node(s)');
  });

  it('nrc_configuration_effective and its timestamp', async () => {
    const { createAgentMetrics, createMetricsRegistry, recordEffective } = await import('../../src/report/metrics.ts');
    const m = createAgentMetrics(createMetricsRegistry({ processMetrics: false }));
    recordEffective(m, { state: 'pending', at: new Date(T + KUBELET_CONFIG_CACHE_MS), via: ['config.json'] });
    let text = await m.registry.metrics();
    expect(text).toContain('nrc_configuration_effective{via="config.json"} 0');
    expect(text).toContain(`nrc_configuration_effective_timestamp_seconds ${(T + KUBELET_CONFIG_CACHE_MS) / 1000}`);
    recordEffective(m, { state: 'effective', at: new Date(T), via: ['config.json'] });
    text = await m.registry.metrics();
    expect(text).toContain('nrc_configuration_effective{via="config.json"} 1');
  });
});
