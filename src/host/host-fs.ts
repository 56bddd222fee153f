import * as fs from 'node:fs';
import { posix } from 'node:path';
import { AgentError } from '../errors.ts';

/** What a host path is right now, as the planner sees it (host paths are absolute, as on the node). */
export type FileState =
  | { readonly kind: 'missing' }
  | { readonly kind: 'file'; readonly bytes: Uint8Array; readonly mode: number; readonly uid: number; readonly gid: number }
  | { readonly kind: 'directory' }
  /** A symlink, or a path below one: the agent never follows it. */
  | { readonly kind: 'symlink' }
  | { readonly kind: 'other' }
  | { readonly kind: 'unreadable'; readonly errno: string };

export type HostSnapshot = ReadonlyMap<string, FileState>;

/** Read-only view of the host used by runtime detection. */
export interface HostReader {
  readText(hostPath: string): string | undefined;
  listDir(hostPath: string): string[] | undefined;
}

/** Largest host file the agent reads: anything bigger is not a config file it should merge into. */
const MAX_READ_BYTES = 32 * 1024 * 1024;

export function assertHostPath(hostPath: string): string {
  const normalized = posix.normalize(hostPath);
  if (!posix.isAbsolute(hostPath) || (hostPath !== '/' && normalized !== hostPath.replace(/\/+$/, '')) || hostPath.includes('\0')) {
    throw new AgentError('NRC_E_UNSAFE_PATH', { subject: JSON.stringify(hostPath.slice(0, 200)) });
  }
  return normalized;
}

/** Ancestors of a host path, shallowest first, without "/" itself. */
export function ancestors(hostPath: string): string[] {
  const out: string[] = [];
  let cur = posix.dirname(hostPath);
  while (cur !== '/') {
    out.unshift(cur);
    cur = posix.dirname(cur);
  }
  return out;
}

/**
 * The node's filesystem seen through --host-root. Every access walks the path with lstat so
 * that no symlink is ever followed, whatever it points at.
 */
export class HostFs implements HostReader {
  readonly root: string;

  constructor(root: string) {
    this.root = root.replace(/\/+$/, '') || '/';
  }

  real(hostPath: string): string {
    const p = assertHostPath(hostPath);
    return this.root === '/' ? p : `${this.root}${p}`;
  }

  /** lstat of every component below the root; 'symlink' if any of them is a link. */
  stat(hostPath: string): FileState {
    const p = assertHostPath(hostPath);
    for (const dir of ancestors(p)) {
      const st = this.lstat(dir);
      if (st === undefined) return { kind: 'missing' };
      if ('errno' in st) return { kind: 'unreadable', errno: st.errno };
      if (st.isSymbolicLink()) return { kind: 'symlink' };
      if (!st.isDirectory()) return { kind: 'other' };
    }
    const st = this.lstat(p);
    if (st === undefined) return { kind: 'missing' };
    if ('errno' in st) return { kind: 'unreadable', errno: st.errno };
    if (st.isSymbolicLink()) return { kind: 'symlink' };
    if (st.isDirectory()) return { kind: 'directory' };
    if (!st.isFile()) return { kind: 'other' };
    if (st.size > MAX_READ_BYTES) return { kind: 'other' };
    try {
      const fd = fs.openSync(this.real(p), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        const bytes = fs.readFileSync(fd);
        return { kind: 'file', bytes, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      return { kind: 'unreadable', errno: (err as NodeJS.ErrnoException).code ?? 'EIO' };
    }
  }

  private lstat(hostPath: string): fs.Stats | { errno: string } | undefined {
    try {
      return fs.lstatSync(this.real(hostPath));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      return { errno: code };
    }
  }

  /** Snapshot of the given paths and all their ancestors. */
  snapshot(paths: Iterable<string>): HostSnapshot {
    const out = new Map<string, FileState>();
    for (const p of paths) {
      for (const a of [...ancestors(p), p]) if (!out.has(a)) out.set(a, this.stat(a));
    }
    return out;
  }

  readText(hostPath: string): string | undefined {
    const st = this.stat(hostPath);
    return st.kind === 'file' ? Buffer.from(st.bytes).toString('utf8') : undefined;
  }

  listDir(hostPath: string): string[] | undefined {
    if (this.stat(hostPath).kind !== 'directory') return undefined;
    try {
      return fs.readdirSync(this.real(hostPath));
    } catch {
      return undefined;
    }
  }
}
