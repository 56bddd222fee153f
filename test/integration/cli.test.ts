// The real CLI as a process against temporary host roots: what an operator runs.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, MountedSecret } from '../support/e2e-agent.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';

const SECRET = 'pa55-Very-Secret-Value-9876';
const ROTATED = 'rotated-Secret-Value-5432';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const roots: string[] = [];
const CA = readFileSync(join(REPO_ROOT, 'examples/local/ca.pem'), 'utf8');

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  roots.push(d);
  return d;
}

/** A node with containerd (config_path set), a kubelet dir, Docker's dir, and foreign files to keep. */
function makeHost(): string {
  const root = tempDir('nrc-host-');
  mkdirSync(join(root, 'etc/containerd/certs.d/foreign.example.org'), { recursive: true });
  mkdirSync(join(root, 'var/lib/kubelet'), { recursive: true });
  mkdirSync(join(root, 'etc/docker'), { recursive: true });
  writeFileSync(join(root, 'etc/containerd/config.toml'), 'version = 2\nimports = ["/etc/containerd/conf.d/*.toml"]\n');
  mkdirSync(join(root, 'etc/containerd/conf.d'));
  writeFileSync(join(root, 'etc/containerd/conf.d/10-registry.toml'), '[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n');
  writeFileSync(join(root, 'etc/containerd/certs.d/foreign.example.org/hosts.toml'), 'server = "https://foreign.example.org"\n');
  writeFileSync(join(root, 'var/lib/kubelet/config.json'), '{"auths": {"foreign.example.org": {"auth": "Zm9yZWlnbjpzdGF5cw=="}}}', { mode: 0o640 });
  return root;
}

/** Every path under root with its kind, mode and bytes: equal listings mean a byte-for-byte equal tree. */
function listing(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const key = relative(root, p);
      if (st.isSymbolicLink()) out[key] = `link ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[key] = `dir ${(st.mode & 0o7777).toString(8)}`;
        walk(p);
      } else out[key] = `file ${(st.mode & 0o7777).toString(8)} ${readFileSync(p).toString('base64')}`;
    }
  };
  walk(root);
  return out;
}

function inputs(password: string, extra: Record<string, unknown> = {}): { dockerconfig: string; registryConfig: string } {
  const dir = tempDir('nrc-in-');
  const dockerconfig = join(dir, 'dockerconfig.json');
  writeFileSync(dockerconfig, JSON.stringify({ auths: { 'reg.example.com:5000': { username: 'ci', password }, ...extra } }));
  writeFileSync(join(dir, 'ca.pem'), CA);
  const registryConfig = join(dir, 'registry.toml');
  writeFileSync(registryConfig, '[registry."reg.example.com:5000"]\nca_file = "ca.pem"\nauth_header = true\n');
  return { dockerconfig, registryConfig };
}

const hostFiles = (root: string): string =>
  Object.entries(listing(root))
    .map(([k, v]) => `${k} ${v.startsWith('file') ? Buffer.from(v.split(' ')[2] ?? '', 'base64').toString('utf8') : ''}`)
    .join('\n');

// Each case starts the real CLI (tsx) several times: generous timeouts, as a loaded 2-core CI needs.
describe('CLI: apply, render, cleanup', { timeout: 120_000 }, () => {
  it('applies, is idempotent, rotates, and cleanup restores the host byte for byte', async () => {
    const root = makeHost();
    const before = listing(root);
    const v1 = inputs(SECRET);
    const apply = await cli(['apply', '--host-root', root, '--dockerconfig', v1.dockerconfig, '--registry-config', v1.registryConfig]);
    expect(apply.stderr).toBe('');
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain('/var/lib/kubelet/config.json');

    const kubelet = JSON.parse(readFileSync(join(root, 'var/lib/kubelet/config.json'), 'utf8'));
    expect(kubelet.auths).toEqual({ 'foreign.example.org': { auth: 'Zm9yZWlnbjpzdGF5cw==' }, 'reg.example.com:5000': { auth: b64(`ci:${SECRET}`) } });
    // The existing file keeps its mode; files the agent creates with a credential are 0600.
    expect(statSync(join(root, 'var/lib/kubelet/config.json')).mode & 0o777).toBe(0o640);
    expect(statSync(join(root, 'root/.docker/config.json')).mode & 0o777).toBe(0o600);
    const hostsToml = join(root, 'etc/containerd/certs.d/reg.example.com:5000/hosts.toml');
    expect(statSync(hostsToml).mode & 0o777).toBe(0o600);
    expect(readFileSync(hostsToml, 'utf8')).toContain('ca = "ca.crt"');
    expect(readFileSync(join(root, 'etc/containerd/certs.d/reg.example.com:5000/ca.crt'), 'utf8')).toBe(CA);
    expect(readFileSync(join(root, 'etc/docker/certs.d/reg.example.com:5000/ca.crt'), 'utf8')).toBe(CA);
    expect(statSync(join(root, 'var/lib/node-registry-credentials/ownership.json')).mode & 0o777).toBe(0o600);

    const again = await cli(['apply', '--host-root', root, '--dockerconfig', v1.dockerconfig, '--registry-config', v1.registryConfig]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing written');

    const v2 = inputs(ROTATED);
    const rotate = await cli(['apply', '--host-root', root, '--dockerconfig', v2.dockerconfig, '--registry-config', v2.registryConfig]);
    expect(rotate.code).toBe(0);
    const files = hostFiles(root);
    expect(files).toContain(b64(`ci:${ROTATED}`));
    expect(files).not.toContain(b64(`ci:${SECRET}`));

    const cleanup = await cli(['cleanup', '--host-root', root]);
    expect(cleanup.code).toBe(0);
    expect(listing(root)).toEqual(before);
    const twice = await cli(['cleanup', '--host-root', root]);
    expect(twice.code).toBe(0);
    expect(listing(root)).toEqual(before);

    for (const r of [apply, again, rotate, cleanup, twice]) {
      for (const s of [SECRET, ROTATED, b64(`ci:${SECRET}`), b64(`ci:${ROTATED}`)]) expect(r.stdout + r.stderr).not.toContain(s);
    }
  });

  it('exits 2 when some entries are rejected, still applying the valid ones, each error coded on stderr', async () => {
    const root = makeHost();
    const v = inputs(SECRET, { '../../etc/shadow': { auth: b64('x:y') }, 'nocolon.example.com': { auth: b64('nocolon') } });
    const r = await cli(['apply', '--host-root', root, '--dockerconfig', v.dockerconfig, '--registry-config', v.registryConfig]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('NRC_E_REGISTRY_HOST_INVALID');
    expect(r.stderr).toContain('NRC_E_AUTH_NO_COLON');
    const kubelet = JSON.parse(readFileSync(join(root, 'var/lib/kubelet/config.json'), 'utf8'));
    expect(Object.keys(kubelet.auths)).toEqual(['foreign.example.org', 'reg.example.com:5000']);
    expect(existsSync(join(root, 'etc/shadow'))).toBe(false);
  });

  it('exits 1 and changes nothing when the input is not JSON', async () => {
    const root = makeHost();
    const before = listing(root);
    const dir = tempDir('nrc-in-');
    writeFileSync(join(dir, 'bad.json'), `{"auths": {"reg.example.com": {"password": "${SECRET}"`);
    const r = await cli(['apply', '--host-root', root, '--dockerconfig', join(dir, 'bad.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NRC_E_INPUT_NOT_JSON');
    expect(r.stderr).not.toContain(SECRET);
    expect(listing(root)).toEqual(before);
  });

  it('exits 1 and changes nothing when the registry config is not TOML', async () => {
    const root = makeHost();
    const before = listing(root);
    const v = inputs(SECRET);
    writeFileSync(v.registryConfig, '[registry."reg.example.com:5000"\nca_file = ');
    const r = await cli(['apply', '--host-root', root, '--dockerconfig', v.dockerconfig, '--registry-config', v.registryConfig]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NRC_E_REGISTRY_CONFIG_INVALID');
    expect(listing(root)).toEqual(before);
  });

  it('exits 1 and changes nothing when the ownership record is corrupt', async () => {
    const root = makeHost();
    mkdirSync(join(root, 'var/lib/node-registry-credentials'));
    writeFileSync(join(root, 'var/lib/node-registry-credentials/ownership.json'), '{"version": 1, "jsonFiles": ');
    const before = listing(root);
    const v = inputs(SECRET);
    const r = await cli(['apply', '--host-root', root, '--dockerconfig', v.dockerconfig]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NRC_E_STATE_CORRUPT');
    expect((await cli(['cleanup', '--host-root', root])).code).toBe(1);
    expect(listing(root)).toEqual(before);
  });

  it('never follows a symlink out of the host root', async () => {
    const root = makeHost();
    const outside = tempDir('nrc-outside-');
    symlinkSync(outside, join(root, 'root'));
    const v = inputs(SECRET);
    const r = await cli(['apply', '--host-root', root, '--dockerconfig', v.dockerconfig]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('NRC_E_UNSAFE_PATH');
    expect(readdirSync(outside)).toEqual([]);
    expect(JSON.parse(readFileSync(join(root, 'var/lib/kubelet/config.json'), 'utf8')).auths).toHaveProperty(['reg.example.com:5000']);
  });

  it('follows symlinked directories inside the host root, as the node would, and never out of it', async () => {
    const root = makeHost();
    // A relocated kubelet dir (absolute link, read as a host path) and CoreOS's /root (relative link).
    mkdirSync(join(root, 'data/kubelet'), { recursive: true });
    renameSync(join(root, 'var/lib/kubelet/config.json'), join(root, 'data/kubelet/config.json'));
    rmSync(join(root, 'var/lib/kubelet'), { recursive: true });
    symlinkSync('/data/kubelet', join(root, 'var/lib/kubelet'));
    // A relative link that climbs far above "/": like chroot, it stops at the host root.
    mkdirSync(join(root, 'var/roothome'));
    symlinkSync('../../../../../../var/roothome', join(root, 'root'));
    const before = listing(root);
    const v = inputs(SECRET);
    const r = await cli(['apply', '--host-root', root, '--dockerconfig', v.dockerconfig, '--registry-config', v.registryConfig]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lstatSync(join(root, 'var/lib/kubelet')).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(join(root, 'data/kubelet/config.json'), 'utf8')).auths).toHaveProperty(['reg.example.com:5000']);
    expect(JSON.parse(readFileSync(join(root, 'var/roothome/.docker/config.json'), 'utf8')).auths).toHaveProperty(['reg.example.com:5000']);
    expect(existsSync('/var/roothome/.docker/config.json')).toBe(false);
    expect((await cli(['cleanup', '--host-root', root])).code).toBe(0);
    expect(listing(root)).toEqual(before);
  });

  it('render prints a masked diff and writes nothing', async () => {
    const root = makeHost();
    const before = listing(root);
    const v = inputs(SECRET);
    const r = await cli(['render', '--host-root', root, '--dockerconfig', v.dockerconfig, '--registry-config', v.registryConfig]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('+++ /var/lib/kubelet/config.json');
    expect(r.stdout).toContain('+++ /etc/containerd/certs.d/reg.example.com:5000/hosts.toml');
    const auth = b64(`ci:${SECRET}`);
    expect(r.stdout).toContain(`****${auth.slice(-4)}`);
    expect(r.stdout).not.toContain(auth);
    expect(r.stdout).not.toContain(SECRET);
    expect(r.stdout).not.toContain('Zm9yZWlnbjpzdGF5cw=='); // foreign secrets are masked too
    expect(listing(root)).toEqual(before);
  });

  it('a number flag with a bad value is a coded usage error (exit 1), not NaN, and nothing is written', async () => {
    const root = makeHost();
    const v = inputs(SECRET);
    const before = listing(root);
    for (const [flag, value] of [['--debounce-ms', 'soon'], ['--resync-seconds', '0'], ['--check-timeout-ms', '-5'], ['--ecr-fleet-size', '1.5']] as const) {
      const r = await cli(['run', '--host-root', root, '--dockerconfig', v.dockerconfig, '--no-kubernetes', `${flag}=${value}`]);
      expect(r.code, `${flag} ${value}`).toBe(1);
      expect(r.stderr).toContain(`NRC_E_FLAG_INVALID [${flag}]`);
      expect(r.stderr).not.toContain('NaN');
    }
    const doctor = await cli(['doctor', '--host-root', root, '--check-timeout-ms', 'abc']);
    expect(doctor.code).toBe(1);
    expect(doctor.stderr).toContain('NRC_E_FLAG_INVALID [--check-timeout-ms]');
    expect(listing(root)).toEqual(before);
  });

  it('--help lists every flag with its NRC_ environment variable', async () => {
    const r = await cli(['apply', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--host-root', '--dockerconfig', '--registry-config', 'NRC_HOST_ROOT', 'NRC_DOCKERCONFIG']) expect(r.stdout).toContain(flag);
  });

  it('reads flags from NRC_* environment variables', async () => {
    const root = makeHost();
    const v = inputs(SECRET);
    const bin = join(REPO_ROOT, 'node_modules', '.bin');
    const code = await new Promise<number>((resolve) => {
      const child = spawn(join(bin, 'tsx'), [join(REPO_ROOT, 'src/cli.ts'), 'apply'], {
        env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, NRC_HOST_ROOT: root, NRC_DOCKERCONFIG: v.dockerconfig },
        stdio: 'ignore',
      });
      child.on('close', (c) => resolve(c ?? 1));
    });
    expect(code).toBe(0);
    expect(readFileSync(join(root, 'var/lib/kubelet/config.json'), 'utf8')).toContain('reg.example.com:5000');
  });
});

describe('CLI: run with a mounted Secret volume', { timeout: 120_000 }, () => {
  it('follows the kubelet\'s ..data symlink swap and re-applies on every update; SIGTERM stops it promptly', async () => {
    const root = makeHost();
    const secret = new MountedSecret(join(tempDir('nrc-secret-'), 'vol'));
    await secret.write(JSON.stringify({ auths: { 'one.example.com': { auth: b64('a:1') } } }));
    const bin = join(REPO_ROOT, 'node_modules', '.bin');
    // node --import tsx, not the tsx binary: tsx's signal relay SIGKILLs a child that is slow to
    // acknowledge SIGTERM, which would hide the agent's own clean exit.
    const child = spawn(join(bin, 'node'), ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'run', '--host-root', root, '--dockerconfig', secret.dir, '--debounce-ms', '20'], {
      env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    child.stderr.on('data', (b: Buffer) => (logs += b.toString()));
    const kubelet = join(root, 'var/lib/kubelet/config.json');
    const waitFor = async (pred: () => boolean): Promise<void> => {
      for (let i = 0; i < 1200 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(pred()).toBe(true);
    };
    const has = (key: string) => () => existsSync(kubelet) && readFileSync(kubelet, 'utf8').includes(key);
    await waitFor(has('one.example.com'));
    await secret.write(JSON.stringify({ auths: { 'two.example.com': { auth: b64('b:2') } } }));
    await waitFor(() => has('two.example.com')() && !has('one.example.com')());
    expect(readFileSync(kubelet, 'utf8')).toContain('foreign.example.org');
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logs).not.toContain(b64('b:2'));
    // A restart of the pod leaves the node configured.
    expect(has('two.example.com')()).toBe(true);
  });
});
