import type { Flags, FlagSpec } from '../commands/options.ts';
import { str } from '../commands/options.ts';
import type { CredentialCheckerOptions } from './credential-check.ts';
import type { CheckPolicy } from './policy.ts';

/** Flags of the credential check (for `run`, and the `check` command). */
export const CHECK_FLAGS: readonly FlagSpec[] = [
  { name: 'check-credentials', type: 'boolean', help: "Check each credential against its registry's /v2/ (Basic or Bearer token flow) after it changes; results go to metrics, Events, Node annotations." },
  { name: 'check-timeout-ms', type: 'string', default: '5000', help: 'Timeout of each HTTP request of a credential check.' },
  { name: 'drop-rejected-docker-hub', type: 'boolean', help: 'Do not write a Docker Hub credential that Docker Hub rejects (a wrong one breaks public pulls). Needs --check-credentials.' },
];

export interface CheckSettings {
  readonly enabled: boolean;
  readonly checker: CredentialCheckerOptions;
  readonly policy: CheckPolicy;
}

export function checkSettingsFromFlags(f: Flags): CheckSettings {
  const timeout = Number(str(f, 'check-timeout-ms') ?? 5000);
  return {
    enabled: f['check-credentials'] === true,
    checker: { timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 5000 },
    policy: { dropRejectedDockerHub: f['check-credentials'] === true && f['drop-rejected-docker-hub'] === true },
  };
}
