// `run --kubelet-credentials provider`, the real process: after its passes (the 1 s resync here) it
// reads the mtime of the file the shipped plugin touches at each request of the kubelet, and exports
// it as nrc_provider_last_request_timestamp_seconds and the Node annotation provider-asked, which
// changes with the state only (never at each pull: the Node is not patched again, and applied-at
// does not move when only the provider state changes).
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROVIDER_ASKED_PATH, PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { ANNOTATION_AT, ANNOTATION_HASH, ANNOTATION_PROVIDER_ASKED } from '../../src/report/node-annotations.ts';
import { freePort } from '../support/e2e-registry.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';
import { kubeletRequest, runShim } from '../support/provider-plugin.ts';
import { makeSampleHost, spawnCli, type SampleHost } from '../support/reliability-host.ts';

let api: FakeApiServer | undefined;
let child: ChildProcess | undefined;
let host: SampleHost | undefined;
let work: string | undefined;
afterEach(async () => {
  child?.kill('SIGTERM');
  await api?.stop();
  host?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function until<T>(get: () => Promise<T | undefined> | T | undefined, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('run in provider mode observes whether the kubelet asks the plugin', () => {
  it('metric and Node annotation: not-asked-yet, then asking since the first request, unchanged by later requests', async () => {
    api = new FakeApiServer();
    await api.start();
    api.putNode('node-1');
    work = mkdtempSync(join(tmpdir(), 'nrc-asked-run-'));
    const kubeconfig = join(work, 'kubeconfig');
    writeFileSync(kubeconfig, api.kubeconfigYaml());
    host = makeSampleHost({ base: work });
    const input = join(host.inputs, 'dockerconfig.json');
    writeFileSync(input, JSON.stringify({ auths: { 'reg.example.com': { auth: Buffer.from('u:p').toString('base64') } } }));
    const toml = join(host.inputs, 'registry.toml');
    writeFileSync(toml, '');
    const port = await freePort();
    child = spawnCli(
      ['run', '--host-root', host.root, '--dockerconfig', input, '--registry-config', toml, '--listen-address', `127.0.0.1:${port}`, '--resync-seconds', '1', '--debounce-ms', '0',
        '--kubelet-credentials', 'provider', '--kubeconfig', kubeconfig, '--node-name', 'node-1', '--secret-name', '', '--broker-secret-name', ''],
      { env: { NRC_LOG_LEVEL: 'warn' } },
    );
    child.stdout!.resume();
    child.stderr!.resume();
    const annotations = (): Record<string, string> => ((api!.get('nodes', undefined, 'node-1')!['metadata'] as { annotations?: Record<string, string> }).annotations ?? {});
    const metric = async (): Promise<number | undefined> => {
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const m = /^nrc_provider_last_request_timestamp_seconds (\S+)$/m.exec(text);
        return m ? Number(m[1]) : undefined;
      } catch {
        return undefined;
      }
    };

    // Before any request: 0, and not-asked-yet beside the applied hash.
    expect(await until(metric, 'the metric')).toBe(0);
    await until(() => (annotations()[ANNOTATION_PROVIDER_ASKED] === 'not-asked-yet' ? true : undefined), 'not-asked-yet');
    const appliedAt = annotations()[ANNOTATION_AT];
    expect(annotations()[ANNOTATION_HASH]).toBeTruthy();

    // The kubelet's request, as the shipped plugin with the example config's env handles it.
    const env = { NRC_PROVIDER_STATE: host.real(PROVIDER_RESPONSE_PATH), NRC_PROVIDER_ASKED: host.real(PROVIDER_ASKED_PATH) };
    const answer = runShim(kubeletRequest('reg.example.com/app'), env);
    expect(JSON.parse(answer.stdout).auth).toEqual({ 'reg.example.com': { username: 'u', password: 'p' } });
    const first = statSync(host.real(PROVIDER_ASKED_PATH)).mtime;
    const value = await until(() => (annotations()[ANNOTATION_PROVIDER_ASKED]?.startsWith('asking ') ? annotations()[ANNOTATION_PROVIDER_ASKED] : undefined), 'asking');
    expect(value).toBe(`asking ${first.toISOString()}`);
    expect(await metric()).toBe(first.getTime() / 1000);
    // Only the provider state changed: applied-at, which status uses to find the newest configuration, stays.
    expect(annotations()[ANNOTATION_AT]).toBe(appliedAt);

    // Later pulls move the metric, not the annotation: the Node is not patched again.
    const patches = api.count('patch', 'nodes');
    await new Promise((r) => setTimeout(r, 20));
    runShim(kubeletRequest('reg.example.com/app'), env);
    const second = statSync(host.real(PROVIDER_ASKED_PATH)).mtime;
    expect(second.getTime()).toBeGreaterThan(first.getTime());
    await until(async () => ((await metric()) === second.getTime() / 1000 ? true : undefined), 'the metric to move');
    await new Promise((r) => setTimeout(r, 2500));
    expect(annotations()[ANNOTATION_PROVIDER_ASKED]).toBe(value);
    expect(api.count('patch', 'nodes')).toBe(patches);
  }, 90_000);
});
