// Churn: thousands of Secret updates (the mounted file rewritten) in a burst are coalesced into
// a few applies; the host ends exactly at the last input; the agent counts and reports its writes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostFs } from '../../src/host/host-fs.ts';
import { Reconciler } from '../../src/reconcile/reconciler.ts';
import { DEFAULT_TARGET_OPTIONS } from '../../src/runtime/targets.ts';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { FileSource } from '../../src/sources/file-source.ts';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';
import { captureLogger, dockerConfigJson, expectNoSecrets, FOREIGN_AUTHS, makeSampleHost, registryToml, tryReadJson, waitFor, type SampleHost, type TestCredential } from '../support/reliability-host.ts';

const UPDATES = 3000;
const REG = 'churn.example.com:5000';

function credsAt(i: number): TestCredential[] {
  // The registry set changes too, so every target sees adds and removes.
  const extra = i % 3 === 0 ? [] : [{ key: `extra-${i % 7}.example.com`, username: 'x', password: `churn-extra-${i}-Wq` }];
  return [{ key: REG, username: 'churner', password: `churn-pw-${i}-Ty8u` }, ...extra];
}

describe('churn: a burst of Secret updates', () => {
  let host: SampleHost;
  let reconciler: Reconciler | undefined;
  beforeEach(() => {
    host = makeSampleHost();
  });
  afterEach(async () => {
    await reconciler?.stop();
    host.remove();
  });

  it(`coalesces ${UPDATES} updates into few writes and ends exactly at the last input`, async () => {
    const file = path.join(host.inputs, 'config.json');
    fs.writeFileSync(file, dockerConfigJson(credsAt(0)));
    const { logger, lines } = captureLogger();
    reconciler = new Reconciler({
      host: new HostFs(host.root),
      sources: [new FileSource(file)],
      hostOptions: parseRegistryConfig(registryToml([REG])).hosts,
      targetOptions: DEFAULT_TARGET_OPTIONS,
      logger,
      resyncMs: 3_600_000,
    });
    await reconciler.start();
    const kubelet = host.real('/var/lib/kubelet/config.json');
    const has = (i: number): boolean => JSON.stringify(tryReadJson(kubelet)).includes(encodeAuth('churner', `churn-pw-${i}-Ty8u`));
    await waitFor(() => has(0), 'first apply');
    const writesBefore = reconciler.writes;
    const appliesBefore = reconciler.applies;

    // The burst: each update replaces the file as the kubelet does for a mounted Secret.
    for (let i = 1; i <= UPDATES; i++) {
      fs.writeFileSync(`${file}.tmp`, dockerConfigJson(credsAt(i)));
      fs.renameSync(`${file}.tmp`, file);
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => has(UPDATES), 'the last input is applied', 30_000);
    await waitFor(() => !reconciler!['running'] && reconciler!.lastReport !== undefined, 'the pass is done');

    // Exactly the last input: its entries, the foreign one, nothing left of earlier inputs.
    const expected: Record<string, unknown> = { ...FOREIGN_AUTHS };
    for (const c of credsAt(UPDATES)) expected[c.key] = { auth: encodeAuth(c.username, c.password) };
    expect((tryReadJson(kubelet) as { auths: unknown }).auths).toEqual(expected);
    expect(fs.readFileSync(host.real(`/etc/containerd/certs.d/${REG}/hosts.toml`), 'utf8')).toContain(encodeAuth('churner', `churn-pw-${UPDATES}-Ty8u`));

    const applies = reconciler.applies - appliesBefore;
    const writes = reconciler.writes - writesBefore;
    console.log(`churn: ${UPDATES} updates -> ${applies} applies, ${writes} file writes, ${reconciler.bytesWritten} bytes written in total`);
    // Coalesced: far fewer applies than updates (each apply writes at most 3 files here).
    expect(applies).toBeGreaterThanOrEqual(1);
    expect(applies).toBeLessThan(UPDATES / 10);
    expect(writes).toBeLessThanOrEqual(applies * 3);
    // The count is reported in the logs too.
    expect(lines.some((l) => /"writesTotal":\d+/.test(l))).toBe(true);
    expectNoSecrets(lines.join('\n'), Array.from({ length: UPDATES + 1 }, (_, i) => `churn-pw-${i}-Ty8u`).slice(-50), 'the logs');
  });

  it('a steady stream of updates that never pauses still reaches the node', async () => {
    const file = path.join(host.inputs, 'config.json');
    fs.writeFileSync(file, dockerConfigJson(credsAt(0)));
    const { logger } = captureLogger();
    reconciler = new Reconciler({
      host: new HostFs(host.root),
      sources: [new FileSource(file)],
      hostOptions: new Map(),
      targetOptions: DEFAULT_TARGET_OPTIONS,
      logger,
      debounceMs: 200,
      resyncMs: 3_600_000,
    });
    await reconciler.start();
    const kubelet = host.real('/var/lib/kubelet/config.json');
    const applied = (): number | undefined => {
      const m = /churn-pw-(\d+)-Ty8u/.exec(Buffer.from(String((tryReadJson(kubelet) as { auths?: Record<string, { auth: string }> } | undefined)?.auths?.[REG]?.auth ?? ''), 'base64').toString());
      return m ? Number(m[1]) : undefined;
    };
    await waitFor(() => applied() === 0, 'first apply');
    // Updates every 20 ms, each well inside the 200 ms debounce window, until one of them is on
    // the node (or 20 s pass, which means the debounce starved the node).
    const end = Date.now() + 20_000;
    let i = 0;
    while ((applied() ?? 0) === 0 && Date.now() < end) {
      i++;
      fs.writeFileSync(`${file}.tmp`, dockerConfigJson(credsAt(i)));
      fs.renameSync(`${file}.tmp`, file);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(applied(), `no update of a steady stream reached the node after ${i} updates`).toBeGreaterThan(0);
  });
});
