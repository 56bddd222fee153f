/** JSON helpers for the planner: stable comparison and the docker CLI's formatting. */

export type JsonObject = Record<string, unknown>;

export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Canonical text (sorted keys) so that two documents compare equal whatever their key order. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isJsonObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export const jsonEqual = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);

/** The docker CLI writes config.json with tab indentation; stay close to it. */
export function formatDockerConfig(doc: JsonObject): Uint8Array {
  return Buffer.from(`${JSON.stringify(doc, null, '\t')}\n`, 'utf8');
}

export function parseJsonObject(bytes: Uint8Array): JsonObject | undefined {
  try {
    const doc: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    return isJsonObject(doc) ? doc : undefined;
  } catch {
    return undefined;
  }
}
