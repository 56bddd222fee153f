import type { FileState, HostSnapshot } from '../../src/model/host-state.ts';
import { ancestors, snapshotPaths } from '../../src/model/host-state.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { normalizeRegistryKey } from '../../src/model/registry-key.ts';
import { EMPTY_RECORD, type OwnershipRecord } from '../../src/plan/ownership.ts';
import { PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { pathsToSnapshot, plan } from '../../src/plan/planner.ts';
import type { HostOptions } from '../../src/model/host-options.ts';
import type { Targets } from '../../src/model/targets.ts';
import type { Plan, PlanInput } from '../../src/plan/types.ts';

/** A host described by path → content; 'dir' and 'symlink' stand for those kinds. */
export type HostSpec = Record<string, string | 'dir' | 'symlink' | { text: string; mode: number; uid: number }>;

export const TARGETS: Targets = {
  kubeletConfig: '/var/lib/kubelet/config.json',
  kubeletFallbacks: ['/config.json', '/root/.docker/config.json', '/.docker/config.json', '/var/lib/kubelet/.dockercfg'],
  dockerConfig: '/root/.docker/config.json',
  containerdHostsDir: '/etc/containerd/certs.d',
  certsDirs: ['/etc/docker/certs.d'],
};

/** The same node in provider mode (--kubelet-credentials provider). */
export const PROVIDER_TARGETS: Targets = { ...TARGETS, providerResponse: PROVIDER_RESPONSE_PATH };

export function cred(rawKey: string, username: string, password: string): RegistryCredential {
  const k = normalizeRegistryKey(rawKey);
  if ('code' in k) throw k;
  return { key: k.key, host: k.host, username, password, source: 'test' };
}

export function options(host: string, o: Partial<Omit<HostOptions, 'host'>> = {}): [string, HostOptions] {
  return [host, { host, skipVerify: false, authHeader: false, ...o }];
}

/** An in-memory host: enough of a filesystem to apply plans to. */
export class MemoryHost {
  readonly files = new Map<string, FileState>();
  record: OwnershipRecord = EMPTY_RECORD;

  constructor(spec: HostSpec = {}) {
    for (const [path, v] of Object.entries(spec)) {
      for (const a of ancestors(path)) if (!this.files.has(a)) this.files.set(a, { kind: 'directory' });
      if (v === 'dir') this.files.set(path, { kind: 'directory' });
      else if (v === 'symlink') this.files.set(path, { kind: 'symlink' });
      else if (typeof v === 'string') this.files.set(path, { kind: 'file', bytes: Buffer.from(v), mode: 0o644, uid: 0, gid: 0 });
      else this.files.set(path, { kind: 'file', bytes: Buffer.from(v.text), mode: v.mode, uid: v.uid, gid: v.uid });
    }
  }

  /** An independent copy (files, modes, owners and the record). */
  clone(): MemoryHost {
    const copy = new MemoryHost();
    for (const [path, st] of this.files) copy.files.set(path, st.kind === 'file' ? { ...st, bytes: Uint8Array.from(st.bytes) } : st);
    copy.record = structuredClone(this.record);
    return copy;
  }

  /** The state of one path as HostFs would report it: below a symlink is 'symlink'. */
  stat(path: string): FileState {
    const below = ancestors(path).find((x) => this.files.get(x)?.kind === 'symlink');
    return below ? { kind: 'symlink' } : (this.files.get(path) ?? { kind: 'missing' });
  }

  /** Like HostFs.snapshot (the same snapshotPaths), over the in-memory files. */
  snapshot(paths: Iterable<string>): HostSnapshot {
    return snapshotPaths(paths, (p) => this.stat(p));
  }

  text(path: string): string | undefined {
    const st = this.files.get(path);
    return st?.kind === 'file' ? Buffer.from(st.bytes).toString('utf8') : undefined;
  }

  json(path: string): unknown {
    const t = this.text(path);
    return t === undefined ? undefined : JSON.parse(t);
  }

  /** Regular files, path → content. */
  listing(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [p, st] of [...this.files].sort(([a], [b]) => a.localeCompare(b))) if (st.kind === 'file') out[p] = Buffer.from(st.bytes).toString('utf8');
    return out;
  }

  apply(p: Plan): void {
    for (const op of p.operations) {
      if (op.op === 'mkdir') this.files.set(op.path, { kind: 'directory' });
      else if (op.op === 'write') this.files.set(op.path, { kind: 'file', bytes: op.bytes, mode: op.mode, uid: op.uid ?? 0, gid: op.gid ?? 0 });
      else if (op.op === 'delete') this.files.delete(op.path);
      else if (![...this.files.keys()].some((k) => k.startsWith(`${op.path}/`))) this.files.delete(op.path);
    }
    this.record = p.record ?? EMPTY_RECORD;
  }

  plan(input: { credentials?: RegistryCredential[]; hostOptions?: [string, HostOptions][]; targets?: Targets; cleanup?: boolean }): Plan {
    const base: Omit<PlanInput, 'snapshot'> = {
      credentials: input.credentials ?? [],
      hostOptions: new Map(input.hostOptions ?? []),
      targets: input.targets ?? TARGETS,
      record: this.record,
      ...(input.cleanup ? { cleanup: true } : {}),
    };
    return plan({ ...base, snapshot: this.snapshot(pathsToSnapshot(base)) });
  }

  /** Plans and applies; then checks that planning again changes nothing (the plan converged). */
  converge(input: Parameters<MemoryHost['plan']>[0]): Plan {
    const p = this.plan(input);
    this.apply(p);
    const again = this.plan(input);
    if (again.operations.length > 0) throw new Error(`plan did not converge: ${JSON.stringify(again.operations.map((o) => [o.op, o.path]))}`);
    return p;
  }
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');
export const dockerJson = (doc: unknown): string => `${JSON.stringify(doc, null, '\t')}\n`;
