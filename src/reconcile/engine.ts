import { AgentError } from '../errors.ts';
import { applyPlan, readRecord, type ApplyResult } from '../host/apply.ts';
import type { HostFs } from '../host/host-fs.ts';
import type { HostSnapshot } from '../model/host-state.ts';
import type { RegistryCredential, SourceSnapshot } from '../model/credential.ts';
import { resolveScope } from '../model/scope.ts';
import type { OwnershipRecord } from '../plan/ownership.ts';
import { pathsToSnapshot, plan as makePlan } from '../plan/planner.ts';
import type { Plan } from '../plan/types.ts';
import type { HostOptions } from '../model/host-options.ts';
import { detectTargets, type DetectedTargets, type TargetOptions } from '../runtime/targets.ts';

/**
 * Merges sources in precedence order: for one registry key, the first source that has it wins.
 * Namespace-scoped credentials are kept apart, all of them in that order (the planner takes the
 * first per key and namespace), their selectors resolved with what the broker published.
 */
export function mergeSnapshots(snapshots: readonly SourceSnapshot[]): { credentials: RegistryCredential[]; errors: AgentError[] } {
  const byKey = new Map<string, RegistryCredential>();
  const scoped: RegistryCredential[] = [];
  const errors: AgentError[] = [];
  const selectors: Record<string, readonly string[]> = Object.assign({}, ...snapshots.map((s) => s.selectors ?? {}));
  for (const s of snapshots) {
    errors.push(...s.errors);
    for (const c of s.credentials) {
      if (c.namespaces !== undefined) scoped.push(c.namespaceSelector === undefined ? c : { ...c, namespaces: resolveScope({ namespaces: c.namespaces, namespaceSelector: c.namespaceSelector }, selectors) });
      else if (!byKey.has(c.key)) byKey.set(c.key, c);
    }
  }
  return { credentials: [...byKey.values(), ...scoped], errors };
}

export interface ReconcileInput {
  readonly host: HostFs;
  readonly credentials: readonly RegistryCredential[];
  readonly hostOptions: ReadonlyMap<string, HostOptions>;
  readonly targetOptions: TargetOptions;
  readonly cleanup?: boolean;
}

export interface Planned {
  readonly plan: Plan;
  readonly snapshot: HostSnapshot;
  readonly record: OwnershipRecord;
  readonly detected: DetectedTargets;
  /** Every problem found planning, in report order: the targets' (runtime detection), then the plan's. */
  readonly problems: readonly AgentError[];
}

/** Reads the host and plans. A corrupt ownership record stops everything: nothing is guessed. */
export function planOnHost(input: ReconcileInput): Planned | AgentError {
  const record = readRecord(input.host);
  if (record instanceof AgentError) return record;
  const detected = detectTargets(input.host, input.targetOptions);
  const base = { credentials: input.credentials, hostOptions: input.hostOptions, targets: detected.targets, record, ...(input.cleanup ? { cleanup: true } : {}) };
  const snapshot = input.host.snapshot(pathsToSnapshot(base));
  const plan = makePlan({ ...base, snapshot });
  return { plan, snapshot, record, detected, problems: [...detected.problems, ...plan.errors] };
}

export interface Reconciled extends Planned {
  readonly result: ApplyResult;
  /** One list, in report order: the problems of planning, then the writes that failed. */
  readonly errors: readonly AgentError[];
}

export function reconcileOnce(input: ReconcileInput): Reconciled | AgentError {
  const planned = planOnHost(input);
  if (planned instanceof AgentError) return planned;
  const result = applyPlan(input.host, planned.record, planned.plan);
  return { ...planned, result, errors: [...planned.problems, ...result.errors] };
}
