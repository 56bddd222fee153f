import { DOCKER_HUB_HOST } from './registry-key.ts';

// The one answer to "where is this registry host reached": containerd's hosts.toml `server`
// and the credential check's /v2/ base. Docker Hub's API lives on registry-1.docker.io.
/** The URL containerd (and the credential check) talks to for a registry host. */
export function serverUrl(host: string): string {
  return host === DOCKER_HUB_HOST ? 'https://registry-1.docker.io' : `https://${host}`;
}
