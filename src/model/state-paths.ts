// The agent's own files on the host (host paths, under the host root).
/** Where the agent keeps its ownership record, under the host root. */
export const STATE_DIR = '/var/lib/node-registry-credentials';
export const RECORD_PATH = `${STATE_DIR}/ownership.json`;
/** The ECR source's token cache (restart reuse); holds tokens, so cleanup removes it. */
export const ECR_CACHE_PATH = `${STATE_DIR}/ecr-tokens.json`;
/**
 * Provider mode: the CredentialProviderResponse the kubelet's credential provider plugin
 * (examples/credential-provider) prints, exactly; its sha256 is in PROVIDER_DIGEST_SUFFIX beside it.
 */
export const PROVIDER_RESPONSE_PATH = `${STATE_DIR}/provider/response.json`;
/** `sha256sum` format ("<hex>  response.json"): the plugin serves the response only when it matches. */
export const PROVIDER_DIGEST_SUFFIX = '.sha256';
