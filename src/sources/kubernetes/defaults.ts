// The platform's docker-config Secret. Kept apart from secret-source.ts so that `run` can name
// it in its flags without loading @kubernetes/client-node (about 80 MiB of RSS) when no
// Kubernetes source is in use.
export const DEFAULT_SECRET_NAMESPACE = 'okteto';
export const DEFAULT_SECRET_NAME = 'okteto-dockerconfig-static';
