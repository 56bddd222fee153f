/** The base64 `user:password` of Basic auth: docker config's "auth" field and the Authorization header's value. */
export function encodeAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/** The `Authorization` header value for Basic auth. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${encodeAuth(username, password)}`;
}
