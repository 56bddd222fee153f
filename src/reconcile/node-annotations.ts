// The Node annotations the agent writes (node-status.ts) and `status` reads. Kept apart from
// node-status.ts so that importing them does not load @kubernetes/client-node (issue 7).
export const ANNOTATION_PREFIX = 'registry-credentials.okteto.com/';
export const ANNOTATION_HASH = `${ANNOTATION_PREFIX}applied-hash`;
export const ANNOTATION_AT = `${ANNOTATION_PREFIX}applied-at`;
export const ANNOTATION_ERRORS = `${ANNOTATION_PREFIX}last-errors`;
