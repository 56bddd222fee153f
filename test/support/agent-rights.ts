// The agent's documented rights (docs/agent-rights.json) and RBAC rules as sets of atomic
// "group resource name verb" tuples, so rules can be compared whatever their grouping.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './e2e-prereqs.ts';

export interface Rule {
  readonly apiGroups?: readonly string[];
  readonly resources?: readonly string[];
  readonly resourceNames?: readonly string[];
  readonly verbs: readonly string[];
  readonly nonResourceURLs?: readonly string[];
}

export interface AgentRights {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly namespaced: readonly Rule[];
  readonly cluster: readonly Rule[];
}

export const AGENT_RIGHTS: AgentRights = JSON.parse(readFileSync(join(REPO_ROOT, 'docs', 'agent-rights.json'), 'utf8')) as AgentRights;

/** Sorted atoms `group|resource|name|verb` (name `*` = any); non-resource rules as `url:<path>|verb`. */
export function atoms(rules: readonly Rule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const verb of r.verbs) {
      for (const url of r.nonResourceURLs ?? []) out.add(`url:${url}|${verb}`);
      for (const group of r.apiGroups ?? []) {
        for (const resource of r.resources ?? []) {
          const names = r.resourceNames && r.resourceNames.length > 0 ? r.resourceNames : ['*'];
          for (const name of names) out.add(`${group}|${resource}|${name}|${verb}`);
        }
      }
    }
  }
  return [...out].sort();
}
