// What the agent does with check results: coded errors for the report (metric, Event, Node
// annotation, doctor) and, when the operator enables it, leaving a rejected Docker Hub credential
// out of the plan (a wrong Docker Hub credential on a node breaks even public pulls).
import { AgentError } from '../errors.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { DOCKER_HUB_HOST } from '../model/registry-key.ts';
import type { CheckResult } from './credential-check.ts';

export interface CheckPolicy {
  /** Do not write a Docker Hub credential that Docker Hub rejected. */
  readonly dropRejectedDockerHub: boolean;
}

/** One coded error per rejected or unreachable result; valid and not-checked give none. */
export function checkErrors(results: readonly CheckResult[]): AgentError[] {
  const out: AgentError[] = [];
  for (const r of results) {
    if (r.status === 'rejected') out.push(new AgentError('NRC_E_CREDENTIAL_REJECTED', { subject: r.key, detail: r.detail }));
    else if (r.status === 'unreachable') out.push(new AgentError('NRC_E_CREDENTIAL_CHECK_FAILED', { subject: r.key, detail: r.detail }));
  }
  return out;
}

/**
 * The planner-input hook: the credentials to write, minus (with dropRejectedDockerHub) the Docker
 * Hub ones whose last check was `rejected`. An unreachable or unchecked credential is always kept:
 * a network blip must not remove a working credential.
 */
export function dropRejected(
  credentials: readonly RegistryCredential[],
  results: readonly CheckResult[],
  policy: CheckPolicy,
): { credentials: RegistryCredential[]; dropped: AgentError[] } {
  if (!policy.dropRejectedDockerHub) return { credentials: [...credentials], dropped: [] };
  const rejected = new Set(results.filter((r) => r.status === 'rejected').map((r) => r.key));
  const kept: RegistryCredential[] = [];
  const dropped: AgentError[] = [];
  for (const c of credentials) {
    if (c.host === DOCKER_HUB_HOST && rejected.has(c.key)) dropped.push(new AgentError('NRC_E_CREDENTIAL_DROPPED', { subject: c.key }));
    else kept.push(c);
  }
  return { credentials: kept, dropped };
}

/** One line per result, for doctor and the check command (no secret can appear: results hold none). */
export function formatCheckResults(results: readonly CheckResult[]): string {
  if (results.length === 0) return 'no credentials to check\n';
  const width = Math.max(...results.map((r) => r.key.length), 8);
  return results
    .map((r) => {
      const mark = r.status === 'rejected' ? '!!' : r.status === 'unreachable' ? ' !' : '  ';
      return `${mark} ${r.key.padEnd(width)}  ${r.status.padEnd(11)}  ${r.detail}${r.cached ? ' (cached)' : ''}\n`;
    })
    .join('');
}
