// Provider mode: the credential provider's answer, a view of the same plan as config.json. The
// kubelet (1.34 pkg/credentialprovider/plugin/plugin.go) turns the answer's "auth" map into a
// DockerConfig and matches it with its own BasicDockerKeyring, exactly as it matches config.json
// keys, so the answer carries the raw keys the agent would write into config.json.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { KubeletCredential } from '../model/kubelet-config.ts';
import { PROVIDER_DIGEST_SUFFIX } from '../model/state-paths.ts';
import { isJsonObject } from './json.ts';

export const PROVIDER_API_VERSION = 'credentialprovider.kubelet.k8s.io/v1';

/**
 * The CredentialProviderResponse the plugin prints. cacheDuration "0s": the kubelet caches nothing
 * (plugin.go: an explicit 0 returns before the cache), so every pull reads the current state.
 * cacheKeyType "Global": the answer does not depend on the image (any valid type would do, as
 * nothing is cached; another value makes the kubelet discard the answer).
 */
export function renderProviderResponse(auth: ReadonlyMap<string, KubeletCredential>): Uint8Array {
  const entries: Record<string, { username: string; password: string }> = {};
  for (const key of [...auth.keys()].sort()) {
    const c = auth.get(key)!;
    entries[key] = { username: c.username, password: c.password };
  }
  const response = { kind: 'CredentialProviderResponse', apiVersion: PROVIDER_API_VERSION, cacheKeyType: 'Global', cacheDuration: '0s', auth: entries };
  return Buffer.from(`${JSON.stringify(response)}\n`, 'utf8');
}

/** The digest file beside the response, in `sha256sum` format (so `sha256sum -c` checks it by hand too). */
export function renderProviderDigest(responsePath: string, body: Uint8Array): Uint8Array {
  const hex = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`${hex}  ${posix.basename(responsePath)}\n`, 'utf8');
}

export const providerDigestPath = (responsePath: string): string => `${responsePath}${PROVIDER_DIGEST_SUFFIX}`;

/** The "auth" map of a response file the agent wrote, or undefined when it is not one. */
export function readProviderAuth(bytes: Uint8Array): ReadonlyMap<string, KubeletCredential> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isJsonObject(doc) || !isJsonObject(doc['auth'])) return undefined;
  const out = new Map<string, KubeletCredential>();
  for (const [key, value] of Object.entries(doc['auth'])) {
    if (!isJsonObject(value) || typeof value['username'] !== 'string' || typeof value['password'] !== 'string') return undefined;
    out.set(key, { username: value['username'], password: value['password'] });
  }
  return out;
}
