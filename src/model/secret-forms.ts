import { encodeAuth } from './basic-auth.ts';
import type { RegistryCredential } from './credential.ts';

/** Every secret value the inputs carry, to mask in anything shown to a person. */
export function secretsOf(credentials: readonly Pick<RegistryCredential, 'username' | 'password' | 'identityToken'>[]): string[] {
  return credentials.flatMap((c) => [c.password, encodeAuth(c.username, c.password), ...(c.identityToken ? [c.identityToken] : [])]);
}
