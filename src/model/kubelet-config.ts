/**
 * How the kubelet reads a docker config, as k8s.io/kubernetes pkg/credentialprovider does
 * (config.go, keyring.go; checked against v1.34 by the kubelet oracle in testenv/kube).
 * Kept apart from the agent's own rules so that the planner can ask "what would the kubelet do".
 */

/** The kubelet's Docker Hub fallback key: used only when no other key matched a Docker Hub image. */
export const KUBELET_HUB_FALLBACK = 'index.docker.io';
/** How the docker CLI spells that same key; the kubelet reads it as KUBELET_HUB_FALLBACK. */
export const DOCKER_CLI_HUB_KEY = 'https://index.docker.io/v1/';

const GO_FOLD: Record<string, string> = { '\u017f': 'S', '\u212a': 'K' };

/** Go's encoding/json matches field names case-insensitively (bytes.EqualFold, with ſ and K folding to ASCII). */
export function foldFieldName(name: string): string {
  let out = '';
  for (const ch of name) out += GO_FOLD[ch] ?? (ch.charCodeAt(0) < 0x80 ? ch.toUpperCase() : ch);
  return out;
}

/**
 * The value Go's decoder would store for a struct field: the last member whose name folds to
 * `field` and that is not null (null leaves a Go string untouched).
 */
export function goField(obj: Readonly<Record<string, unknown>>, field: string): unknown {
  const want = foldFieldName(field);
  let value: unknown;
  for (const [k, v] of Object.entries(obj)) if (v !== null && foldFieldName(k) === want) value = v;
  return value;
}

/** Every member whose name folds to `field`, in document order (Go merges maps decoded twice). */
export function goFieldAll(obj: Readonly<Record<string, unknown>>, field: string): unknown[] {
  const want = foldFieldName(field);
  return Object.entries(obj).filter(([k]) => foldFieldName(k) === want).map(([, v]) => v);
}

const STD_ALPHABET = /^[A-Za-z0-9+/]*$/;

/**
 * The kubelet's decoding of `auth` (decodeDockerConfigFieldAuth): StdEncoding when the trimmed
 * text ends in "=", RawStdEncoding otherwise; Go's decoder skips \r and \n, nothing else.
 */
export function decodeGoBase64(field: string): Buffer | undefined {
  const padded = field.trim().endsWith('=');
  const text = field.replace(/[\r\n]/g, '');
  if (padded) {
    if (text.length % 4 !== 0) return undefined;
    const body = text.replace(/={1,2}$/, '');
    if (!STD_ALPHABET.test(body) || text.length - body.length === 0) return undefined;
    // "=" may only complete the last quantum: one for 3 chars, two for 2 chars.
    if ((body.length % 4) + (text.length - body.length) !== 4) return undefined;
  } else {
    if (!STD_ALPHABET.test(text) || text.length % 4 === 1) return undefined;
  }
  return Buffer.from(text, 'base64');
}

export interface KubeletCredential {
  readonly username: string;
  readonly password: string;
}

/** Why the kubelet refuses an entry (and with it the whole file). */
export type EntryFault = 'not-object' | 'field-type' | 'auth-base64' | 'auth-no-colon' | 'auth-not-utf8';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One entry as DockerConfigEntry.UnmarshalJSON reads it. `auth-not-utf8` is the agent's own
 * refusal: the kubelet accepts such bytes, but CRI's protobuf strings cannot carry them.
 */
export function decodeKubeletEntry(value: unknown): KubeletCredential | EntryFault {
  if (value === null) return { username: '', password: '' };
  if (!isObject(value)) return 'not-object';
  const fields: Record<string, string> = {};
  for (const name of ['username', 'password', 'email', 'auth']) {
    for (const v of goFieldAll(value, name)) {
      if (v === null) continue;
      if (typeof v !== 'string') return 'field-type';
      fields[name] = v;
    }
  }
  const auth = fields['auth'] ?? '';
  if (auth === '') return { username: fields['username'] ?? '', password: fields['password'] ?? '' };
  const bytes = decodeGoBase64(auth);
  if (bytes === undefined) return 'auth-base64';
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) return 'auth-not-utf8';
  const colon = text.indexOf(':');
  if (colon < 0) return 'auth-no-colon';
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** A key as the kubelet's keyring stores it: host (case kept), optional :port, optional path. */
export interface KubeletKey {
  /** host[:port][path], exactly the keyring's index string. */
  readonly key: string;
  readonly hostname: string;
  readonly port: string;
  readonly path: string;
}

// The subset of keys on which this module agrees with Go's url.Parse: letters, digits, "-" and
// "*" in labels (no "?", "#", "%", "@", "_" or "["), a numeric port, a plain path.
const KEY_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9*-]+(?:\.[A-Za-z0-9*-]+)*)(?::\d+)?$/;
const KEY_PATH = /^(?:\/[A-Za-z0-9._/-]*)?$/;

/**
 * keyring.go Add: "http(s)://" stripped (case-sensitive, as in Go), a path starting with /v1/ or
 * /v2/ loses that prefix, an empty or "/" path leaves the bare host. undefined for a key outside
 * the subset above (the agent refuses those rather than guess what Go's URL parser makes of them).
 */
export function kubeletKey(raw: string): KubeletKey | undefined {
  let rest = raw;
  if (rest.startsWith('https://')) rest = rest.slice(8);
  else if (rest.startsWith('http://')) rest = rest.slice(7);
  const slash = rest.indexOf('/');
  const host = slash < 0 ? rest : rest.slice(0, slash);
  let path = slash < 0 ? '' : rest.slice(slash);
  if (!KEY_HOST.test(host) || !KEY_PATH.test(path)) return undefined;
  if (path.startsWith('/v2/') || path.startsWith('/v1/')) path = path.slice(3);
  if (path === '/') path = '';
  const { hostname, port } = splitHostPort(host);
  return { key: host + path, hostname, port, path };
}

/** net.SplitHostPort as SplitURL uses it: without a port, the whole host (brackets kept). */
function splitHostPort(host: string): { hostname: string; port: string } {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d*)$/.exec(host);
  if (m) return { hostname: m[1] ?? m[2] ?? '', port: m[3] ?? '' };
  return { hostname: host, port: '' };
}

function labelRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\?-]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
}

function labelsMatch(glob: string, target: string): boolean {
  const g = glob.split('.');
  const t = target.split('.');
  return g.length === t.length && g.every((label, i) => labelRegExp(label).test(t[i]!));
}

/** Whether `key` matches Docker Hub images directly (not as the fallback). */
export function matchesDockerHub(key: KubeletKey): boolean {
  return key.port === '' && labelsMatch(key.hostname, 'docker.io');
}

/**
 * True when every image `inner` matches is also matched by `outer` (conservative: a glob in
 * `inner` counts as covered only by the same glob or by "*").
 */
export function keyCovers(outer: KubeletKey, inner: KubeletKey): boolean {
  if (outer.port !== inner.port || !inner.path.startsWith(outer.path)) return false;
  const o = outer.hostname.split('.');
  const i = inner.hostname.split('.');
  if (o.length !== i.length) return false;
  return o.every((label, n) => label === '*' || label === i[n] || (!i[n]!.includes('*') && labelRegExp(label).test(i[n]!)));
}

/** True when some image is matched by both keys (conservative: may say yes for disjoint globs). */
export function keysOverlap(a: KubeletKey, b: KubeletKey): boolean {
  if (a.port !== b.port || !(a.path.startsWith(b.path) || b.path.startsWith(a.path))) return false;
  const x = a.hostname.split('.');
  const y = b.hostname.split('.');
  if (x.length !== y.length) return false;
  return x.every((l, n) => l.includes('*') || y[n]!.includes('*') || l === y[n]);
}

/**
 * Would the kubelet try `foreign` before `ours` for some image that `ours` covers? The keyring
 * tries keys in reverse-sorted order, and the Docker Hub fallback only when nothing else matched.
 */
export function takesPrecedence(foreign: KubeletKey, ours: KubeletKey): boolean {
  if (foreign.key === ours.key) return true;
  if (ours.key === KUBELET_HUB_FALLBACK) return matchesDockerHub(foreign);
  return keysOverlap(foreign, ours) && foreign.key > ours.key;
}

/** What the kubelet makes of a whole docker config document, or why it skips the file. */
export interface KubeletDocument {
  /** false: the kubelet refuses the whole file and reads the next one in its search order. */
  readonly readable: boolean;
  /** Raw key → entry, for each member of "auths" (or of the legacy map). */
  readonly entries: ReadonlyMap<string, KubeletCredential | EntryFault>;
  /** Top-level problems other than entries (e.g. "auths" not an object). */
  readonly fault?: 'not-object' | 'auths-type' | 'headers-type';
}

/**
 * readDockerConfigJSONFileFromBytes (config.json: only "auths", matched case-insensitively, and
 * "HttpHeaders") or ReadDockerConfigFileFromBytes (.dockercfg: the map itself).
 */
export function readKubeletDocument(doc: unknown, legacy: boolean): KubeletDocument {
  const entries = new Map<string, KubeletCredential | EntryFault>();
  if (doc === null) return { readable: true, entries };
  if (!isObject(doc)) return { readable: false, entries, fault: 'not-object' };
  let auths: Record<string, unknown> = {};
  if (legacy) {
    auths = doc;
  } else {
    for (const value of goFieldAll(doc, 'auths')) {
      if (value === null) continue;
      if (!isObject(value)) return { readable: false, entries, fault: 'auths-type' };
      auths = { ...auths, ...value };
    }
    for (const headers of goFieldAll(doc, 'HttpHeaders')) {
      if (headers === null) continue;
      if (!isObject(headers) || Object.values(headers).some((v) => v !== null && typeof v !== 'string')) {
        return { readable: false, entries, fault: 'headers-type' };
      }
    }
  }
  let readable = true;
  for (const [k, v] of Object.entries(auths)) {
    const entry = decodeKubeletEntry(v);
    // The agent's own UTF-8 refusal does not make the kubelet skip the file.
    if (typeof entry === 'string' && entry !== 'auth-not-utf8') readable = false;
    entries.set(k, entry);
  }
  return { readable, entries };
}

/**
 * The file's bytes as the kubelet's search reads them: JSON (a syntax error skips the file), then
 * readKubeletDocument. `doc` is the parsed JSON when readable.
 */
export function readKubeletFile(bytes: Uint8Array, legacy: boolean): { readonly readable: boolean; readonly doc?: unknown } {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { readable: false };
  }
  return readKubeletDocument(doc, legacy).readable ? { readable: true, doc } : { readable: false };
}
