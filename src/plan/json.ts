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

/** Deeper than any docker config: such a document would overflow the stack when cloned or compared. */
export const MAX_JSON_DEPTH = 64;

/** True when a parsed value nests deeper than `max` (checked without recursion). */
export function tooDeep(v: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [cur, depth] = stack.pop()!;
    if (typeof cur !== 'object' || cur === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(cur)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

export function parseJsonObject(bytes: Uint8Array): JsonObject | undefined {
  try {
    const doc: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    return isJsonObject(doc) && !tooDeep(doc) ? doc : undefined;
  } catch {
    return undefined;
  }
}
