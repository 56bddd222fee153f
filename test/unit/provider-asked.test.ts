// Provider mode: whether the kubelet really asks the credential provider plugin, observed on the
// node. The shipped plugin touches the file of NRC_PROVIDER_ASKED at each valid request; the agent
// reads its mtime through the host (HostFs.modifiedAt) and turns it into a metric, a Node
// annotation that changes rarely (ProviderAskedTracker) and a column of `status`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { agentConfig } from '../../src/commands/config.ts';
import { providerAskedObserver } from '../../src/commands/run.ts';
import { assessFleet, formatFleet } from '../../src/commands/status.ts';
import { HostFs } from '../../src/host/host-fs.ts';
import { Registry } from '../../src/metrics.ts';
import { PROVIDER_ASKED_PATH, STATE_DIR } from '../../src/model/state-paths.ts';
import { ANNOTATION_AT, ANNOTATION_HASH, ANNOTATION_PREFIX, ANNOTATION_PROVIDER_ASKED, formatProviderAsked, parseProviderAsked } from '../../src/report/node-annotations.ts';
import { createProviderMetrics, recordProviderAsked } from '../../src/report/metrics.ts';
import { ProviderAskedTracker } from '../../src/report/provider-asked.ts';
import { EXAMPLE_CONFIG, InstalledPlugin, kubeletRequest, runShim, SHIM } from '../support/provider-plugin.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'nrc-asked-'));
  dirs.push(d);
  return d;
};

const T0 = Date.parse('2026-01-02T10:00:00Z');
const at = (s: number): Date => new Date(T0 + s * 1000);

describe('ProviderAskedTracker: the rule of the annotation', () => {
  it('no request on record: not-asked-yet; a request after the first observation: asking since that request, unchanged by later ones', () => {
    const t = new ProviderAskedTracker(48_000);
    let mtime: Date | undefined;
    expect(t.observe(T0, () => mtime)).toEqual({ state: 'not-asked-yet', lastRequestAt: undefined });
    mtime = at(30);
    expect(t.observe(T0 + 60_000, () => mtime)).toEqual({ state: 'asking', at: at(30), lastRequestAt: at(30) });
    mtime = at(100);
    const later = t.observe(T0 + 120_000, () => mtime);
    expect(later).toEqual({ state: 'asking', at: at(30), lastRequestAt: at(100) });
    expect(formatProviderAsked(later)).toBe(`asking ${at(30).toISOString()}`);
  });

  it('a request only from before the agent began serving is stale, until the next one', () => {
    const t = new ProviderAskedTracker(48_000);
    let mtime: Date | undefined = at(-3600);
    expect(t.observe(T0, () => mtime)).toEqual({ state: 'stale', at: at(-3600), lastRequestAt: at(-3600) });
    expect(t.observe(T0 + 60_000, () => mtime).state).toBe('stale');
    mtime = at(90);
    expect(t.observe(T0 + 120_000, () => mtime)).toEqual({ state: 'asking', at: at(90), lastRequestAt: at(90) });
  });

  it('the file removed: back to not-asked-yet, and a new since on the next request', () => {
    const t = new ProviderAskedTracker(0);
    let mtime: Date | undefined = at(10);
    t.observe(T0, () => mtime);
    t.observe(T0 + 20_000, () => mtime);
    mtime = undefined;
    expect(t.observe(T0 + 40_000, () => mtime).state).toBe('not-asked-yet');
    mtime = at(50);
    expect(t.observe(T0 + 60_000, () => mtime)).toMatchObject({ state: 'asking', at: at(50) });
  });

  it('reads the file at most once per interval (the passes carry it, never more often than the resync)', () => {
    const t = new ProviderAskedTracker(48_000);
    let reads = 0;
    const read = (): Date => (reads++, at(1));
    t.observe(T0, read);
    for (let s = 1; s < 48; s++) t.observe(T0 + s * 1000, read);
    expect(reads).toBe(1);
    t.observe(T0 + 48_000, read);
    expect(reads).toBe(2);
  });

  it('the annotation value round-trips, and junk is ignored', () => {
    for (const p of [{ state: 'not-asked-yet' as const }, { state: 'asking' as const, at: at(5) }, { state: 'stale' as const, at: at(-5) }]) {
      expect(parseProviderAsked(formatProviderAsked(p))).toEqual(p);
    }
    expect(ANNOTATION_PROVIDER_ASKED.startsWith(ANNOTATION_PREFIX)).toBe(true);
    for (const junk of ['', 'yes', 'asking', 'asking never', 'stale x']) expect(parseProviderAsked(junk)).toBeUndefined();
    expect(parseProviderAsked(undefined)).toBeUndefined();
  });
});

describe('the metric', () => {
  it('nrc_provider_last_request_timestamp_seconds: the last request in Unix seconds, 0 when none', async () => {
    const registry = new Registry();
    const gauge = createProviderMetrics(registry);
    recordProviderAsked(gauge, undefined);
    expect(await registry.metrics()).toMatch(/^nrc_provider_last_request_timestamp_seconds 0$/m);
    recordProviderAsked(gauge, at(0));
    expect(await registry.metrics()).toMatch(new RegExp(`^nrc_provider_last_request_timestamp_seconds ${T0 / 1000}$`, 'm'));
  });
});

describe('status: per node, whether the kubelet asks the provider', () => {
  const NOW = new Date(T0 + 3 * 3600_000);
  const opts = { behindAfterMs: 600_000, expiryWarningMs: 3600_000 };
  const base = { [ANNOTATION_HASH]: 'h1', [ANNOTATION_AT]: at(0).toISOString() };

  it('reads the annotation into the node status and a PROVIDER column, without making a node need attention', () => {
    const fleet = assessFleet(
      [
        { name: 'a', annotations: { ...base, [ANNOTATION_PROVIDER_ASKED]: `asking ${at(60).toISOString()}` } },
        { name: 'b', annotations: { ...base, [ANNOTATION_PROVIDER_ASKED]: 'not-asked-yet' } },
        { name: 'c', annotations: { ...base, [ANNOTATION_PROVIDER_ASKED]: `stale ${at(-86_400).toISOString()}` } },
        { name: 'd', annotations: base },
      ],
      NOW,
      opts,
    );
    expect(fleet.nodes.map((n) => [n.name, n.state, n.attention, n.providerAsked])).toEqual([
      ['a', 'ok', false, { state: 'asking', since: at(60).toISOString() }],
      ['b', 'ok', false, { state: 'not-asked-yet' }],
      ['c', 'ok', false, { state: 'stale', since: at(-86_400).toISOString() }],
      ['d', 'ok', false, undefined],
    ]);
    const text = formatFleet(fleet, NOW);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/TOKENS\s+PROVIDER$/);
    expect(lines[1]).toMatch(/ a .*asking \(since 3h ago\)$/);
    expect(lines[2]).toMatch(/ b .*not asked yet$/);
    expect(lines[3]).toMatch(/ c .*stale \(last 27h ago\)$/);
    expect(lines[4]).toMatch(/ d .* -$/);
    expect(text).toContain('provider mode on 3 node(s): the kubelet asks the plugin on 1; not (yet) on b, c:');
  });

  it('a fleet in config-json mode looks as before: no PROVIDER column, no provider line', () => {
    const text = formatFleet(assessFleet([{ name: 'a', annotations: base }], NOW, opts), NOW);
    expect(text).not.toContain('PROVIDER');
    expect(text).not.toContain('provider mode');
  });
});

describe('reading the last request through the host', () => {
  it('is the mtime of a regular file; nothing for a missing file, a symlink or a directory', () => {
    const root = tmp();
    const host = new HostFs(root);
    expect(host.modifiedAt(PROVIDER_ASKED_PATH)).toBeUndefined();
    mkdirSync(join(root, STATE_DIR), { recursive: true });
    writeFileSync(join(root, PROVIDER_ASKED_PATH), '');
    utimesSync(join(root, PROVIDER_ASKED_PATH), at(7), at(7));
    expect(host.modifiedAt(PROVIDER_ASKED_PATH)).toEqual(at(7));
    rmSync(join(root, PROVIDER_ASKED_PATH));
    symlinkSync('/etc/hostname', join(root, PROVIDER_ASKED_PATH));
    expect(host.modifiedAt(PROVIDER_ASKED_PATH)).toBeUndefined();
    rmSync(join(root, PROVIDER_ASKED_PATH));
    mkdirSync(join(root, PROVIDER_ASKED_PATH));
    expect(host.modifiedAt(PROVIDER_ASKED_PATH)).toBeUndefined();
  });
});

describe('run: the observer after each pass', () => {
  it('exists in provider mode only, and reads the file under the host root at most once per 0.8x resync', () => {
    const root = tmp();
    const config = (mode: string) => {
      const c = agentConfig({ 'host-root': root, 'kubelet-credentials': mode, 'resync-seconds': '3600' });
      if (c instanceof Error) throw c;
      return c;
    };
    expect(providerAskedObserver(config('config-json'))).toBeUndefined();
    const observe = providerAskedObserver(config('provider'))!;
    expect(observe()).toEqual({ state: 'not-asked-yet', lastRequestAt: undefined });
    mkdirSync(join(root, STATE_DIR), { recursive: true });
    writeFileSync(join(root, PROVIDER_ASKED_PATH), '');
    expect(observe().state).toBe('not-asked-yet'); // the next read is due at the next resync, not at every pass
  });
});

describe('the shipped plugin touches the file the agent reads', () => {
  it('the example config names the agent\'s path, beside the agent\'s state but outside provider/, and the plugin documents it', () => {
    const config = load(readFileSync(EXAMPLE_CONFIG, 'utf8')) as { providers: { env: { name: string; value: string }[] }[] };
    expect(config.providers[0]!.env).toContainEqual({ name: 'NRC_PROVIDER_ASKED', value: PROVIDER_ASKED_PATH });
    expect(PROVIDER_ASKED_PATH.startsWith(`${STATE_DIR}/`)).toBe(true);
    expect(PROVIDER_ASKED_PATH.startsWith(`${STATE_DIR}/provider/`)).toBe(false);
    expect(readFileSync(SHIM, 'utf8')).toContain(PROVIDER_ASKED_PATH);
  });

  it('run directly with sh: each valid request touches the file (created, then its mtime moves); an invalid one does not; unset, nothing is written', () => {
    const dir = tmp();
    const asked = join(dir, 'provider-asked');
    const env = { NRC_PROVIDER_STATE: join(dir, 'missing.json'), NRC_PROVIDER_ASKED: asked };
    const sh = (request: string, e: Record<string, string> = env) => spawnSync('sh', [SHIM], { input: request, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...e } });
    expect(sh('{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","image":"x"}').status).toBe(0);
    expect(existsSync(asked)).toBe(false);
    const first = sh(kubeletRequest('reg.example.com/app'));
    expect(first.status).toBe(0);
    expect(first.stderr).toContain('NRC_E_PROVIDER_STATE_MISSING'); // touched even when the state is missing: the kubelet did ask
    expect(statSync(asked).isFile()).toBe(true);
    utimesSync(asked, at(0), at(0));
    sh(kubeletRequest('reg.example.com/app'));
    expect(statSync(asked).mtimeMs).toBeGreaterThan(T0);
    rmSync(asked);
    sh(kubeletRequest('reg.example.com/app'), { NRC_PROVIDER_STATE: env.NRC_PROVIDER_STATE });
    expect(existsSync(asked)).toBe(false);
  });

  it('installed from the example config (test/support/provider-plugin.ts): the config\'s env makes the plugin touch it', () => {
    const plugin = new InstalledPlugin();
    try {
      const config = JSON.parse(readFileSync(plugin.config, 'utf8')) as { providers: { env: { name: string; value: string }[] }[] };
      const env = Object.fromEntries(config.providers[0]!.env.map((e) => [e.name, e.value]));
      expect(env['NRC_PROVIDER_ASKED']).toBe(plugin.asked);
      expect(existsSync(plugin.asked)).toBe(false);
      expect(runShim(kubeletRequest('reg.example.com/app'), env).status).toBe(0);
      expect(statSync(plugin.asked).isFile()).toBe(true);
    } finally {
      plugin.cleanup();
    }
  });
});
