import { AgentError, type ErrorCode } from '../errors.ts';
import type { RegistryCredential, SourceSnapshot } from '../model/credential.ts';
import { decodeKubeletEntry, goField, goFieldAll, type EntryFault } from '../model/kubelet-config.ts';
import { normalizeRegistryKey, quoteSubject } from '../model/registry-key.ts';

/** Larger inputs are refused whole: Kubernetes caps a Secret at 1 MiB, so this is garbage or an attack. */
export const MAX_DOCKERCONFIG_BYTES = 16 * 1024 * 1024;
export const MAX_FIELD_BYTES = 64 * 1024;

const STRICT_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** config.json (`.dockerconfigjson`), the legacy `.dockercfg` map, or either (a local file). */
export type DockerConfigFormat = 'config.json' | 'dockercfg' | 'auto';
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decodes padded or unpadded standard base64 (the kubelet accepts both); undefined when invalid. */
export function decodeBase64(text: string): string | undefined {
  const t = text.trim();
  if (!STRICT_BASE64.test(t) || t.length % 4 === 1) return undefined;
  const buf = Buffer.from(t, 'base64');
  const decoded = buf.toString('utf8');
  // Reject bytes that are not valid UTF-8: they would not round-trip into a header or file.
  if (Buffer.from(decoded, 'utf8').compare(buf) !== 0) return undefined;
  return decoded;
}

interface EntryResult {
  username: string;
  password: string;
  identityToken?: string;
}

const ENTRY_FAULTS: Record<EntryFault, ErrorCode> = {
  'not-object': 'NRC_E_ENTRY_NOT_OBJECT',
  'field-type': 'NRC_E_FIELD_TYPE',
  'auth-base64': 'NRC_E_AUTH_BASE64',
  'auth-not-utf8': 'NRC_E_AUTH_BASE64',
  'auth-no-colon': 'NRC_E_AUTH_NO_COLON',
};

/**
 * One entry, read as the kubelet reads it (field names case-insensitive, Go's base64 rules,
 * "auth" wins). On top of that the agent refuses an entry with no credential at all and one with
 * control characters: both are almost always a copy-paste mistake that the registry would reject.
 */
function readEntry(entry: unknown, subject: string): EntryResult | AgentError {
  if (isObject(entry)) {
    for (const v of Object.values(entry)) {
      if (typeof v === 'string' && v.length > MAX_FIELD_BYTES) return new AgentError('NRC_E_FIELD_TOO_LARGE', { subject });
    }
  }
  const decoded = decodeKubeletEntry(entry);
  if (typeof decoded === 'string') return new AgentError(ENTRY_FAULTS[decoded], { subject });
  const { username, password } = decoded;
  // The kubelet ignores identitytoken; tools on the node (docker CLI) use it.
  const token = isObject(entry) ? goField(entry, 'identitytoken') : undefined;
  const identityToken = typeof token === 'string' && token !== '' ? token : undefined;
  if (username === '' && password === '' && identityToken === undefined) {
    return new AgentError('NRC_E_AUTH_MISSING', { subject });
  }
  if (CONTROL.test(username) || CONTROL.test(password) || (identityToken !== undefined && CONTROL.test(identityToken))) {
    return new AgentError('NRC_E_CONTROL_CHARACTERS', { subject });
  }
  return identityToken === undefined ? { username, password } : { username, password, identityToken };
}

function sameCredential(a: RegistryCredential, b: EntryResult): boolean {
  return a.username === b.username && a.password === b.password && a.identityToken === b.identityToken;
}

/**
 * Parses a `kubernetes.io/dockerconfigjson` payload (`{"auths": {...}}`) or the legacy
 * `.dockercfg` map into credentials. A bad entry yields a coded error for that entry only.
 */
export function parseDockerConfig(bytes: Uint8Array | string, source: string, format: DockerConfigFormat = 'auto'): SourceSnapshot {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (size > MAX_DOCKERCONFIG_BYTES) {
    return { source, credentials: [], errors: [new AgentError('NRC_E_INPUT_TOO_LARGE', { subject: source, detail: `(${size} bytes)` })], ok: false };
  }
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    // The parser's message can quote the input: keep only the code.
    return { source, credentials: [], errors: [new AgentError('NRC_E_INPUT_NOT_JSON', { subject: source, cause: err instanceof RangeError ? 'nesting too deep' : 'syntax error' })], ok: false };
  }
  if (!isObject(doc)) {
    return { source, credentials: [], errors: [new AgentError('NRC_E_INPUT_SHAPE', { subject: source })], ok: false };
  }
  // Like the kubelet: config.json carries "auths" (any case; repeated members merge), the legacy
  // .dockercfg is the map itself. A file of unknown kind is legacy only when it has no "auths".
  const authsMembers = goFieldAll(doc, 'auths');
  const legacy = format === 'dockercfg' || (format === 'auto' && authsMembers.length === 0);
  let auths: JsonObject = {};
  if (legacy) {
    auths = doc;
  } else {
    for (const member of authsMembers) {
      if (member === null) continue;
      if (!isObject(member)) {
        return { source, credentials: [], errors: [new AgentError('NRC_E_INPUT_SHAPE', { subject: source, detail: '"auths" is not an object.' })], ok: false };
      }
      auths = { ...auths, ...member };
    }
  }

  const credentials: RegistryCredential[] = [];
  const errors: AgentError[] = [];
  const byKey = new Map<string, RegistryCredential>();
  for (const rawKey of Object.keys(auths).sort()) {
    const normalized = normalizeRegistryKey(rawKey);
    if (normalized instanceof AgentError) {
      errors.push(normalized);
      continue;
    }
    const subject = normalized.key;
    const entry = readEntry(auths[rawKey], subject);
    if (entry instanceof AgentError) {
      errors.push(entry);
      continue;
    }
    const existing = byKey.get(normalized.key);
    if (existing) {
      if (!sameCredential(existing, entry)) {
        errors.push(new AgentError('NRC_E_DUPLICATE_REGISTRY', { subject, detail: `Key ${quoteSubject(rawKey)} was ignored.` }));
      }
      continue;
    }
    const cred: RegistryCredential = { key: normalized.key, host: normalized.host, ...entry, source };
    byKey.set(normalized.key, cred);
    credentials.push(cred);
  }
  return { source, credentials, errors, ok: true };
}
