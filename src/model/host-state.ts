import { posix } from 'node:path';

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

/** The states of the given paths and of all their ancestors, each read once with `stat`. */
export function snapshotPaths(paths: Iterable<string>, stat: (hostPath: string) => FileState): HostSnapshot {
  const out = new Map<string, FileState>();
  for (const p of paths) {
    for (const a of [...ancestors(p), p]) if (!out.has(a)) out.set(a, stat(a));
  }
  return out;
}
