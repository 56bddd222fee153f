// The platform's docker-config Secret. Kept apart from secret-source.ts so that `run` can name
// it in its flags without loading @kubernetes/client-node (about 80 MiB of RSS) when no
// Kubernetes source is in use.
export const DEFAULT_SECRET_NAMESPACE = 'okteto';
export const DEFAULT_SECRET_NAME = 'okteto-dockerconfig-static';
/** The cluster broker's names: its Deployment, ServiceAccount, Lease and output Secret. */
export const BROKER_NAME = 'node-registry-credentials-broker';
export const DEFAULT_BROKER_SECRET_NAME = BROKER_NAME;
/** The node agent's own ServiceAccount (the DaemonSet's). */
export const AGENT_SERVICE_ACCOUNT = 'node-registry-credentials';
/** On the broker's Secret: JSON {"<registry key>": "<RFC 3339>"}, when each time-limited credential (ECR token) expires. */
export const EXPIRIES_ANNOTATION = 'registry-credentials.okteto.com/expiries';
