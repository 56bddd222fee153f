// Namespace-scoped registries (issue 26, docs/kubernetes.md#scoped-registries). A scope is carried
// by this project's annotations, so the platform's Registry CRD and Secret format are unchanged:
// - a Registry: `namespaces: "a,b"` and/or `namespace-selector: "<label selector>"` (their union);
// - the static Secret: `scopes: {"<auths key>": {"namespaces": [...], "namespaceSelector": "..."}}`.
// The broker resolves selectors (the API server evaluates them) and publishes, beside its
// node-wide `.dockerconfigjson`, the `scoped.json` document below. A scoped credential never goes
// to a node-wide file: agents that do not know `scoped.json` simply never see it.
import { AgentError } from '../errors.ts';

export const NAMESPACES_ANNOTATION = 'registry-credentials.okteto.com/namespaces';
export const NAMESPACE_SELECTOR_ANNOTATION = 'registry-credentials.okteto.com/namespace-selector';
/** On the static Secret: JSON {"<auths key>": {"namespaces": ["a"], "namespaceSelector": "team=a"}}. */
export const SCOPES_ANNOTATION = 'registry-credentials.okteto.com/scopes';
/** The broker Secret's data key holding the scoped credentials (ScopedDocument as JSON). */
export const SCOPED_DATA_KEY = 'scoped.json';

/** A scope as written by an admin, before its selector is resolved. */
export interface ScopeRequest {
  readonly namespaces: readonly string[];
  readonly namespaceSelector?: string;
}

/** One scoped credential, resolved: the namespaces whose pods may pull with it. */
export interface ScopedEntry {
  readonly key: string;
  readonly username: string;
  readonly password: string;
  readonly identitytoken?: string;
  /** Sorted, distinct; may be empty (a selector that matches nothing: served nowhere). */
  readonly namespaces: readonly string[];
  /** Where it came from (`registry:<ns>/<name>`, `secret:<ns>/<name>`): for logs and status. */
  readonly source: string;
}

export interface ScopedDocument {
  readonly entries: readonly ScopedEntry[];
  /** The static Secret's selectors, resolved by the broker: selector → sorted namespaces. */
  readonly selectors: Readonly<Record<string, readonly string[]>>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_SELECTOR = 1024;

export const isNamespaceName = (s: string): boolean => DNS_LABEL.test(s);

/** Distinct, in code-point order (namespace names and selectors are ASCII). */
export const sortedDistinct = (xs: Iterable<string>): string[] => [...new Set(xs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

function checkNamespaces(list: readonly string[], subject: string): string[] | AgentError {
  const bad = list.find((n) => !isNamespaceName(n));
  if (bad !== undefined) return new AgentError('NRC_E_SCOPE_INVALID', { subject, detail: `"${bad.slice(0, 80)}" is not a namespace name.` });
  return sortedDistinct(list);
}

function checkSelector(sel: string, subject: string): string | AgentError {
  const s = sel.trim();
  if (s === '' || s.length > MAX_SELECTOR || /[\n\r]/.test(s)) return new AgentError('NRC_E_SCOPE_INVALID', { subject, detail: 'the namespace selector is empty, too long or spans lines.' });
  return s;
}

/**
 * The scope of a Registry from its annotations: undefined when it has none (node-wide, as
 * before), an AgentError when one is present but unreadable (the Registry is then configured
 * nowhere: never widened to node-wide).
 */
export function registryScope(annotations: Readonly<Record<string, string>> | undefined, subject: string): ScopeRequest | AgentError | undefined {
  const list = annotations?.[NAMESPACES_ANNOTATION];
  const sel = annotations?.[NAMESPACE_SELECTOR_ANNOTATION];
  if (list === undefined && sel === undefined) return undefined;
  let namespaces: string[] = [];
  if (list !== undefined) {
    const names = list.split(',').map((n) => n.trim()).filter((n) => n !== '');
    if (names.length === 0 && sel === undefined) return new AgentError('NRC_E_SCOPE_INVALID', { subject, detail: `${NAMESPACES_ANNOTATION} names no namespace.` });
    const checked = checkNamespaces(names, subject);
    if (checked instanceof AgentError) return checked;
    namespaces = checked;
  }
  if (sel === undefined) return { namespaces };
  const s = checkSelector(sel, subject);
  return s instanceof AgentError ? s : { namespaces, namespaceSelector: s };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The static Secret's scopes annotation. `scopes`: per auths key (as written in the Secret);
 * `invalid`: keys whose scope is unreadable (configured nowhere); `error`: the whole annotation
 * is unreadable. Then `all` is true: every entry of the Secret must be treated as scoped and
 * withheld, since which ones were meant cannot be known.
 */
export function secretScopes(annotations: Readonly<Record<string, string>> | undefined, subject: string): {
  readonly scopes: ReadonlyMap<string, ScopeRequest>;
  readonly errors: readonly AgentError[];
  readonly all: boolean;
} {
  const text = annotations?.[SCOPES_ANNOTATION];
  const scopes = new Map<string, ScopeRequest>();
  if (text === undefined) return { scopes, errors: [], all: false };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  if (!isRecord(doc)) return { scopes, errors: [new AgentError('NRC_E_SCOPE_INVALID', { subject, detail: `${SCOPES_ANNOTATION} is not a JSON object; every entry of the Secret is withheld.` })], all: true };
  const errors: AgentError[] = [];
  for (const [key, v] of Object.entries(doc)) {
    const where = `${subject} ${key}`;
    const list = isRecord(v) ? v['namespaces'] : undefined;
    const sel = isRecord(v) ? v['namespaceSelector'] : undefined;
    const listOk = list === undefined || (Array.isArray(list) && list.every((n) => typeof n === 'string'));
    if (!isRecord(v) || !listOk || (sel !== undefined && typeof sel !== 'string') || (list === undefined && sel === undefined)) {
      errors.push(new AgentError('NRC_E_SCOPE_INVALID', { subject: where, detail: 'expected {"namespaces": ["a"], "namespaceSelector": "team=a"} (one or both).' }));
      scopes.set(key, { namespaces: [] });
      continue;
    }
    const namespaces = checkNamespaces((list as string[] | undefined) ?? [], where);
    const selector = typeof sel === 'string' ? checkSelector(sel, where) : undefined;
    if (namespaces instanceof AgentError || selector instanceof AgentError) {
      errors.push(namespaces instanceof AgentError ? namespaces : (selector as AgentError));
      scopes.set(key, { namespaces: [] });
      continue;
    }
    scopes.set(key, selector === undefined ? { namespaces } : { namespaces, namespaceSelector: selector });
  }
  return { scopes, errors, all: false };
}

/** The namespaces of a scope once its selector is resolved (an unresolved selector adds none: fail closed). */
export function resolveScope(scope: ScopeRequest, selectors: Readonly<Record<string, readonly string[]>>): string[] {
  const extra = scope.namespaceSelector === undefined ? [] : (selectors[scope.namespaceSelector] ?? []);
  return sortedDistinct([...scope.namespaces, ...extra]);
}

/** scoped.json's bytes: stable for the same content (entries by key then source, keys sorted). */
export function renderScoped(doc: ScopedDocument): string {
  const entries = [...doc.entries]
    .map((e) => ({ key: e.key, username: e.username, password: e.password, ...(e.identitytoken ? { identitytoken: e.identitytoken } : {}), namespaces: sortedDistinct(e.namespaces), source: e.source }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  const selectors: Record<string, string[]> = {};
  for (const k of Object.keys(doc.selectors).sort()) selectors[k] = sortedDistinct(doc.selectors[k] ?? []);
  return JSON.stringify({ entries, selectors });
}

/**
 * Reads scoped.json. Entries that do not parse are left out with an error (fail closed: a bad
 * entry is served nowhere); a document that does not parse gives no entry at all.
 */
export function parseScoped(text: string | undefined, subject: string): { readonly doc: ScopedDocument; readonly errors: readonly AgentError[] } {
  const empty: ScopedDocument = { entries: [], selectors: {} };
  if (text === undefined || text === '') return { doc: empty, errors: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  if (!isRecord(raw)) return { doc: empty, errors: [new AgentError('NRC_E_SCOPE_INVALID', { subject, detail: `${SCOPED_DATA_KEY} is not a JSON object.` })] };
  const errors: AgentError[] = [];
  const entries: ScopedEntry[] = [];
  for (const e of Array.isArray(raw['entries']) ? raw['entries'] : []) {
    const ok =
      isRecord(e) && typeof e['key'] === 'string' && typeof e['username'] === 'string' && typeof e['password'] === 'string' && typeof e['source'] === 'string' &&
      (e['identitytoken'] === undefined || typeof e['identitytoken'] === 'string') &&
      Array.isArray(e['namespaces']) && e['namespaces'].every((n) => typeof n === 'string' && isNamespaceName(n));
    if (!ok) {
      errors.push(new AgentError('NRC_E_SCOPE_INVALID', { subject, detail: `an entry of ${SCOPED_DATA_KEY} is malformed and is served nowhere.` }));
      continue;
    }
    entries.push({
      key: e['key'] as string,
      username: e['username'] as string,
      password: e['password'] as string,
      ...(typeof e['identitytoken'] === 'string' ? { identitytoken: e['identitytoken'] } : {}),
      namespaces: sortedDistinct(e['namespaces'] as string[]),
      source: e['source'] as string,
    });
  }
  const selectors: Record<string, string[]> = {};
  if (isRecord(raw['selectors'])) {
    for (const [k, v] of Object.entries(raw['selectors'])) {
      if (Array.isArray(v) && v.every((n) => typeof n === 'string' && isNamespaceName(n))) selectors[k] = sortedDistinct(v as string[]);
    }
  }
  return { doc: { entries, selectors }, errors };
}

/** Why a namespace selector has no namespaces (the API server refused it, or cannot be asked). */
export interface SelectorFailure {
  readonly code: 'NRC_E_SCOPE_INVALID' | 'NRC_E_K8S_FORBIDDEN' | 'NRC_E_K8S_UNAVAILABLE';
  /** Says what went wrong, never a secret: the selector and the API server's message. */
  readonly detail: string;
}

/** Resolves namespace label selectors (in the broker: by the API server, src/broker/namespace-selectors.ts). */
export interface SelectorResolver {
  /** The selectors `owner` needs now, replacing its previous set; none: nothing is resolved for it. */
  use(owner: string, selectors: readonly string[]): void;
  /** Its namespaces (sorted), a failure, or undefined until its first answer. */
  lookup(selector: string): readonly string[] | SelectorFailure | undefined;
  /** Calls `fn` after resolutions changed; returns its removal. */
  subscribe(fn: () => void): () => void;
}

/** Whether `v` is a selector failure rather than namespaces. */
export const isSelectorFailure = (v: readonly string[] | SelectorFailure | undefined): v is SelectorFailure => v !== undefined && !Array.isArray(v);
