// A temporary node filesystem ("host root") as the agent sees it under --host-root, with foreign
// files a node already has (they must survive every step, and cleanup must restore them exactly).
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { secretsOf } from '../../src/model/secret-forms.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Files planted before the agent ever runs, relative to the host root. */
export const FOREIGN_FILES: Readonly<Record<string, string>> = {
  // What the agent parses to find containerd's registry config_path (host paths, not ours).
  'etc/containerd/config.toml': [
    'version = 2',
    '[plugins."io.containerd.grpc.v1.cri".registry]',
    '  config_path = "/etc/containerd/certs.d"',
    '',
  ].join('\n'),
  'var/lib/kubelet/config.json':
    JSON.stringify({ auths: { 'foreign.example.com': { auth: b64('someone:foreign-secret') } } }, null, 2) + '\n',
  'root/.docker/config.json':
    JSON.stringify({ auths: { 'foreign.example.com': { auth: b64('someone:foreign-secret') } }, psFormat: 'table' }, null, '\t') + '\n',
  'etc/containerd/certs.d/foreign.example.com/hosts.toml':
    'server = "https://foreign.example.com"\n\n[host."https://mirror.foreign.example.com"]\n  capabilities = ["pull", "resolve"]\n',
  'etc/docker/certs.d/foreign.example.com:5000/ca.crt': '# a foreign CA the agent must not touch\n',
  // podman/CRI-O configuration: the agent writes /etc/containers/certs.d only where this exists.
  'etc/containers/registries.conf': 'unqualified-search-registries = []\n',
  'etc/hostname': 'e2e-node\n',
};

export async function makeHostRoot(root: string): Promise<void> {
  for (const [rel, content] of Object.entries(FOREIGN_FILES)) {
    const path = join(root, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content, { mode: 0o644 });
  }
}

export type Entry =
  | { readonly type: 'dir'; readonly mode: number }
  | { readonly type: 'file'; readonly mode: number; readonly content: string }
  | { readonly type: 'symlink'; readonly target: string }
  | { readonly type: 'other' };

/** Every path under root with its type, permission bits and exact bytes (base64). */
export async function snapshot(root: string): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const rel = relative(root, path);
      const st = await lstat(path);
      if (st.isSymbolicLink()) out[rel] = { type: 'symlink', target: await readlink(path) };
      else if (st.isDirectory()) {
        out[rel] = { type: 'dir', mode: st.mode & 0o7777 };
        await walk(path);
      } else if (st.isFile()) out[rel] = { type: 'file', mode: st.mode & 0o7777, content: (await readFile(path)).toString('base64') };
      else out[rel] = { type: 'other' };
    }
  };
  await walk(root);
  return out;
}

/** Regular files under root whose bytes contain any of the needles (paths relative to root). */
export async function filesContaining(root: string, needles: readonly string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const [rel, e] of Object.entries(await snapshot(root))) {
    if (e.type !== 'file') continue;
    const text = Buffer.from(e.content, 'base64').toString('latin1');
    if (needles.some((n) => text.includes(n))) hits.push(rel);
  }
  return hits;
}

/** The forms a password can take in credential files: plain, and base64 of user:password (padded or not). */
export function secretForms(user: string, password: string): string[] {
  const forms = secretsOf([{ username: user, password }]);
  return [...forms, encodeAuth(user, password).replace(/=+$/, '')];
}

/** Lists what differs between two snapshots, for a readable failure. */
export function diffSnapshots(before: Record<string, Entry>, after: Record<string, Entry>): string[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const diffs: string[] = [];
  for (const k of keys) {
    const a = before[k];
    const b = after[k];
    if (!a) diffs.push(`added: ${k}`);
    else if (!b) diffs.push(`removed: ${k}`);
    else if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`changed: ${k}`);
  }
  return diffs;
}
