import type { AgentError } from '../errors.ts';
import type { Targets } from './targets.ts';

export type ChangeKind = 'create' | 'update' | 'delete' | 'restore';

/** A human-level description of one file's change, for logs and `apply` output (no secrets). */
export interface FileChange {
  readonly path: string;
  readonly change: ChangeKind;
  readonly added: readonly string[];
  readonly updated: readonly string[];
  readonly removed: readonly string[];
}

/** What one reconcile pass did: the reconciler emits it, logs, metrics and node status report it. */
export interface ApplyReport {
  readonly at: Date;
  readonly hash: string;
  readonly registries: number;
  readonly changes: readonly FileChange[];
  readonly bytesWritten: number;
  /** Entry and host problems (rejected entries, foreign directories, write failures). */
  readonly errors: readonly AgentError[];
  /** True when every write went through (entry errors do not count). */
  readonly hostOk: boolean;
  /** When each applied credential that expires (ECR tokens) stops working, by registry key. */
  readonly expiries: ReadonlyMap<string, Date>;
  /** Where this pass's outputs went (undefined when it could not plan). */
  readonly targets?: Targets;
}

/** What reporting needs of an error: its code and subject (registry host, file path), never a value. */
export interface ReportedError {
  readonly code: string;
  readonly subject?: string;
}

/** The part of an apply report that leaves the node (Node annotations and Events). */
export type PublishedReport = Pick<ApplyReport, 'hash' | 'at'> & {
  readonly errors: readonly ReportedError[];
  readonly expiries?: ApplyReport['expiries'];
};
