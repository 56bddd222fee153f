// Issue 5, part 1+2: a node (real containerd, CRI PullImage with no credentials in the request)
// pulls a private image from a TLS + htpasswd registry on a custom port only while the agent has
// put the Secret's credential on the host; rotation and removal follow; cleanup restores the host.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { cli, dockerConfigJson, registryConfigToml } from '../support/e2e-agent.ts';
import { startContainerd, type Containerd } from '../support/e2e-containerd.ts';
import { note, step } from '../support/e2e-exec.ts';
import { diffSnapshots, filesContaining, makeHostRoot, secretForms, snapshot, type Entry } from '../support/e2e-hostroot.ts';
import { makeOciImage } from '../support/e2e-oci.ts';
import { makePki, type Pki } from '../support/e2e-pki.ts';
import { pushImage, startRegistry, type Registry } from '../support/e2e-registry.ts';

const skipReason = inject('e2eSkipReason');
const USER = 'e2e-puller';
// A colon inside the password is legal in docker auth (split at the first colon).
const OLD_PASSWORD = 'old:Pa55-word';
const NEW_PASSWORD = 'new:Pa55-word-rotated';

describe.skipIf(skipReason !== '')('a node pulls a private image through the agent (containerd CRI)', () => {
  let work: string;
  let hostRoot: string;
  let pki: Pki;
  let registry: Registry;
  let containerd: Containerd;
  let image: string;
  let secretFile: string;
  let registryConfigFile: string;
  let before: Record<string, Entry>;

  const apply = async (): Promise<void> => {
    const r = await cli(['apply', '--host-root', hostRoot, '--dockerconfig', secretFile, '--registry-config', registryConfigFile]);
    expect(r.code, `apply failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
  };
  const pullThenForget = async (): Promise<{ ok: boolean; detail: string }> => {
    const r = await containerd.pull(image);
    note(`CRI PullImage ${image} (no credentials in the request) → ${r.ok ? `OK ${r.detail}` : `FAILED: ${r.detail}`}`);
    if (r.ok) await containerd.remove(image); // the next step must go to the registry again
    return r;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nrc-e2e-node-'));
    hostRoot = join(work, 'host');
    pki = await makePki(work);
    registry = await startRegistry(join(work, 'registry'), pki, { [USER]: OLD_PASSWORD, pusher: 'push-only' });
    image = `${registry.host}/private/hello:v1`;
    const oci = await makeOciImage(join(work, 'oci'), 'v1', 'hello from a private registry\n');
    await pushImage(registry, `oci:${oci.dir}:v1`, image, 'pusher', 'push-only');
    await makeHostRoot(hostRoot);
    before = await snapshot(hostRoot);
    // Simulated node: containerd reads <hostRoot>/etc/containerd/certs.d, which the host root's
    // own config.toml names /etc/containerd/certs.d (the path the agent resolves under --host-root).
    containerd = await startContainerd(join(work, 'containerd'), join(hostRoot, 'etc', 'containerd', 'certs.d'));
    secretFile = join(work, 'dockerconfig.json');
    registryConfigFile = join(work, 'registries.toml');
    await writeFile(registryConfigFile, registryConfigToml({ [registry.host]: { caFile: pki.caCertPath, authHeader: true } }));
    step(`registry https://${registry.host} (private CA, htpasswd), image ${image}; containerd socket ${containerd.socket}`);
  });

  afterAll(async () => {
    await containerd?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('before the agent: the pull fails', async () => {
    step('BEFORE: no agent has run on this node');
    const r = await pullThenForget();
    expect(r.ok).toBe(false);
  });

  test('after apply with the Secret and the registry config (CA + auth header): the pull succeeds', async () => {
    step('AFTER: apply with the Secret (user + password) and the registry config (CA file, auth_header = true)');
    await writeFile(secretFile, dockerConfigJson({ [registry.host]: { username: USER, password: OLD_PASSWORD } }));
    await apply();
    const hostsToml = await readFile(join(hostRoot, 'etc/containerd/certs.d', registry.host, 'hosts.toml'), 'utf8');
    expect(hostsToml).toMatch(/ca\s*=\s*"ca\.crt"/); // relative: valid wherever the host root is mounted
    const kubelet = JSON.parse(await readFile(join(hostRoot, 'var/lib/kubelet/config.json'), 'utf8')) as { auths: Record<string, unknown> };
    expect(Object.keys(kubelet.auths).sort()).toEqual([registry.host, 'foreign.example.com'].sort());
    const r = await pullThenForget();
    expect(r.ok, r.detail).toBe(true);
  });

  test('password rotated in the registry and the Secret: the pull succeeds with the new one, the old one is on no host file', async () => {
    step('ROTATE: the registry now only accepts the new password');
    await registry.setUsers({ [USER]: NEW_PASSWORD, pusher: 'push-only' });
    const stale = await pullThenForget();
    expect(stale.ok, 'the old credential must stop working at the registry').toBe(false);
    step('ROTATE: the Secret gets the new password; apply');
    await writeFile(secretFile, dockerConfigJson({ [registry.host]: { username: USER, password: NEW_PASSWORD } }));
    await apply();
    const r = await pullThenForget();
    expect(r.ok, r.detail).toBe(true);
    const leftovers = await filesContaining(hostRoot, secretForms(USER, OLD_PASSWORD));
    note(`host files still holding the old password or its base64 auth: ${leftovers.length === 0 ? 'none' : leftovers.join(', ')}`);
    expect(leftovers).toEqual([]);
  });

  test('registry removed from the Secret: the pull fails again', async () => {
    step('REMOVE: the Secret no longer names the registry; apply');
    await writeFile(secretFile, dockerConfigJson({ 'other.example.com': { username: 'x', password: 'unrelated' } }));
    await apply();
    expect(await filesContaining(hostRoot, secretForms(USER, NEW_PASSWORD))).toEqual([]);
    const r = await pullThenForget();
    expect(r.ok).toBe(false);
  });

  test('cleanup leaves the host root byte-for-byte as before the first apply, foreign files included', async () => {
    step('CLEANUP: agent cleanup');
    const r = await cli(['cleanup', '--host-root', hostRoot]);
    expect(r.code, `cleanup failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    const after = await snapshot(hostRoot);
    const diffs = diffSnapshots(before, after);
    note(`differences from the pre-agent host root: ${diffs.length === 0 ? 'none' : diffs.join('; ')}`);
    expect(diffs).toEqual([]);
    expect(after).toEqual(before);
  });
});
