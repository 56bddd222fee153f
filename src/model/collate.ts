// The order String.prototype.localeCompare gives (ICU root collation, the image's default locale),
// without it for printable ASCII: its first call loads ICU's collation data, 3 MiB of RSS at rest
// (docs/benchmarks.md). The written files must keep that order byte for byte, or every node would
// rewrite its config.json after an upgrade.

/** Printable ASCII by ICU root primary weight, lowest first; a letter's two cases share one. */
const PRIMARY_ORDER = [' ', '_', '-', ',', ';', ':', '!', '?', '.', "'", '"', '(', ')', '[', ']', '{', '}', '@', '*', '/', '\\', '&', '#', '%', '`', '^', '+', '<', '=', '>', '|', '~', '$', ...'0123456789'];

/** Primary weight per code unit below 128; 0: not handled here (controls, DEL). */
const PRIMARY = new Uint8Array(128);
PRIMARY_ORDER.forEach((c, i) => (PRIMARY[c.charCodeAt(0)] = i + 1));
for (let i = 0; i < 26; i++) {
  PRIMARY[0x61 + i] = PRIMARY[0x41 + i] = PRIMARY_ORDER.length + 1 + i;
}

function handled(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || PRIMARY[c] === 0) return false;
  }
  return true;
}

/**
 * Compares like `a.localeCompare(b)` (same sign): primary weights over the whole strings first
 * (a shorter prefix first), then case, lowercase first. Anything but printable ASCII goes to
 * localeCompare itself.
 */
export function collate(a: string, b: string): number {
  if (!handled(a) || !handled(b)) return a.localeCompare(b);
  let tertiary = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const d = PRIMARY[x]! - PRIMARY[y]!;
    if (d !== 0) return d < 0 ? -1 : 1;
    // Same letter, other case: decides only if nothing else differs at the primary level.
    if (tertiary === 0) tertiary = x > y ? -1 : 1;
  }
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return tertiary;
}
