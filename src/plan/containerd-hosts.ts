import { stringify } from 'smol-toml';
import type { RegistryCredential } from '../model/credential.ts';
import { serverUrl } from '../model/registry-endpoint.ts';
import { encodeAuth } from '../model/basic-auth.ts';
import type { HostOptions } from '../model/host-options.ts';

export const HOSTS_TOML_HEADER =
  '# Managed by node-registry-credentials: edits are overwritten, and the file is removed on uninstall.\n';

/**
 * containerd's hosts.toml for one registry: ONE host, the top-level `server`, carrying the CA,
 * skip_verify and the header, with every capability (pull, resolve, push) as containerd gives
 * its default host. containerd always appends the top-level server as a host of its own, so a
 * `[host."…"]` table for the same registry would make a second host (failed requests sent twice,
 * the second host's error shown, one of them without the CA). The empty `[host]` table is there
 * because containerd 1.6 refuses a file without one; 1.7 and 2.x read it as no extra host.
 * The CA is referenced relatively ("ca.crt") so the file stays right whatever path the host's /
 * is mounted at in the agent's container. Every value goes through the TOML writer, so no input
 * can inject TOML.
 */
export function renderHostsToml(options: HostOptions, credential: RegistryCredential | undefined): string {
  const doc: Record<string, unknown> = { server: serverUrl(options.host) };
  if (options.ca !== undefined) doc['ca'] = 'ca.crt';
  if (options.skipVerify) doc['skip_verify'] = true;
  if (options.authHeader && credential !== undefined) {
    doc['header'] = { Authorization: [`Basic ${encodeAuth(credential.username, credential.password)}`] };
  }
  doc['host'] = {};
  return HOSTS_TOML_HEADER + stringify(doc);
}
