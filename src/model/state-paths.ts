// The agent's own files on the host (host paths, under the host root).
/** Where the agent keeps its ownership record, under the host root. */
export const STATE_DIR = '/var/lib/node-registry-credentials';
export const RECORD_PATH = `${STATE_DIR}/ownership.json`;
/** The ECR source's token cache (restart reuse); holds tokens, so cleanup removes it. */
export const ECR_CACHE_PATH = `${STATE_DIR}/ecr-tokens.json`;
