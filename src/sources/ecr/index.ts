// The ECR source's public surface, for `run`, `render`/`doctor` and the Registry-CR source.
export { EcrSource, ECR_SOURCE_NAME, type EcrSourceOptions, type EcrRegistryStatus } from './source.ts';
export type { EcrRegistrySpec, StoredToken, TokenCache } from './types.ts';
export { KubernetesServiceAccountTokenProvider, type KubernetesServiceAccountTokenOptions } from './sa-token.ts';
export type { ServiceAccountTokenProvider, AwsFetcherOptions } from './aws.ts';
export { parseEcrHost, isEcrHost, type EcrHost } from './hostname.ts';
