// Issue 5, part 4: the project's Dockerfile builds here without pulling (its base image is
// provided locally), and the agent runs FROM THAT IMAGE the way the DaemonSet runs it (uid 0,
// read-only root filesystem, all capabilities dropped but CHOWN, DAC_OVERRIDE and FOWNER), with
// the node's directories bind-mounted under /host as daemonset/ mounts them, in `run` mode on a
// kubelet-style mounted Secret volume (the mounted-secret variant).
// Editing the Secret makes the node's CRI pull start working, and removing the entry stops it.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GenericContainer, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { MountedSecret, dockerConfigJson, registryConfigToml } from '../support/e2e-agent.ts';
import { startContainerd, type Containerd } from '../support/e2e-containerd.ts';
import { note, run, step, tail } from '../support/e2e-exec.ts';
import { diffSnapshots, makeHostRoot, snapshot, type Entry } from '../support/e2e-hostroot.ts';
import { buildAgentImage } from '../support/e2e-images.ts';
import { makeOciImage } from '../support/e2e-oci.ts';
import { makePki } from '../support/e2e-pki.ts';
import { dockerBin } from '../support/e2e-prereqs.ts';
import { pushImage, startRegistry, type Registry } from '../support/e2e-registry.ts';

const skipReason = inject('e2eSkipReason');
const USER = 'e2e-daemonset';
const PASSWORD = 'daemonset-Pa55word';
const SECRET_MOUNT = '/etc/node-registry-credentials/secret';

/** GenericContainer plus the one DaemonSet setting testcontainers has no builder for. */
class AgentContainer extends GenericContainer {
  withReadOnlyRootFilesystem(): this {
    this.hostConfig.ReadonlyRootfs = true;
    return this;
  }
}

describe.skipIf(skipReason !== '')('the agent image, run as the DaemonSet runs it', () => {
  let work: string;
  let registry: Registry;
  let containerd: Containerd;
  let agent: StartedTestContainer | undefined;
  let agentImage: string;
  let secret: MountedSecret;
  let image: string;
  let hostRoot: string;
  let hostMounts: { source: string; target: string; mode: 'rw' }[];
  let before: Record<string, Entry>;

  beforeAll(async () => {
    agentImage = await buildAgentImage();
    work = await mkdtemp(join(tmpdir(), 'nrc-e2e-image-'));
    hostRoot = join(work, 'host');
    const pki = await makePki(work);
    registry = await startRegistry(join(work, 'registry'), pki, { [USER]: PASSWORD });
    image = `${registry.host}/private/daemonset:v1`;
    const oci = await makeOciImage(join(work, 'oci'), 'v1', 'pulled thanks to the agent container\n');
    await pushImage(registry, `oci:${oci.dir}:v1`, image, USER, PASSWORD);
    await makeHostRoot(hostRoot);
    containerd = await startContainerd(join(work, 'containerd'), join(hostRoot, 'etc', 'containerd', 'certs.d'));

    // The Secret starts without our registry (another entry only), as a kubelet secret volume.
    secret = new MountedSecret(join(work, 'secret'));
    await secret.write(dockerConfigJson({ 'other.example.com': { username: 'x', password: 'unrelated' } }));
    await writeFile(join(work, 'registries.toml'), registryConfigToml({ [registry.host]: { caPem: pki.caPem, authHeader: true } }));

    // The DaemonSet's volumes (daemonset/base + the mounted-secret variant): only these host
    // directories are mounted under /host, /tmp is a small tmpfs, the rest of / is read-only.
    await mkdir(join(hostRoot, 'var/lib/node-registry-credentials'), { recursive: true });
    before = await snapshot(hostRoot);
    hostMounts = ['var/lib/kubelet', 'var/lib/node-registry-credentials', 'etc', 'root'].map((d) => ({
      source: join(hostRoot, d),
      target: `/host/${d}`,
      mode: 'rw' as const,
    }));
    step(`starting ${agentImage} as the DaemonSet does: run, uid 0, read-only rootfs, caps CHOWN+DAC_OVERRIDE+FOWNER, host dirs under /host, Secret volume at ${SECRET_MOUNT}`);
    agent = await new AgentContainer(agentImage)
      .withUser('0')
      .withReadOnlyRootFilesystem()
      .withDroppedCapabilities('ALL')
      .withAddedCapabilities('CHOWN', 'DAC_OVERRIDE', 'FOWNER')
      .withNetworkMode('none') // a file source needs no network; the probes are checked from inside
      .withTmpFs({ '/tmp': 'rw,size=16m' })
      .withBindMounts([
        ...hostMounts,
        { source: join(work, 'secret'), target: SECRET_MOUNT, mode: 'ro' },
        { source: join(work, 'registries.toml'), target: '/etc/node-registry-credentials/registries.toml', mode: 'ro' },
      ])
      .withEnvironment({
        NRC_HOST_ROOT: '/host',
        NRC_SECRET_DIR: SECRET_MOUNT,
        NRC_LISTEN_ADDRESS: '0.0.0.0:8080',
        // Not in the DaemonSet: the registry's CA and the auth header option for this test registry.
        NRC_REGISTRY_CONFIG: '/etc/node-registry-credentials/registries.toml',
        NRC_DEBOUNCE_MS: '100',
      })
      .withCommand(['run'])
      .withStartupTimeout(60_000)
      .start();
  });

  /** Prints the agent container's last log lines, then stops it. */
  const stopAgent = async (): Promise<void> => {
    if (!agent) return;
    const logs = await run(await dockerBin(), ['logs', '--tail', '40', agent.getId()]);
    note(`agent container log (last lines):\n${tail(logs.stdout + logs.stderr, 40)}`);
    await agent.stop({ timeout: 10_000 });
    agent = undefined;
  };

  afterAll(async () => {
    await stopAgent();
    await containerd?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Pulls until the result matches `want` (bounded: 60 tries, 1 s apart). */
  const pullUntil = async (want: boolean): Promise<{ ok: boolean; detail: string; tries: number }> => {
    let last = { ok: !want, detail: '' };
    for (let tries = 1; tries <= 60; tries++) {
      last = await containerd.pull(image);
      if (last.ok) await containerd.remove(image);
      if (last.ok === want) return { ...last, tries };
      await new Promise((r) => setTimeout(r, 1_000));
    }
    return { ...last, tries: 60 };
  };

  test('the image holds the bundled agent only (no node_modules, no shell) and runs as uid 0', async () => {
    const docker = await dockerBin();
    const user = await run(docker, ['image', 'inspect', '-f', '{{.Config.User}}', agentImage]);
    expect(user.stdout.trim()).toMatch(/^0(:0)?$/);
    const size = Number((await run(docker, ['image', 'inspect', '-f', '{{.Size}}', agentImage])).stdout.trim());
    note(`image size ${(size / 2 ** 20).toFixed(1)} MiB`);
    expect(size).toBeLessThanOrEqual(160 * 2 ** 20);
    const probe = await run(docker, ['run', '--rm', '--network', 'none', '--entrypoint', 'node', agentImage, '-e',
      "const fs = require('fs'); for (const p of ['/app/dist/cli.js', '/app/node_modules', '/bin/sh', '/usr/bin/apt-get', '/etc/ssl/certs/ca-certificates.crt']) console.log(p + (fs.existsSync(p) ? ' present' : ' absent'));"]);
    note(probe.stdout.trim().replace(/\n/g, ', '));
    expect(probe.stdout).toContain('/app/dist/cli.js present');
    expect(probe.stdout).toContain('/app/node_modules absent');
    expect(probe.stdout).toContain('/bin/sh absent');
    expect(probe.stdout).toContain('/usr/bin/apt-get absent');
    expect(probe.stdout).toContain('/etc/ssl/certs/ca-certificates.crt present');
  });

  test('before the Secret names the registry, the node cannot pull', async () => {
    step('IMAGE/BEFORE: the mounted Secret has no entry for the registry');
    const r = await pullUntil(false);
    note(`CRI PullImage → FAILED: ${r.detail}`);
    expect(r.ok).toBe(false);
  });

  test('editing the mounted Secret makes the pull start working', async () => {
    step('IMAGE/AFTER: the kubelet-style Secret volume is updated (..data swapped) with the registry credential');
    await secret.write(dockerConfigJson({
      'other.example.com': { username: 'x', password: 'unrelated' },
      [registry.host]: { username: USER, password: PASSWORD },
    }));
    const r = await pullUntil(true);
    note(`CRI PullImage → ${r.ok ? `OK ${r.detail}` : `FAILED: ${r.detail}`} (after ${r.tries} tries)`);
    expect(r.ok, r.detail).toBe(true);
    // The DaemonSet's readiness probe, asked from inside the container (it has no network).
    const ready = await run(await dockerBin(), ['exec', agent!.getId(), 'node', '-e',
      "fetch('http://127.0.0.1:8080/readyz').then((r) => { console.log(r.status); process.exit(r.ok ? 0 : 1); }, () => process.exit(2))"]);
    note(`GET /readyz → ${ready.stdout.trim() || ready.stderr.trim()}`);
    expect(ready.code).toBe(0);
  });

  test('removing the entry from the mounted Secret makes the pull fail again', async () => {
    step('IMAGE/REMOVE: the registry is removed from the Secret volume');
    await secret.write(dockerConfigJson({ 'other.example.com': { username: 'x', password: 'unrelated' } }));
    const r = await pullUntil(false);
    note(`CRI PullImage → FAILED: ${r.detail} (after ${r.tries} tries)`);
    expect(r.ok).toBe(false);
    expect(agent && (await run(await dockerBin(), ['inspect', '-f', '{{.State.Running}}', agent.getId()])).stdout.trim()).toBe('true');
  });

  // In this mount layout the state directory is a hostPath mount point under a read-only /host:
  // cleanup must leave it in place (EROFS) rather than fail, or the init container would crash-loop.
  test('uninstall: the cleanup variant\'s init container restores the host byte-for-byte', async () => {
    step('IMAGE/UNINSTALL: stop the agent; run the image\'s `cleanup` with the cleanup variant\'s mounts');
    const docker = await dockerBin();
    await stopAgent();
    const mounts = hostMounts.flatMap((m) => ['-v', `${m.source}:${m.target}:rw`]);
    const r = await run(docker, ['run', '--rm', '--user', '0:0', '--read-only', '--cap-drop', 'ALL',
      '--cap-add', 'CHOWN', '--cap-add', 'DAC_OVERRIDE', '--cap-add', 'FOWNER', '--network', 'none',
      '--tmpfs', '/tmp:rw,size=16m', ...mounts, '-e', 'NRC_HOST_ROOT=/host', agentImage, 'cleanup']);
    note(`cleanup container → exit ${r.code}${r.code === 0 ? '' : `: ${tail(r.stdout + r.stderr, 5)}`}`);
    const diffs = diffSnapshots(before, await snapshot(hostRoot));
    note(`differences from the pre-agent host root: ${diffs.length === 0 ? 'none' : diffs.join('; ')}`);
    expect(r.code).toBe(0);
    expect(diffs).toEqual([]);
  });
});
