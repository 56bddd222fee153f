// Disk and filesystem faults: a full filesystem (ENOSPC, a 64 KiB tmpfs), a read-only one
// (EROFS), permission denied (the agent as a non-root uid), a directory or a symlink where a
// file goes, a parent that vanishes before the write. Each gives a clear coded error, no partial
// file and the old content intact; `run` keeps running, retries with backoff and recovers by
// itself once the fault is gone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyCommand, type Io } from '../../src/commands/oneshot.ts';
import { COMMON_FLAGS, INPUT_FLAGS, parseFlags } from '../../src/commands/options.ts';
import { applyPlan } from '../../src/host/apply.ts';
import { HostFs } from '../../src/host/host-fs.ts';
import { planOnHost, reconcileOnce } from '../../src/reconcile/engine.ts';
import type { ApplyReport } from '../../src/model/apply-report.ts';
import { Reconciler } from '../../src/reconcile/reconciler.ts';
import { DEFAULT_TARGET_OPTIONS } from '../../src/runtime/targets.ts';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { parseDockerConfig } from '../../src/sources/dockerconfig.ts';
import { FileSource } from '../../src/sources/file-source.ts';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';
import {
  captureLogger,
  dockerConfigJson,
  expectNoSecrets,
  FOREIGN_AUTHS,
  makeSampleHost,
  registryToml,
  runCli,
  secretForms,
  snapshotTree,
  spawnCli,
  strayTemps,
  tryReadJson,
  waitFor,
  type SampleHost,
  type TestCredential,
} from '../support/reliability-host.ts';
import { fillUp, mountTmpfs, probeMounts, remount, unmountAll } from '../support/reliability-mounts.ts';

const REG = 'reg.example.com:5000';
// Many entries, so the new config.json is bigger than what a full disk has left.
const CREDS: TestCredential[] = [
  { key: REG, username: 'fault-user', password: 'fault-pw-Hh38Qa' },
  ...Array.from({ length: 30 }, (_, i) => ({ key: `r${i}.example.com`, username: `u${i}`, password: `fault-pw-${i}-Mz7q` })),
];
const SECRETS = secretForms(CREDS);
const KUBELET = '/var/lib/kubelet/config.json';
const DOCKER = '/root/.docker/config.json';
const HOSTS_TOML = `/etc/containerd/certs.d/${REG}/hosts.toml`;
const NOBODY = 65534;

type Auths = Record<string, unknown>;
const authsOf = (host: SampleHost, p: string): Auths | undefined => (tryReadJson(host.real(p)) as { auths?: Auths } | undefined)?.auths;
const hasOurs = (host: SampleHost, p: string): boolean => authsOf(host, p)?.[REG] !== undefined;

function writeInputs(host: SampleHost): { dockerconfig: string; registryConfig: string } {
  const dockerconfig = path.join(host.inputs, 'config.json');
  const registryConfig = path.join(host.inputs, 'registry.toml');
  fs.writeFileSync(dockerconfig, dockerConfigJson(CREDS), { mode: 0o644 });
  fs.writeFileSync(registryConfig, registryToml([REG]), { mode: 0o644 });
  return { dockerconfig, registryConfig };
}

function applyOnce(host: SampleHost): { code: number; out: string } {
  const { dockerconfig, registryConfig } = writeInputs(host);
  const chunks: string[] = [];
  const io: Io = { out: (t) => chunks.push(t), err: (t) => chunks.push(t) };
  const flags = parseFlags(['--host-root', host.root, '--dockerconfig', dockerconfig, '--registry-config', registryConfig], [...COMMON_FLAGS, ...INPUT_FLAGS], {});
  const code = applyCommand(flags, io);
  const out = chunks.join('');
  expectNoSecrets(out, SECRETS, 'apply output');
  return { code, out };
}

/** The running agent (the Reconciler `run` uses) with a fast backoff, recording its reports. */
async function startAgent(host: SampleHost): Promise<{ reconciler: Reconciler; reports: ApplyReport[]; lines: string[] }> {
  const { dockerconfig, registryConfig } = writeInputs(host);
  const { logger, lines } = captureLogger();
  const reports: ApplyReport[] = [];
  const reconciler = new Reconciler({
    host: new HostFs(host.root),
    sources: [new FileSource(dockerconfig, 10)],
    hostOptions: parseRegistryConfig(fs.readFileSync(registryConfig, 'utf8')).hosts,
    targetOptions: DEFAULT_TARGET_OPTIONS,
    logger,
    debounceMs: 10,
    resyncMs: 3_600_000,
    maxBackoffMs: 200,
  });
  reconciler.on('applied', (r) => reports.push(r));
  await reconciler.start();
  return { reconciler, reports, lines };
}

/** Waits until the agent has failed and retried at least twice with the given code. */
async function expectRetrying(reports: ApplyReport[], code: string, detail?: string): Promise<void> {
  await waitFor(() => reports.filter((r) => !r.hostOk && r.errors.some((e) => e.code === code && (!detail || e.message.includes(detail)))).length >= 3, `three failed applies with ${code} ${detail ?? ''}`);
}

const mounts = probeMounts();
const inCi = process.env['CI'] === 'true';

describe('disk and filesystem faults', () => {
  let host: SampleHost;
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  beforeEach(() => {
    host = makeSampleHost();
    agent = undefined;
  });
  afterEach(async () => {
    if (agent) {
      await agent.reconciler.stop();
      expectNoSecrets(agent.lines.join('\n'), SECRETS, 'the logs');
    }
    unmountAll();
    host.remove();
  });

  describe.skipIf(!mounts.ok && !inCi)(`on small tmpfs mounts${mounts.ok ? '' : ` (skipped: ${mounts.why})`}`, () => {
    beforeAll(() => {
      // In CI a missing capability is a failure with its reason, never a silent skip.
      if (!mounts.ok) throw new Error(`reliability: ${mounts.why}`);
    });

    /** The kubelet root dir on a full 64 KiB tmpfs holding the node's existing config.json. */
    function fullKubeletDisk(): { filler: string; before: Buffer } {
      const dir = host.real('/var/lib/kubelet');
      const before = fs.readFileSync(path.join(dir, 'config.json'));
      fs.rmSync(dir, { recursive: true });
      mountTmpfs(dir);
      fs.writeFileSync(path.join(dir, 'config.json'), before, { mode: 0o640 });
      return { filler: fillUp(dir), before };
    }

    it('ENOSPC: a full disk gives NRC_E_WRITE_FAILED, keeps the old config.json whole, and run recovers when space is freed', async () => {
      const { filler, before } = fullKubeletDisk();
      const once = applyOnce(host);
      expect(once.code).toBe(1);
      expect(once.out).toMatch(/NRC_E_WRITE_FAILED \[\/var\/lib\/kubelet\/config\.json\].*\(ENOSPC\)/);
      expect(fs.readFileSync(host.real(KUBELET))).toEqual(before);
      expect(strayTemps(host.real('/var/lib/kubelet'))).toEqual([]);
      // The other target, on a disk with room, is written anyway.
      expect(hasOurs(host, DOCKER)).toBe(true);

      agent = await startAgent(host);
      await expectRetrying(agent.reports, 'NRC_E_WRITE_FAILED', 'ENOSPC');
      expect(fs.readFileSync(host.real(KUBELET))).toEqual(before);
      fs.unlinkSync(filler);
      await waitFor(() => hasOurs(host, KUBELET), 'config.json written once space is free');
      expect(authsOf(host, KUBELET)).toMatchObject(FOREIGN_AUTHS);
      await waitFor(() => agent!.reports.at(-1)?.hostOk === true, 'a clean apply is reported');
    });

    it('EROFS: a read-only containerd directory fails only its own files; the kubelet is configured, and run recovers when it is writable', async () => {
      const certs = host.real('/etc/containerd/certs.d');
      mountTmpfs(certs);
      remount(certs, 'ro');
      const once = applyOnce(host);
      expect(once.code).toBe(1);
      expect(once.out).toContain(`NRC_E_WRITE_FAILED [/etc/containerd/certs.d/${REG}]`);
      expect(once.out).toContain('(EROFS)');
      expect(hasOurs(host, KUBELET)).toBe(true);
      expect(fs.readdirSync(certs)).toEqual([]);

      agent = await startAgent(host);
      await expectRetrying(agent.reports, 'NRC_E_WRITE_FAILED', 'EROFS');
      remount(certs, 'rw');
      await waitFor(() => fs.existsSync(host.real(HOSTS_TOML)), 'hosts.toml written once writable');
      expect(fs.readFileSync(host.real(HOSTS_TOML), 'utf8')).toContain(`server = "https://${REG}"`);
    });

    it('EROFS: a read-only kubelet directory keeps the existing config.json byte for byte', () => {
      const dir = host.real('/var/lib/kubelet');
      const before = fs.readFileSync(path.join(dir, 'config.json'));
      fs.rmSync(dir, { recursive: true });
      mountTmpfs(dir);
      fs.writeFileSync(path.join(dir, 'config.json'), before, { mode: 0o640 });
      remount(dir, 'ro');
      const once = applyOnce(host);
      expect(once.code).toBe(1);
      expect(once.out).toMatch(/NRC_E_WRITE_FAILED \[\/var\/lib\/kubelet\/config\.json\].*\(EROFS\)/);
      expect(fs.readFileSync(path.join(dir, 'config.json'))).toEqual(before);
      expect(fs.readdirSync(dir)).toEqual(['config.json']);
    });
  });

  describe('permission denied (the agent as uid 65534)', () => {
    /** The host root and inputs traversable by the unprivileged agent; everything else stays root's. */
    function openUp(): void {
      fs.chmodSync(path.dirname(host.root), 0o755);
      fs.chmodSync(host.inputs, 0o755);
    }

    it('apply fails with NRC_E_WRITE_FAILED (EACCES) and changes nothing', async () => {
      openUp();
      const { dockerconfig, registryConfig } = writeInputs(host);
      const before = snapshotTree(host.root);
      const r = await runCli(['apply', '--host-root', host.root, '--dockerconfig', dockerconfig, '--registry-config', registryConfig], { uid: NOBODY });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('NRC_E_WRITE_FAILED');
      expect(r.stderr).toContain('(EACCES)');
      expect(snapshotTree(host.root)).toEqual(before);
      expectNoSecrets(r.stdout + r.stderr, SECRETS, 'apply output');
    });

    it('run keeps running and retrying, and configures the node once it may write', async () => {
      openUp();
      const { dockerconfig, registryConfig } = writeInputs(host);
      const before = snapshotTree(host.root);
      const child = spawnCli(['run', '--host-root', host.root, '--dockerconfig', dockerconfig, '--registry-config', registryConfig, '--debounce-ms', '20'], { uid: NOBODY });
      let stderr = '';
      let stdout = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      try {
        await waitFor(() => (stderr.match(/apply failed; retrying/g) ?? []).length >= 2, 'two retries with backoff', 30_000);
        expect(stderr).toContain('EACCES');
        expect(child.exitCode).toBe(null);
        expect(snapshotTree(host.root)).toEqual(before);
        // The fault goes away: the agent's uid may now write the node's files.
        for (const d of ['/var/lib', '/var/lib/kubelet', '/root', '/etc/containerd/certs.d', '/etc/docker', '/etc/containers']) fs.chownSync(host.real(d), NOBODY, NOBODY);
        fs.chownSync(host.real(KUBELET), NOBODY, NOBODY);
        await waitFor(() => hasOurs(host, KUBELET) && fs.existsSync(host.real(HOSTS_TOML)), 'configured after the fix', 30_000);
        expect(authsOf(host, KUBELET)).toMatchObject(FOREIGN_AUTHS);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
      expectNoSecrets(stdout + stderr, SECRETS, 'run output');
    });
  });

  describe('a directory, a symlink or nothing where the agent expects a file or directory', () => {
    it('a directory at the docker config path: NRC_E_TARGET_NOT_FILE, the rest applies, run recovers once it is gone', async () => {
      const dir = host.real(DOCKER);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'keep'), 'someone else\'s');
      const once = applyOnce(host);
      expect(once.code).toBe(2);
      expect(once.out).toContain(`NRC_E_TARGET_NOT_FILE [${DOCKER}]`);
      expect(hasOurs(host, KUBELET)).toBe(true);
      expect(fs.readFileSync(path.join(dir, 'keep'), 'utf8')).toBe('someone else\'s');

      agent = await startAgent(host);
      await expectRetrying(agent.reports, 'NRC_E_TARGET_NOT_FILE');
      fs.rmSync(dir, { recursive: true });
      await waitFor(() => hasOurs(host, DOCKER), 'docker config written once the directory is gone');
    });

    it('a symlink at a managed path is never followed: NRC_E_UNSAFE_PATH, link and its target untouched', () => {
      const outside = path.join(host.inputs, 'outside.json');
      fs.writeFileSync(outside, '{"precious": true}\n');
      fs.mkdirSync(host.real('/root/.docker'));
      fs.symlinkSync(outside, host.real(DOCKER));
      // A symlinked registry directory, pointing out of the host root.
      fs.symlinkSync(host.inputs, host.real(`/etc/containerd/certs.d/${REG}`));
      const once = applyOnce(host);
      expect(once.code).toBe(2);
      expect(once.out).toContain(`NRC_E_UNSAFE_PATH [${DOCKER}]`);
      expect(once.out).toContain(`NRC_E_FOREIGN_DIRECTORY [/etc/containerd/certs.d/${REG}]`);
      expect(fs.readlinkSync(host.real(DOCKER))).toBe(outside);
      expect(fs.readFileSync(outside, 'utf8')).toBe('{"precious": true}\n');
      expect(fs.readdirSync(host.inputs).sort()).toEqual(['config.json', 'outside.json', 'registry.toml']);
      expect(hasOurs(host, KUBELET)).toBe(true);
    });

    it('a parent directory removed between planning and writing: coded error, no file, and the next pass writes it', () => {
      writeInputs(host);
      const hostFs = new HostFs(host.root);
      fs.mkdirSync(host.real('/root/.docker'));
      const input = {
        host: hostFs,
        credentials: parseDockerConfig(dockerConfigJson(CREDS), 'test').credentials,
        hostOptions: parseRegistryConfig(registryToml([REG])).hosts,
        targetOptions: DEFAULT_TARGET_OPTIONS,
      };
      const planned = planOnHost(input);
      if (planned instanceof Error) throw planned;
      fs.rmdirSync(host.real('/root/.docker'));
      const result = applyPlan(hostFs, planned.record, planned.plan);
      expect(result.errors.map((e) => `${e.code} ${e.subject}`)).toEqual([`NRC_E_TARGET_NOT_FILE /root/.docker`]);
      expect(fs.existsSync(host.real('/root/.docker'))).toBe(false);
      expect(hasOurs(host, KUBELET)).toBe(true);
      const again = reconcileOnce(input);
      if (again instanceof Error) throw again;
      expect(again.result.errors).toEqual([]);
      expect(authsOf(host, DOCKER)?.[REG]).toEqual({ auth: encodeAuth('fault-user', 'fault-pw-Hh38Qa') });
    });
  });
});
