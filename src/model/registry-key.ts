import { AgentError } from '../errors.ts';
import { DOCKER_CLI_HUB_KEY, KUBELET_HUB_FALLBACK, kubeletKey } from './kubelet-config.ts';

/** The key the docker CLI and the kubelet use for Docker Hub. */
export const DOCKER_HUB_KEY = DOCKER_CLI_HUB_KEY;
/** containerd's host directory name for Docker Hub. */
export const DOCKER_HUB_HOST = 'docker.io';

const MAX_KEY_LENGTH = 512;
// A DNS label; `*` is allowed anywhere in it because the kubelet globs labels with filepath.Match. No underscore:
// image references do not allow one, and it would let a key name containerd's `_default`.
const LABEL = /^[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?$/;
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_BODY = /^[0-9a-f:.]+$/;

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
      if (labels.some((l) => !LABEL.test(l))) return invalid(raw, 'Each dot-separated part must be letters, digits and hyphens (the kubelet globs "*" in any of them).');
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
  /**
   * The key written into config.json: the kubelet's own key for the entry (keyring.go Add:
   * `host[:port][/path]`, case kept), spelled DOCKER_HUB_KEY for the Docker Hub fallback key.
   */
  readonly key: string;
  /** `host[:port]` in lower case, for containerd and the registry check; `docker.io` for Docker Hub. */
  readonly host: string;
  readonly dockerHub: boolean;
}

/**
 * A docker config key as the kubelet's keyring reads it, nothing widened or narrowed: a scheme
 * and a leading /v1/ or /v2/ dropped, host case, port digits and a trailing slash kept.
 * `docker.io` matches Docker Hub images directly; `index.docker.io` (DOCKER_HUB_KEY) only when no
 * other key matched; `registry-1.docker.io` never matches them. Keys the kubelet would never match
 * to an image (underscores, a trailing dot, query or escape characters) are refused.
 */
export function normalizeRegistryKey(raw: string): RegistryKey | AgentError {
  if (typeof raw !== 'string' || raw.trim() === '') return invalid(String(raw), 'The key is empty.');
  if (raw.length > MAX_KEY_LENGTH) return invalid(raw, `The key is longer than ${MAX_KEY_LENGTH} characters.`);
  const k = kubeletKey(raw);
  if (k === undefined) {
    return invalid(raw, 'Use host[:port][/path] with letters, digits, "-", "." and "*" in the host, optionally after https://.');
  }
  if (k.path.split('/').some((s) => s === '.' || s === '..')) return invalid(raw, 'The path may not hold "." or ".." segments.');
  // Keys no image reference can match: a label with a hyphen at its edge, port 0 or above 65535.
  if (!k.key.startsWith('[') && k.hostname.split('.').some((l) => !l.includes('*') && !/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(l))) {
    return invalid(raw, 'Each dot-separated part must be letters, digits and hyphens (not at either end), or hold the wildcard *.');
  }
  if (k.port !== '' && (Number(k.port) < 1 || Number(k.port) > 65535)) return invalid(raw, 'The port must be between 1 and 65535.');
  if (k.key === KUBELET_HUB_FALLBACK) return { key: DOCKER_HUB_KEY, host: DOCKER_HUB_HOST, dockerHub: true };
  const hostPort = k.key.slice(0, k.key.length - k.path.length);
  // The host part in its canonical form (lower case, IPv6 compressed), as host options name it.
  const host = validateRegistryHost(hostPort);
  return { key: k.key, host: typeof host === 'string' ? host : hostPort.toLowerCase(), dockerHub: hostPort === DOCKER_HUB_HOST };
}
