import { createHash } from 'node:crypto';
import type { RegistryCredential } from './credential.ts';

/** A one-way identifier of secret parts (sha256 of the parts joined by NUL): notices a change without keeping the secret. */
export function fingerprintOf(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

/** The fingerprint of a credential, kept in memory only to notice that it changed. */
export function credentialFingerprint(c: RegistryCredential): string {
  return fingerprintOf([c.key, c.username, c.password, c.identityToken ?? '']);
}
