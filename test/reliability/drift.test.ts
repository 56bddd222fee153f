// Drift: another process rewrites or deletes a managed file, or adds its own entries to the
// kubelet's config.json. The running agent (the Reconciler `run` uses, with its drift watch)
// notices within seconds and restores its entries while keeping the other writer's.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostFs } from '../../src/host/host-fs.ts';
import { Reconciler } from '../../src/reconcile/reconciler.ts';
import { DEFAULT_TARGET_OPTIONS } from '../../src/runtime/targets.ts';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { FileSource } from '../../src/sources/file-source.ts';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';
import {
  captureLogger,
  dockerConfigJson,
  expectNoSecrets,
  FOREIGN_AUTHS,
  makeSampleHost,
  registryToml,
  secretForms,
  tryReadJson,
  waitFor,
  type SampleHost,
  type TestCredential,
} from '../support/reliability-host.ts';

const REG = 'reg.example.com:5000';
const CREDS: TestCredential[] = [
  { key: REG, username: 'drift-user', password: 'drift-pw-9Qe2Lx' },
  { key: 'https://index.docker.io/v1/', username: 'hub', password: 'drift-hub-tok-W7cV' },
];
const KUBELET = '/var/lib/kubelet/config.json';
const HOSTS_TOML = `/etc/containerd/certs.d/${REG}/hosts.toml`;
const OURS = { [REG]: { auth: encodeAuth('drift-user', 'drift-pw-9Qe2Lx') }, 'https://index.docker.io/v1/': { auth: encodeAuth('hub', 'drift-hub-tok-W7cV') } };

type Auths = Record<string, unknown>;
const authsOf = (host: SampleHost, p: string): Auths | undefined => (tryReadJson(host.real(p)) as { auths?: Auths } | undefined)?.auths;

/** Writes like other tools do: a temp file renamed over the target. */
function writeLikeAnotherTool(file: string, text: string): void {
  fs.writeFileSync(`${file}.other-tmp`, text);
  fs.renameSync(`${file}.other-tmp`, file);
}

describe('drift: the running agent repairs what others change', () => {
  let host: SampleHost;
  let reconciler: Reconciler;
  let lines: string[];

  async function start(opts: { watchDrift?: boolean; resyncMs?: number } = {}): Promise<void> {
    const file = path.join(host.inputs, 'config.json');
    fs.writeFileSync(file, dockerConfigJson(CREDS));
    const cap = captureLogger();
    lines = cap.lines;
    reconciler = new Reconciler({
      host: new HostFs(host.root),
      sources: [new FileSource(file, 10)],
      hostOptions: parseRegistryConfig(registryToml([REG])).hosts,
      targetOptions: DEFAULT_TARGET_OPTIONS,
      logger: cap.logger,
      debounceMs: 20,
      resyncMs: opts.resyncMs ?? 3_600_000,
      driftDebounceMs: 50,
      ...(opts.watchDrift !== undefined ? { watchDrift: opts.watchDrift } : {}),
    });
    await reconciler.start();
    await waitFor(() => authsOf(host, KUBELET)?.[REG] !== undefined && fs.existsSync(host.real(HOSTS_TOML)), 'first apply');
  }

  beforeEach(() => {
    host = makeSampleHost();
  });
  afterEach(async () => {
    await reconciler?.stop();
    expectNoSecrets(lines.join('\n'), secretForms(CREDS), 'the logs');
    host.remove();
  });

  it('keeps entries another writer adds to the kubelet config.json, and its own', async () => {
    await start();
    const doc = tryReadJson(host.real(KUBELET)) as { auths: Auths };
    doc.auths['other-tool.example.com'] = { auth: encodeAuth('other', 'tool') };
    const applies = reconciler.applies;
    writeLikeAnotherTool(host.real(KUBELET), JSON.stringify(doc));
    await waitFor(() => reconciler.driftRepairs >= 1 && reconciler.applies > applies, 'the drift is noticed and a pass has run');
    expect(authsOf(host, KUBELET)).toEqual({ ...FOREIGN_AUTHS, ...OURS, 'other-tool.example.com': { auth: encodeAuth('other', 'tool') } });
  });

  it('restores its entries when another writer rewrites config.json without them, keeping the writer\'s entries', async () => {
    await start();
    const before = reconciler.writes;
    writeLikeAnotherTool(host.real(KUBELET), JSON.stringify({ auths: { 'other-tool.example.com': { auth: encodeAuth('o', 't') } }, HttpHeaders: { 'User-Agent': 'x' } }));
    await waitFor(() => authsOf(host, KUBELET)?.[REG] !== undefined, 'our entries are back');
    const doc = tryReadJson(host.real(KUBELET)) as Record<string, unknown>;
    expect(doc['auths']).toEqual({ ...OURS, 'other-tool.example.com': { auth: encodeAuth('o', 't') } });
    expect(doc['HttpHeaders']).toEqual({ 'User-Agent': 'x' });
    expect(reconciler.writes).toBeGreaterThan(before);
    expect(reconciler.driftRepairs).toBeGreaterThanOrEqual(1);
  });

  it('rewrites the kubelet config.json when another process deletes it', async () => {
    await start();
    fs.unlinkSync(host.real(KUBELET));
    await waitFor(() => fs.existsSync(host.real(KUBELET)), 'config.json is back');
    await waitFor(() => authsOf(host, KUBELET)?.[REG] !== undefined, 'with our entries');
    expect(authsOf(host, KUBELET)).toMatchObject(OURS);
  });

  it('restores a hosts.toml that is deleted, overwritten with garbage, or whose directory is removed', async () => {
    await start();
    const file = host.real(HOSTS_TOML);
    const good = fs.readFileSync(file, 'utf8');
    fs.unlinkSync(file);
    await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8') === good, 'hosts.toml recreated');
    fs.writeFileSync(file, 'server = "https://evil.example.com"\n[[[broken');
    await waitFor(() => fs.readFileSync(file, 'utf8') === good, 'hosts.toml repaired');
    fs.rmSync(path.dirname(file), { recursive: true });
    await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8') === good, 'directory and hosts.toml recreated');
    expect(parseToml(fs.readFileSync(file, 'utf8'))).toMatchObject({ server: `https://${REG}` });
    expect(fs.readFileSync(path.join(path.dirname(file), 'ca.crt'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it('does not take its own writes for drift: input changes cause no repair passes', async () => {
    await start();
    const file = path.join(host.inputs, 'config.json');
    for (let i = 0; i < 5; i++) {
      const creds = [{ ...CREDS[0]!, password: `drift-pw-9Qe2Lx-${i}` }, CREDS[1]!];
      fs.writeFileSync(file, dockerConfigJson(creds));
      await waitFor(() => JSON.stringify(authsOf(host, KUBELET)?.[REG]).includes(encodeAuth('drift-user', `drift-pw-9Qe2Lx-${i}`)), `input ${i} applied`);
    }
    // Give a (wrong) drift check every chance to fire: several of its debounce windows.
    await new Promise((r) => setTimeout(r, 500));
    expect(reconciler.driftRepairs).toBe(0);
    expect(reconciler.writes).toBeGreaterThanOrEqual(5);
  });

  it('still repairs drift by its periodic resync when the watch is off', async () => {
    await start({ watchDrift: false, resyncMs: 300 });
    fs.unlinkSync(host.real(HOSTS_TOML));
    await waitFor(() => fs.existsSync(host.real(HOSTS_TOML)), 'hosts.toml recreated by the resync');
    expect(reconciler.driftRepairs).toBe(0);
  });
});
