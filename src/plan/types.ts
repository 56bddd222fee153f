import type { AgentError } from '../errors.ts';
import type { RegistryCredential } from '../model/credential.ts';
import type { HostSnapshot } from '../model/host-state.ts';
import type { HostOptions } from '../model/host-options.ts';
import type { FileChange } from '../model/apply-report.ts';
import type { Targets } from '../model/targets.ts';
import type { OwnershipRecord } from './ownership.ts';

export interface PlanInput {
  /** Merged, de-duplicated credentials (one per key). Empty for cleanup. */
  readonly credentials: readonly RegistryCredential[];
  readonly hostOptions: ReadonlyMap<string, HostOptions>;
  readonly targets: Targets;
  readonly snapshot: HostSnapshot;
  readonly record: OwnershipRecord;
  /** Remove everything the agent owns, including its record. */
  readonly cleanup?: boolean;
}

export type Operation =
  | { readonly op: 'mkdir'; readonly path: string }
  | {
      readonly op: 'write';
      readonly path: string;
      readonly bytes: Uint8Array;
      readonly mode: number;
      /** Keep the owner of a file that existed; undefined means the agent's own (root). */
      readonly uid?: number;
      readonly gid?: number;
    }
  | { readonly op: 'delete'; readonly path: string }
  | { readonly op: 'rmdir'; readonly path: string };

export interface Plan {
  /** In execution order: mkdirs (shallow first), writes, deletes, rmdirs (deep first). */
  readonly operations: readonly Operation[];
  /** The record once the operations are done; undefined when it is to be deleted (cleanup). */
  readonly record: OwnershipRecord | undefined;
  readonly changes: readonly FileChange[];
  /** Per-entry and per-target problems; other targets and entries are still planned. */
  readonly errors: readonly AgentError[];
}
