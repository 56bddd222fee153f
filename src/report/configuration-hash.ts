import { createHash, scrypt } from 'node:crypto';
import type { RegistryCredential } from '../model/credential.ts';
import type { HostOptions } from '../model/host-options.ts';
import { collate } from '../model/collate.ts';

let lastHash: { material: string; hash: Promise<string> } | undefined;

/**
 * A hash of what is configured (keys, hosts, credentials, host options), equal on every node
 * that applied the same configuration. It is published on the Node, so it is stretched with
 * scrypt: testing a guessed password against it costs tens of milliseconds and needs every other
 * credential of the configuration too. Computed once per distinct configuration, on libuv's
 * thread pool so that the event loop (the next change) never waits for it.
 */
export function configurationHash(material: string): Promise<string> {
  if (lastHash?.material === material) return lastHash.hash;
  const hash = new Promise<string>((resolve, reject) => {
    scrypt(material, 'node-registry-credentials/applied-hash/v1', 8, { N: 2 ** 14, r: 8, p: 1 }, (err, key) => (err ? reject(err) : resolve(key.toString('hex'))));
  });
  lastHash = { material, hash };
  return hash;
}

/** True when configurationHash answers from its cache, without a scrypt. */
export function configurationHashKnown(material: string): boolean {
  return lastHash?.material === material;
}

/** What configurationHash stretches: a SHA-256 over the sorted configuration (cheap next to scrypt, linear in the registries). */
export function configurationMaterial(credentials: readonly RegistryCredential[], hostOptions: ReadonlyMap<string, HostOptions>): string {
  const h = createHash('sha256');
  for (const c of [...credentials].sort((a, b) => collate(a.key, b.key))) {
    h.update(JSON.stringify([c.key, c.username, c.password, c.identityToken ?? '', ...(c.namespaces ? [c.namespaces] : [])]));
  }
  for (const o of [...hostOptions.values()].sort((a, b) => collate(a.host, b.host))) h.update(JSON.stringify(o));
  return h.digest('hex');
}
