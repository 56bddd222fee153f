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

/**
 * Masks every occurrence of the known secrets in one pass over the text, longest match first.
 * (One split/join per secret was quadratic: minutes for a Secret with 100,000 entries.)
 */
export function maskKnown(text: string, known: readonly string[]): string {
  const byLength = new Map<number, Set<string>>();
  for (const k of known) {
    if (k.length < 4) continue;
    let set = byLength.get(k.length);
    if (!set) byLength.set(k.length, (set = new Set()));
    set.add(k);
  }
  if (byLength.size === 0) return text;
  const lengths = [...byLength.keys()].sort((a, b) => b - a);
  // Only positions where some secret can start are tried.
  const firsts = new Set(known.filter((k) => k.length >= 4).map((k) => k[0]!));
  const parts: string[] = [];
  let copied = 0;
  for (let i = 0; i < text.length; i++) {
    if (!firsts.has(text[i]!)) continue;
    for (const len of lengths) {
      if (i + len > text.length) continue;
      const candidate = text.slice(i, i + len);
      if (!byLength.get(len)!.has(candidate)) continue;
      parts.push(text.slice(copied, i), maskValue(candidate));
      copied = i + len;
      i = copied - 1;
      break;
    }
  }
  if (copied === 0) return text;
  parts.push(text.slice(copied));
  return parts.join('');
}
