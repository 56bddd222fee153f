// The Node annotations the agent writes (node-status.ts) and `status` reads. Kept apart from
// node-status.ts so that importing them does not load @kubernetes/client-node (issue 7).
export const ANNOTATION_PREFIX = 'registry-credentials.okteto.com/';
export const ANNOTATION_HASH = `${ANNOTATION_PREFIX}applied-hash`;
export const ANNOTATION_AT = `${ANNOTATION_PREFIX}applied-at`;
export const ANNOTATION_ERRORS = `${ANNOTATION_PREFIX}last-errors`;

/**
 * Token expiries of the node's time-limited credentials (ECR): `host=ISO-8601` pairs, comma-separated,
 * sorted by host. Written by the node-status reporter with formatTokenExpiries().
 */
export const ANNOTATION_TOKEN_EXPIRIES = `${ANNOTATION_PREFIX}token-expiries`;

export function formatTokenExpiries(expiries: ReadonlyMap<string, Date>): string | null {
  if (expiries.size === 0) return null;
  return [...expiries].sort(([a], [b]) => a.localeCompare(b)).map(([host, at]) => `${host}=${at.toISOString()}`).join(',');
}

export function parseTokenExpiries(value: string | undefined): { registry: string; expiresAt: Date }[] {
  if (!value) return [];
  const out: { registry: string; expiresAt: Date }[] = [];
  for (const part of value.split(',')) {
    const i = part.lastIndexOf('=');
    if (i <= 0) continue;
    const at = new Date(part.slice(i + 1).trim());
    if (!Number.isNaN(at.getTime())) out.push({ registry: part.slice(0, i).trim(), expiresAt: at });
  }
  return out;
}
