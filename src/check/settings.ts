import type { CredentialCheckerOptions } from './credential-check.ts';
import type { CheckPolicy } from './policy.ts';

/** The credential check as configured (commands/config.ts builds it from the flags). */
export interface CheckSettings {
  readonly enabled: boolean;
  readonly checker: CredentialCheckerOptions;
  readonly policy: CheckPolicy;
}
