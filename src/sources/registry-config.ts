import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { AgentError } from '../errors.ts';
import type { HostOptions } from '../model/host-options.ts';
import { quoteSubject, validateRegistryHost } from '../model/registry-key.ts';

export interface RegistryConfig {
  readonly hosts: ReadonlyMap<string, HostOptions>;
  readonly errors: readonly AgentError[];
  /** false when the file as a whole could not be used (TOML syntax, wrong shape). */
  readonly readable: boolean;
}

export const EMPTY_REGISTRY_CONFIG: RegistryConfig = { hosts: new Map(), errors: [], readable: true };

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const KNOWN_KEYS = new Set(['ca', 'ca_file', 'skip_verify', 'auth_header']);

/** Keeps only the certificate blocks, normalized, so the written ca.crt holds nothing else. */
export function normalizePem(text: string): string | undefined {
  const blocks = text.match(PEM_CERT);
  if (!blocks) return undefined;
  return `${blocks.map((b) => b.replace(/\r\n/g, '\n')).join('\n')}\n`;
}

/**
 * Parses the registry config TOML:
 *   [registry."reg.example.com:5000"]
 *   ca_file = "/etc/nrc/ca.pem"   # or ca = "-----BEGIN CERTIFICATE-----…"
 *   skip_verify = false
 *   auth_header = true
 * `readFile` resolves ca_file paths (injected so that tests need no disk).
 */
export function parseRegistryConfig(text: string, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): RegistryConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const line = (err as { line?: number }).line;
    return { hosts: new Map(), errors: [new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { detail: line ? `(TOML syntax error at line ${line})` : '(TOML syntax error)' })], readable: false };
  }
  const hosts = new Map<string, HostOptions>();
  const errors: AgentError[] = [];
  const table = doc['registry'];
  if (table === undefined) return { hosts, errors, readable: true };
  if (typeof table !== 'object' || table === null || Array.isArray(table)) {
    return { hosts, errors: [new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { detail: '"registry" must be a table of registries.' })], readable: false };
  }
  for (const [rawHost, value] of Object.entries(table as Record<string, unknown>)) {
    const host = validateRegistryHost(rawHost);
    if (host instanceof AgentError) {
      errors.push(host);
      continue;
    }
    const subject = host;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      errors.push(new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { subject, detail: 'Each registry must be a table.' }));
      continue;
    }
    const v = value as Record<string, unknown>;
    const unknownKey = Object.keys(v).find((k) => !KNOWN_KEYS.has(k));
    if (unknownKey !== undefined) {
      errors.push(new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { subject, detail: `Unknown key ${quoteSubject(unknownKey)}.` }));
      continue;
    }
    const bad = (['skip_verify', 'auth_header'] as const).find((k) => v[k] !== undefined && typeof v[k] !== 'boolean');
    if (bad) {
      errors.push(new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { subject, detail: `"${bad}" must be true or false.` }));
      continue;
    }
    let caText: string | undefined;
    if (v['ca'] !== undefined && v['ca_file'] !== undefined) {
      errors.push(new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { subject, detail: 'Give either "ca" or "ca_file", not both.' }));
      continue;
    }
    if (typeof v['ca'] === 'string') caText = v['ca'];
    else if (typeof v['ca_file'] === 'string') {
      try {
        caText = readFile(v['ca_file']);
      } catch (err) {
        errors.push(new AgentError('NRC_E_CA_INVALID', { subject, detail: `ca_file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, cause: err }));
        continue;
      }
    } else if (v['ca'] !== undefined || v['ca_file'] !== undefined) {
      errors.push(new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { subject, detail: '"ca" and "ca_file" must be strings.' }));
      continue;
    }
    let ca: string | undefined;
    if (caText !== undefined) {
      ca = normalizePem(caText);
      if (ca === undefined) {
        errors.push(new AgentError('NRC_E_CA_INVALID', { subject }));
        continue;
      }
    }
    if (hosts.has(host)) {
      errors.push(new AgentError('NRC_E_DUPLICATE_REGISTRY', { subject, detail: `Registry config key ${quoteSubject(rawHost)} was ignored.` }));
      continue;
    }
    hosts.set(host, {
      host,
      ...(ca !== undefined ? { ca } : {}),
      skipVerify: v['skip_verify'] === true,
      authHeader: v['auth_header'] === true,
    });
  }
  return { hosts, errors, readable: true };
}
