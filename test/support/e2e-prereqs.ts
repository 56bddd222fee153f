// What the e2e suite needs on the machine, checked up front so a run says exactly what is missing.
// In CI (CI=true) a missing prerequisite fails the run; elsewhere the suite is skipped with the list.
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './e2e-exec.ts';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** The Debian engine's CLI (matches the daemon setup-host.sh installs); any `docker` as a fallback. */
export async function dockerBin(): Promise<string> {
  return (await isExecutable('/usr/bin/docker')) ? '/usr/bin/docker' : 'docker';
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(cmd: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && (await isExecutable(join(dir, cmd)))) return true;
  }
  return false;
}

const FIX = 'run `sudo scripts/setup-host.sh`';

export async function missingPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push('root (containerd and dockerd need it; run as root)');
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 24) missing.push(`Node 24 (running ${process.versions.node}; run through npm scripts or npx)`);
  for (const [cmd, pkg] of [
    ['containerd', 'containerd'],
    ['skopeo', 'skopeo'],
    ['docker-registry', 'docker-registry'],
    ['htpasswd', 'apache2-utils'],
    ['openssl', 'openssl'],
    ['tar', 'tar'],
    ['debootstrap', 'debootstrap'],
  ] as const) {
    if (!(await onPath(cmd)) && !(await isExecutable(`/usr/sbin/${cmd}`))) {
      missing.push(`\`${cmd}\` (Debian package ${pkg}; ${FIX})`);
    }
  }
  const docker = await dockerBin();
  if (docker === 'docker' && !(await onPath('docker'))) {
    missing.push(`the docker CLI (Debian package docker.io; ${FIX})`);
  } else {
    const r = await run(docker, ['version', '--format', '{{.Server.Version}}']).catch(() => null);
    if (!r || r.code !== 0) missing.push(`a running Docker engine on /var/run/docker.sock (${FIX}, which starts dockerd)`);
  }
  if (!(await isExecutable(join(REPO_ROOT, 'node_modules', '.bin', 'tsx')))) {
    missing.push('node_modules (run `npm ci`)');
  }
  try {
    await access(join(REPO_ROOT, 'src', 'cli.ts'));
  } catch {
    missing.push('the agent CLI src/cli.ts');
  }
  return missing;
}

/** CI=true (or E2E_REQUIRED=1) turns a missing prerequisite into a failure. */
export function prerequisitesRequired(): boolean {
  const ci = (process.env.CI ?? '').toLowerCase();
  return (ci !== '' && ci !== 'false' && ci !== '0') || process.env.E2E_REQUIRED === '1';
}
