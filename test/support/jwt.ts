/** The claims of a JWT (a service-account token), unverified: what a fake STS trust policy checks. */
export function jwtClaims(token: string): { aud?: string[]; sub?: string } {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud?: string[]; sub?: string };
  } catch {
    return {};
  }
}
