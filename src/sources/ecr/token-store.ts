// Restart reuse: the tokens the agent last obtained, so that a restarted agent (a DaemonSet
// rollout across the fleet) does not call AWS again while they are still valid.
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../host/atomic.ts';
import { ECR_CACHE_PATH } from '../../plan/ownership.ts';

/** Relative to the host root: the planner's cleanup removes the same file. */
export const ECR_STATE_PATH = ECR_CACHE_PATH.slice(1);

export interface StoredToken {
  readonly username: string;
  readonly password: string;
  readonly expiresAt: number;
  /** Which credentials obtained it (a hash, never the credentials themselves). */
  readonly fingerprint: string;
}

export function ecrStateFile(hostRoot: string): string {
  return join(hostRoot, ECR_STATE_PATH);
}

/** A one-way, short identifier of the credentials: detects rotation across restarts. */
export function credentialFingerprint(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
}

/** Reads the store; a missing or unreadable file is an empty store (we just call AWS again). */
export async function loadTokens(file: string): Promise<{ tokens: Map<string, StoredToken>; error?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { tokens: new Map() } : { tokens: new Map(), error: code ?? 'read failed' };
  }
  try {
    const parsed = JSON.parse(text) as { version?: unknown; tokens?: Record<string, Partial<StoredToken>> };
    const tokens = new Map<string, StoredToken>();
    if (parsed.version !== 1 || typeof parsed.tokens !== 'object' || parsed.tokens === null) return { tokens, error: 'unknown format' };
    for (const [host, t] of Object.entries(parsed.tokens)) {
      if (typeof t.username === 'string' && typeof t.password === 'string' && typeof t.expiresAt === 'number' && typeof t.fingerprint === 'string') {
        tokens.set(host, { username: t.username, password: t.password, expiresAt: t.expiresAt, fingerprint: t.fingerprint });
      }
    }
    return { tokens };
  } catch {
    return { tokens: new Map(), error: 'not JSON' };
  }
}

export async function saveTokens(file: string, tokens: ReadonlyMap<string, StoredToken>): Promise<void> {
  const body = { version: 1, tokens: Object.fromEntries([...tokens].sort(([a], [b]) => (a < b ? -1 : 1))) };
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
}

/** Expiry of each stored token, without the token: for `render` and `doctor`. */
export async function readEcrTokenExpiries(hostRoot: string): Promise<Array<{ host: string; expiresAt: Date }>> {
  const { tokens } = await loadTokens(ecrStateFile(hostRoot));
  return [...tokens].map(([host, t]) => ({ host, expiresAt: new Date(t.expiresAt) })).sort((a, b) => (a.host < b.host ? -1 : 1));
}
