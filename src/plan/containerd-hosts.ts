import { stringify } from 'smol-toml';
import type { RegistryCredential } from '../model/credential.ts';
import { serverUrl } from '../model/registry-endpoint.ts';
import { encodeAuth } from '../model/basic-auth.ts';
import type { HostOptions } from '../model/host-options.ts';

export const HOSTS_TOML_HEADER =
  '# Managed by node-registry-credentials: edits are overwritten, and the file is removed on uninstall.\n';

/**
 * containerd's hosts.toml for one registry. The CA is referenced relatively ("ca.crt") so the
 * file stays right whatever path the host's / is mounted at in the agent's container.
 * Every value goes through the TOML writer, so no input can inject TOML.
 */
export function renderHostsToml(options: HostOptions, credential: RegistryCredential | undefined): string {
  const url = serverUrl(options.host);
  const hostTable: Record<string, unknown> = { capabilities: ['pull', 'resolve'] };
  if (options.ca !== undefined) hostTable['ca'] = 'ca.crt';
  if (options.skipVerify) hostTable['skip_verify'] = true;
  if (options.authHeader && credential !== undefined) {
    hostTable['header'] = { Authorization: [`Basic ${encodeAuth(credential.username, credential.password)}`] };
  }
  return HOSTS_TOML_HEADER + stringify({ server: url, host: { [url]: hostTable } });
}
