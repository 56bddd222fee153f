// Restart reuse: the tokens the ECR source last obtained, so that a restarted agent (a DaemonSet
// rollout across the fleet) does not call AWS again while they are still valid. The source
// (src/sources/ecr) sees this file only as a TokenCache: sources never touch the host.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ECR_CACHE_PATH } from '../model/state-paths.ts';
import type { StoredToken, TokenCache } from '../sources/ecr/types.ts';
import { writeFileAtomic } from './atomic.ts';

/** Relative to the host root: the planner's cleanup removes the same file. */
export const ECR_STATE_PATH = ECR_CACHE_PATH.slice(1);

export function ecrStateFile(hostRoot: string): string {
  return join(hostRoot, ECR_STATE_PATH);
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

/** The cache in `file` (ecrStateFile(hostRoot) on a node). */
export function fileTokenCache(file: string): TokenCache {
  return { location: file, load: () => loadTokens(file), save: (tokens) => saveTokens(file, tokens) };
}

/** Expiry of each stored token, without the token: for `render` and `doctor`. */
export async function readEcrTokenExpiries(hostRoot: string): Promise<Array<{ host: string; expiresAt: Date }>> {
  const { tokens } = await loadTokens(ecrStateFile(hostRoot));
  return [...tokens].map(([host, t]) => ({ host, expiresAt: new Date(t.expiresAt) })).sort((a, b) => (a.host < b.host ? -1 : 1));
}
