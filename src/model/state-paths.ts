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
/**
 * Provider mode with namespace scoping: `<namespace>.json` (+ its digest) per namespace that has
 * scoped credentials, the whole answer for that namespace's pods (node-wide + its scoped ones).
 * The plugin serves it to a request whose service-account token names that namespace.
 */
export const PROVIDER_NAMESPACES_DIR = `${STATE_DIR}/provider/namespaces`;
/**
 * Provider mode: the file the credential provider plugin touches at each valid request of the
 * kubelet (NRC_PROVIDER_ASKED in examples/credential-provider/credential-provider-config.yaml), so
 * that the node itself shows whether the kubelet asks the plugin (its mtime: the last request).
 * It is the node bootstrap's file, not the agent's: beside the agent's files but never in its
 * ownership record, so `cleanup` neither removes nor restores it, and outside provider/ (which the
 * agent creates and removes) so that the plugin can touch it before the agent's first provider
 * write (the DaemonSet's hostPath creates this directory). The agent only reads its mtime.
 */
export const PROVIDER_ASKED_PATH = `${STATE_DIR}/provider-asked`;
