/** The claims of a JWT (a service-account token), unverified: what a fake STS trust policy checks. */
export function jwtClaims(token: string): { aud?: string[]; sub?: string } {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud?: string[]; sub?: string };
  } catch {
    return {};
  }
}

/**
 * A fake IAM role's trust policy for FakeAws's acceptWebIdentity: the role it is for, and the
 * token's `aud` and `sub` claims (`sub` = system:serviceaccount:NAMESPACE:NAME).
 */
export function trustPolicy(p: { roleArn: string; audience: string; sub: string }): (token: string, roleArn: string) => boolean {
  return (token, roleArn) => {
    const c = jwtClaims(token);
    return roleArn === p.roleArn && (c.aud ?? []).includes(p.audience) && c.sub === p.sub;
  };
}
