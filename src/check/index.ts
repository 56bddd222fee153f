// The credential check's public surface: the checker, its policy, and the gate `run` puts between the sources and the planner.
export { CredentialChecker, parseChallenges, type CheckResult, type CheckStatus, type CredentialCheckerOptions, type NotCheckedReason } from './credential-check.ts';
export { checkErrors, dropRejected, formatCheckResults, type CheckPolicy } from './policy.ts';
export { CredentialGate, type CredentialGateOptions } from './gate.ts';
export type { CheckSettings } from './settings.ts';
export { TokenBucket } from './rate-limit.ts';
