import * as fs from 'node:fs';
import { posix } from 'node:path';
import { AgentError } from '../errors.ts';
import { ancestors, snapshotPaths, type FileState, type HostSnapshot } from '../model/host-state.ts';

/** Read-only view of the host used by runtime detection. */
export interface HostReader {
  readText(hostPath: string): string | undefined;
  listDir(hostPath: string): string[] | undefined;
}

/** Linux only; 0 elsewhere (then atime is never trusted). */
const NOATIME = (fs.constants as { O_NOATIME?: number }).O_NOATIME ?? 0;
/** One flag per process: every HostFs reads the same host. */
let noAtimeWorks = NOATIME !== 0;

/** Largest host file the agent reads: anything bigger is not a config file it should merge into. */
const MAX_READ_BYTES = 32 * 1024 * 1024;

export function assertHostPath(hostPath: string): string {
  const normalized = posix.normalize(hostPath);
  if (!posix.isAbsolute(hostPath) || (hostPath !== '/' && normalized !== hostPath.replace(/\/+$/, '')) || hostPath.includes('\0')) {
    throw new AgentError('NRC_E_UNSAFE_PATH', { subject: JSON.stringify(hostPath.slice(0, 200)) });
  }
  return normalized;
}

/** Symlinks followed while resolving one path, as the kernel's own limit. */
const MAX_LINK_HOPS = 40;

type Resolved = { readonly path: string } | { readonly problem: FileState };

/**
 * The node's filesystem seen through --host-root. Paths are resolved the way the node itself
 * would, but inside the host root, like chroot: a symlinked directory (/var/lib/kubelet →
 * /data/kubelet, /root → /var/roothome) is followed with its target read as a host path, and no
 * target can climb above the root. A symlink is never followed for a file, nor when it dangles:
 * those are reported as 'symlink' and the agent refuses to write there.
 */
export class HostFs implements HostReader {
  readonly root: string;

  constructor(root: string) {
    this.root = root.replace(/\/+$/, '') || '/';
  }

  private join(hostPath: string): string {
    return this.root === '/' ? hostPath : `${this.root}${hostPath}`;
  }

  /**
   * The host path with its directories resolved (the last component is kept as it is), or why
   * it cannot be: a directory missing, a link dangling or looping, a file where a directory is.
   */
  private resolveParent(hostPath: string): Resolved {
    let todo = hostPath.split('/').filter(Boolean);
    const last = todo.pop();
    if (last === undefined) return { path: '/' };
    let cur = '/';
    let hops = 0;
    while (todo.length > 0) {
      const next = posix.join(cur, todo.shift()!);
      const st = this.lstatReal(this.join(next));
      if (st === undefined) return { problem: { kind: 'missing' } };
      if ('errno' in st) return { problem: { kind: 'unreadable', errno: st.errno } };
      if (st.isSymbolicLink()) {
        if (++hops > MAX_LINK_HOPS) return { problem: { kind: 'symlink' } };
        let target: string;
        try {
          target = fs.readlinkSync(this.join(next));
        } catch {
          return { problem: { kind: 'symlink' } };
        }
        // posix.normalize of an absolute path never climbs above "/": the root stays the root.
        const resolved = posix.normalize(posix.isAbsolute(target) ? target : posix.join(cur, target));
        todo = [...resolved.split('/').filter(Boolean), ...todo];
        cur = '/';
        continue;
      }
      if (!st.isDirectory()) return { problem: { kind: 'other' } };
      cur = next;
    }
    return { path: posix.join(cur, last) };
  }

  /** Where a host path is on this machine; its directories are resolved inside the root. */
  real(hostPath: string): string {
    const p = assertHostPath(hostPath);
    const r = this.resolveParent(p);
    return this.join('path' in r ? r.path : p);
  }

  stat(hostPath: string): FileState {
    const p = assertHostPath(hostPath);
    const parent = this.resolveParent(p);
    if ('problem' in parent) return parent.problem;
    const real = this.join(parent.path);
    const st = this.lstatReal(real);
    if (st === undefined) return { kind: 'missing' };
    if ('errno' in st) return { kind: 'unreadable', errno: st.errno };
    if (st.isSymbolicLink()) {
      // A link that resolves to a directory inside the root is that directory (resolveParent only
      // passes through directories); a link to a file, or a dangling one, is refused.
      return 'path' in this.resolveParent(`${p}/x`) ? { kind: 'directory' } : { kind: 'symlink' };
    }
    if (st.isDirectory()) return { kind: 'directory' };
    if (!st.isFile()) return { kind: 'other' };
    if (st.size > MAX_READ_BYTES) return { kind: 'other' };
    try {
      const fd = this.openNoAtime(real);
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

  /**
   * Opens for reading without moving the file's access time (O_NOATIME): the kubelet's read of its
   * config.json is observed by that time (report/effective.ts), so the agent's own reads must not
   * move it. O_NOATIME needs the file's owner or CAP_FOWNER; without them the read still happens and
   * atimeTrusted turns false for good.
   */
  private openNoAtime(real: string): number {
    const flags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;
    if (noAtimeWorks) {
      try {
        return fs.openSync(real, flags | NOATIME);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
        noAtimeWorks = false;
      }
    }
    return fs.openSync(real, flags);
  }

  /** False once a read of this process (any HostFs) may have moved a file's access time (see openNoAtime). */
  get atimeTrusted(): boolean {
    return noAtimeWorks;
  }

  /** The regular file's access and modification times (ms), without reading it; undefined when it is not one. */
  times(hostPath: string): { atimeMs: number; mtimeMs: number } | undefined {
    const st = this.regularFile(hostPath);
    return st ? { atimeMs: st.atimeMs, mtimeMs: st.mtimeMs } : undefined;
  }

  /**
   * When the regular file at `hostPath` was last modified, or undefined when it is missing, not a
   * regular file (a symlink is not followed) or cannot be read. Reads the metadata only.
   */
  modifiedAt(hostPath: string): Date | undefined {
    return this.regularFile(hostPath)?.mtime;
  }

  /** The metadata of the regular file at `hostPath` (its directories resolved, the file itself not followed). */
  private regularFile(hostPath: string): fs.Stats | undefined {
    const parent = this.resolveParent(assertHostPath(hostPath));
    if ('problem' in parent) return undefined;
    const st = this.lstatReal(this.join(parent.path));
    return st !== undefined && !('errno' in st) && st.isFile() ? st : undefined;
  }

  private lstatReal(real: string): fs.Stats | { errno: string } | undefined {
    try {
      return fs.lstatSync(real);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      return { errno: code };
    }
  }

  /** Snapshot of the given paths and all their ancestors. */
  snapshot(paths: Iterable<string>): HostSnapshot {
    return snapshotPaths(paths, (p) => this.stat(p));
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
