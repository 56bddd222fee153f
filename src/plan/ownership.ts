import { AgentError } from '../errors.ts';
import { RECORD_PATH } from '../model/state-paths.ts';

export interface OwnedEntry {
  /** The foreign value that was under this key before the agent wrote it, restored on removal. */
  readonly replaced?: unknown;
}

export interface JsonFileRecord {
  /** The agent created the file (possibly seeded from the file the kubelet read before). */
  readonly created: boolean;
  /** For a file that existed: its exact bytes and mode before the agent first changed it. */
  readonly original?: { readonly bytes: string; readonly mode: number };
  /** For a created file: what it held besides the agent's entries when created (the seed). */
  readonly foreignAtCreation?: unknown;
  readonly entries: Readonly<Record<string, OwnedEntry>>;
  /** Foreign entries moved out of the kubelet's file while it holds the agent's (raw key → value). */
  readonly displaced?: Readonly<Record<string, unknown>>;
}

/**
 * What the agent owns on the host. Written before and after every apply so that a crash at any
 * point leaves a record that covers everything on disk; `cleanup` removes exactly this.
 */
export interface OwnershipRecord {
  readonly version: 1;
  readonly jsonFiles: Readonly<Record<string, JsonFileRecord>>;
  /** Whole files the agent wrote (hosts.toml, ca.crt), with the sha256 of what it wrote. */
  readonly files: Readonly<Record<string, { readonly sha256: string }>>;
  /** Directories the agent created, removed when empty. */
  readonly dirs: readonly string[];
}

export const EMPTY_RECORD: OwnershipRecord = { version: 1, jsonFiles: {}, files: {}, dirs: [] };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isAbs = (p: string): boolean => p.startsWith('/') && !p.split('/').includes('..');

/** Parses the record; a record that is not exactly right is refused rather than half-trusted. */
export function parseRecord(bytes: Uint8Array | undefined): OwnershipRecord | AgentError {
  if (bytes === undefined) return EMPTY_RECORD;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return new AgentError('NRC_E_STATE_CORRUPT', { subject: RECORD_PATH, detail: '(not JSON)' });
  }
  const bad = (why: string): AgentError => new AgentError('NRC_E_STATE_CORRUPT', { subject: RECORD_PATH, detail: `(${why})` });
  if (!isObj(doc) || doc['version'] !== 1) return bad('unknown version');
  const { jsonFiles, files, dirs } = doc;
  if (!isObj(jsonFiles) || !isObj(files) || !Array.isArray(dirs)) return bad('missing sections');
  for (const [path, rec] of Object.entries(jsonFiles)) {
    if (!isAbs(path) || !isObj(rec) || typeof rec['created'] !== 'boolean' || !isObj(rec['entries'])) return bad('bad json file entry');
    const orig = rec['original'];
    if (orig !== undefined && (!isObj(orig) || typeof orig['bytes'] !== 'string' || typeof orig['mode'] !== 'number')) return bad('bad original');
    if (rec['displaced'] !== undefined && !isObj(rec['displaced'])) return bad('bad displaced entries');
  }
  for (const [path, rec] of Object.entries(files)) {
    if (!isAbs(path) || !isObj(rec) || typeof rec['sha256'] !== 'string') return bad('bad file entry');
  }
  if (!dirs.every((d): d is string => typeof d === 'string' && isAbs(d))) return bad('bad directory entry');
  return doc as unknown as OwnershipRecord;
}

export function serializeRecord(record: OwnershipRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

/** Union of two records: what is safe to have on disk while an apply moves from one to the other. */
export function mergeRecords(a: OwnershipRecord, b: OwnershipRecord): OwnershipRecord {
  const jsonFiles: Record<string, JsonFileRecord> = { ...b.jsonFiles };
  for (const [path, rec] of Object.entries(a.jsonFiles)) {
    const other = jsonFiles[path];
    const displaced = { ...other?.displaced, ...rec.displaced };
    jsonFiles[path] = other
      ? { ...other, ...(rec.original ? { original: rec.original } : {}), entries: { ...other.entries, ...rec.entries }, ...(Object.keys(displaced).length > 0 ? { displaced } : {}) }
      : rec;
  }
  return {
    version: 1,
    jsonFiles,
    files: { ...b.files, ...a.files },
    dirs: [...new Set([...a.dirs, ...b.dirs])].sort(),
  };
}

export function isEmptyRecord(r: OwnershipRecord): boolean {
  return Object.keys(r.jsonFiles).length === 0 && Object.keys(r.files).length === 0 && r.dirs.length === 0;
}
