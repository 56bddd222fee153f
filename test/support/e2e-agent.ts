// Running the agent's CLI from source (`tsx src/cli.ts`, Node 24 first on PATH), and the
// Secret/registry-config inputs it reads, including the kubelet's secret-volume layout.
import { mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { run, note, type RunResult } from './e2e-exec.ts';
import { REPO_ROOT } from './e2e-prereqs.ts';

export type Auths = Record<string, { readonly username: string; readonly password: string }>;

/** A .dockerconfigjson as the platform's Secret holds it (auth = base64(user:password)). */
export function dockerConfigJson(auths: Auths): string {
  const out: Record<string, { auth: string }> = {};
  for (const [host, c] of Object.entries(auths)) {
    out[host] = { auth: encodeAuth(c.username, c.password) };
  }
  return JSON.stringify({ auths: out });
}

export interface RegistryOptions {
  readonly caFile?: string;
  readonly caPem?: string;
  readonly authHeader?: boolean;
}

export function registryConfigToml(options: Record<string, RegistryOptions>): string {
  const lines: string[] = [];
  for (const [host, o] of Object.entries(options)) {
    lines.push(`[registry.${JSON.stringify(host)}]`);
    if (o.caFile) lines.push(`ca_file = ${JSON.stringify(o.caFile)}`);
    if (o.caPem) lines.push(`ca = """\n${o.caPem.trim()}\n"""`);
    lines.push('skip_verify = false');
    if (o.authHeader !== undefined) lines.push(`auth_header = ${o.authHeader}`);
    lines.push('');
  }
  return lines.join('\n');
}

/** `tsx src/cli.ts <args>` with the repo's node_modules/.bin (and so Node 24) first on PATH. */
export async function cli(args: readonly string[]): Promise<RunResult> {
  const bin = join(REPO_ROOT, 'node_modules', '.bin');
  const r = await run(join(bin, 'tsx'), [join(REPO_ROOT, 'src', 'cli.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
  });
  note(`agent ${args[0]} → exit ${r.code}`);
  return r;
}

/**
 * A Secret volume as the kubelet mounts it: the payload lives in a timestamped directory,
 * `..data` points at it, and `.dockerconfigjson` points through `..data`. Updates swap `..data`
 * atomically, as the kubelet's AtomicWriter does.
 */
export class MountedSecret {
  private generation = 0;
  constructor(readonly dir: string) {}

  async write(dockerconfigjson: string): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const payload = `..e2e_${String(++this.generation).padStart(4, '0')}`;
    await mkdir(join(this.dir, payload));
    await writeFile(join(this.dir, payload, '.dockerconfigjson'), dockerconfigjson, { mode: 0o400 }); // the DaemonSet's defaultMode
    await symlink(payload, join(this.dir, '..data_tmp'));
    await rename(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.generation === 1) await symlink('..data/.dockerconfigjson', join(this.dir, '.dockerconfigjson'));
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('..e2e_') && name !== payload) await rm(join(this.dir, name), { recursive: true });
    }
  }
}
