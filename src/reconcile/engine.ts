import { createHash, scryptSync } from 'node:crypto';
import { AgentError } from '../errors.ts';
import { applyPlan, readRecord, type ApplyResult } from '../host/apply.ts';
import type { HostFs } from '../host/host-fs.ts';
import type { HostSnapshot } from '../model/host-state.ts';
import type { RegistryCredential, SourceSnapshot } from '../model/credential.ts';
import type { OwnershipRecord } from '../plan/ownership.ts';
import { pathsToSnapshot, plan as makePlan } from '../plan/planner.ts';
import type { Plan } from '../plan/types.ts';
import type { HostOptions } from '../model/host-options.ts';
import { detectTargets, type DetectedTargets, type TargetOptions } from '../runtime/targets.ts';

/** Merges sources in precedence order: for one registry key, the first source that has it wins. */
export function mergeSnapshots(snapshots: readonly SourceSnapshot[]): { credentials: RegistryCredential[]; errors: AgentError[] } {
  const byKey = new Map<string, RegistryCredential>();
  const errors: AgentError[] = [];
  for (const s of snapshots) {
    errors.push(...s.errors);
    for (const c of s.credentials) if (!byKey.has(c.key)) byKey.set(c.key, c);
  }
  return { credentials: [...byKey.values()], errors };
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
}

/** Reads the host and plans. A corrupt ownership record stops everything: nothing is guessed. */
export function planOnHost(input: ReconcileInput): Planned | AgentError {
  const record = readRecord(input.host);
  if (record instanceof AgentError) return record;
  const detected = detectTargets(input.host, input.targetOptions);
  const base = { credentials: input.credentials, hostOptions: input.hostOptions, targets: detected.targets, record, ...(input.cleanup ? { cleanup: true } : {}) };
  const snapshot = input.host.snapshot(pathsToSnapshot(base));
  return { plan: makePlan({ ...base, snapshot }), snapshot, record, detected };
}

export interface Reconciled extends Planned {
  readonly result: ApplyResult;
}

export function reconcileOnce(input: ReconcileInput): Reconciled | AgentError {
  const planned = planOnHost(input);
  if (planned instanceof AgentError) return planned;
  return { ...planned, result: applyPlan(input.host, planned.record, planned.plan) };
}

let lastHash: { material: string; hash: string } | undefined;

/**
 * A hash of what is configured (keys, hosts, credentials, host options), equal on every node
 * that applied the same configuration. It is published on the Node, so it is stretched with
 * scrypt: testing a guessed password against it costs tens of milliseconds and needs every other
 * credential of the configuration too. Computed once per distinct configuration.
 */
export function configurationHash(credentials: readonly RegistryCredential[], hostOptions: ReadonlyMap<string, HostOptions>): string {
  const h = createHash('sha256');
  for (const c of [...credentials].sort((a, b) => a.key.localeCompare(b.key))) {
    h.update(JSON.stringify([c.key, c.username, c.password, c.identityToken ?? '']));
  }
  for (const o of [...hostOptions.values()].sort((a, b) => a.host.localeCompare(b.host))) h.update(JSON.stringify(o));
  const material = h.digest('hex');
  if (lastHash?.material === material) return lastHash.hash;
  const hash = scryptSync(material, 'node-registry-credentials/applied-hash/v1', 8, { N: 2 ** 14, r: 8, p: 1 }).toString('hex');
  lastHash = { material, hash };
  return hash;
}
