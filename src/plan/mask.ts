import { isJsonObject, parseJsonObject } from './json.ts';

const SECRET_FIELDS = new Set(['auth', 'password', 'identitytoken', 'registrytoken', 'identityToken', 'registryToken']);

/** `****` plus the last 4 characters, the hint operators know from the platform's UI. */
export function maskValue(value: string): string {
  return value.length <= 8 ? '****' : `****${value.slice(-4)}`;
}

function maskJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(maskJson);
  if (!isJsonObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) out[k] = SECRET_FIELDS.has(k) && typeof val === 'string' ? maskValue(val) : maskJson(val);
  return out;
}

/**
 * A file's content as it may be shown to a person: every credential value masked. `known`
 * secrets are masked wherever they appear, as a second line of defence.
 */
export function maskFile(path: string, bytes: Uint8Array, known: readonly string[] = []): string {
  let text: string;
  const doc = path.endsWith('.json') || path.endsWith('.dockercfg') ? parseJsonObject(bytes) : undefined;
  if (doc) text = `${JSON.stringify(maskJson(doc), null, '\t')}\n`;
  else text = Buffer.from(bytes).toString('utf8').replace(/(Basic|Bearer)\s+([A-Za-z0-9+/=._~-]+)/g, (_m, kind: string, v: string) => `${kind} ${maskValue(v)}`);
  return maskKnown(text, known);
}

export function maskKnown(text: string, known: readonly string[]): string {
  let out = text;
  for (const s of [...known].filter((k) => k.length >= 4).sort((a, b) => b.length - a.length)) out = out.split(s).join(maskValue(s));
  return out;
}
