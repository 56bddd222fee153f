// The credential check's public surface (wired into the Reconciler by run).
export { CredentialChecker, parseChallenges, registryEndpoint, type CheckResult, type CheckStatus, type CredentialCheckerOptions, type NotCheckedReason } from './credential-check.ts';
export { checkErrors, dropRejected, formatCheckResults, type CheckPolicy } from './policy.ts';
export { CHECK_FLAGS, checkSettingsFromFlags, type CheckSettings } from './options.ts';
export { createCheckMetrics, recordCheckResults, type CheckMetrics } from './metrics.ts';
export { TokenBucket, type Clock } from './rate-limit.ts';
