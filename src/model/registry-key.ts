import { AgentError } from '../errors.ts';

/** The key the docker CLI and the kubelet use for Docker Hub. */
export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
/** containerd's host directory name for Docker Hub. */
export const DOCKER_HUB_HOST = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

const MAX_KEY_LENGTH = 512;
// A DNS label; `*` is allowed as a whole label because the kubelet globs on it. No underscore:
// image references do not allow one, and it would let a key name containerd's `_default`.
const LABEL = /^(?:\*|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/;
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_BODY = /^[0-9a-f:.]+$/;
const PATH_SEGMENT = /^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/;

/** Quote untrusted input for an error subject: bounded, escaped, never raw control bytes. */
export function quoteSubject(raw: string): string {
  const cut = raw.length > 80 ? `${raw.slice(0, 80)}…` : raw;
  // JSON leaves non-ASCII raw: escape it too, so that bidi overrides or look-alikes cannot disguise a log line.
  return JSON.stringify(cut).replace(/[^\x20-\x7e…]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function invalid(raw: string, detail: string): AgentError {
  return new AgentError('NRC_E_REGISTRY_HOST_INVALID', { subject: quoteSubject(raw), detail });
}

function isIpv6(body: string): boolean {
  if (!IPV6_BODY.test(body) || !body.includes(':')) return false;
  try {
    return new URL(`http://[${body}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/**
 * Validates `host[:port]` and returns its canonical form (lower case, IPv6 in brackets).
 * Everything written to disk is derived from this, so it is strict on purpose.
 */
export function validateRegistryHost(raw: string): string | AgentError {
  if (typeof raw !== 'string' || raw.length === 0) return invalid(String(raw), 'The host is empty.');
  if (raw.length > 255) return invalid(raw, 'The host is longer than 255 characters.');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f-\uffff]/.test(raw)) return invalid(raw, 'The host has spaces, control or non-ASCII characters (use punycode for IDNs).');
  const lower = raw.toLowerCase();
  let name: string;
  let portText: string | undefined;
  if (lower.startsWith('[')) {
    const end = lower.indexOf(']');
    if (end < 0) return invalid(raw, 'The IPv6 literal has no closing bracket.');
    name = lower.slice(1, end);
    const rest = lower.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return invalid(raw, 'Unexpected text after the IPv6 literal.');
    portText = rest === '' ? undefined : rest.slice(1);
    if (!isIpv6(name)) return invalid(raw, 'The IPv6 literal is not valid.');
    name = `[${new URL(`http://[${name}]/`).hostname.slice(1, -1)}]`;
  } else {
    const parts = lower.split(':');
    if (parts.length > 2) return invalid(raw, 'Put IPv6 literals in brackets, e.g. [fd00::1]:5000.');
    name = parts[0] ?? '';
    portText = parts[1];
    if (name.endsWith('.')) name = name.slice(0, -1);
    if (!IPV4.test(name)) {
      const labels = name.split('.');
      if (labels.some((l) => !LABEL.test(l))) return invalid(raw, 'Each dot-separated part must be letters, digits and hyphens.');
      if (labels.slice(1).includes('*')) return invalid(raw, 'Only the first label may be the wildcard *.');
    }
  }
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) return invalid(raw, 'The port must be a number.');
    const port = Number(portText);
    if (port < 1 || port > 65535) return invalid(raw, 'The port must be between 1 and 65535.');
    return `${name}:${port}`;
  }
  return name;
}

export interface RegistryKey {
  /** The key written into config.json: `host[:port][/path]`, or DOCKER_HUB_KEY for Docker Hub. */
  readonly key: string;
  /** `host[:port]`; for Docker Hub always `docker.io`. */
  readonly host: string;
  readonly dockerHub: boolean;
}

/**
 * Normalizes a docker config key the way the kubelet's keyring reads it: scheme dropped,
 * a leading /v1/ or /v2/ dropped, `host[:port][/path]`; Docker Hub aliases collapse to one key.
 */
export function normalizeRegistryKey(raw: string): RegistryKey | AgentError {
  if (typeof raw !== 'string' || raw.trim() === '') return invalid(String(raw), 'The key is empty.');
  if (raw.length > MAX_KEY_LENGTH) return invalid(raw, `The key is longer than ${MAX_KEY_LENGTH} characters.`);
  let rest = raw;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest);
  if (scheme) {
    const s = scheme[1]!.toLowerCase();
    if (s !== 'http' && s !== 'https') return invalid(raw, 'Only http:// and https:// schemes are understood.');
    rest = rest.slice(scheme[0].length);
  }
  const slash = rest.indexOf('/');
  const hostPart = slash < 0 ? rest : rest.slice(0, slash);
  let path = slash < 0 ? '' : rest.slice(slash);
  const host = validateRegistryHost(hostPart);
  if (host instanceof AgentError) return invalid(raw, 'The host part is not a valid host[:port].');
  if (/^\/v[12](\/|$)/.test(path)) path = path.slice(3);
  path = path.replace(/\/+$/, '');
  if (path !== '') {
    const segments = path.slice(1).split('/');
    if (segments.some((s) => !PATH_SEGMENT.test(s) || s === '.' || s === '..' || s.includes('..'))) {
      return invalid(raw, 'The repository path may only hold lower-case letters, digits, ".", "_" and "-" separated by "/".');
    }
  }
  if (DOCKER_HUB_ALIASES.has(host)) {
    if (path === '') return { key: DOCKER_HUB_KEY, host: DOCKER_HUB_HOST, dockerHub: true };
    return { key: `${DOCKER_HUB_HOST}${path}`, host: DOCKER_HUB_HOST, dockerHub: true };
  }
  return { key: `${host}${path}`, host, dockerHub: false };
}
