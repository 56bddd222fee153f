import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentError } from '../errors.ts';
import { HostFs } from '../host/host-fs.ts';
import type { ContainerdVersionOption } from '../runtime/containerd.ts';
import { DEFAULT_TARGET_OPTIONS, type TargetOptions } from '../runtime/targets.ts';
import { EMPTY_REGISTRY_CONFIG, parseRegistryConfig, type RegistryConfig } from '../sources/registry-config.ts';

export interface FlagSpec {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  readonly help: string;
  readonly default?: string;
  /** The only values a string flag takes. */
  readonly choices?: readonly string[];
}

/** Flags every command understands; each is also read from NRC_<NAME> (e.g. NRC_HOST_ROOT). */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'host-root', type: 'string', default: '/', help: "Where the node's / is mounted; every host path is resolved under it." },
  { name: 'kubelet-root-dir', type: 'string', default: DEFAULT_TARGET_OPTIONS.kubeletRootDir, help: "The kubelet's --root-dir; its config.json is the main output." },
  { name: 'docker-config-path', type: 'string', default: DEFAULT_TARGET_OPTIONS.dockerConfig, help: "Docker config for tools on the node; '' leaves it alone." },
  { name: 'no-containerd', type: 'boolean', help: 'Do not write containerd hosts.toml files.' },
  {
    name: 'containerd-version',
    type: 'string',
    default: 'auto',
    choices: ['auto', '1.x', '2.0', '2.2'],
    help: "The node's containerd: 1.x replaces whole plugin tables on import, 2.0 merges them, 2.2 (and later) also defaults an unset config_path; auto reads `version = 3` as 2.2, anything else as 1.x.",
  },
  { name: 'log-level', type: 'string', default: 'info', help: 'pino log level (logs are JSON on stderr).' },
  { name: 'help', type: 'boolean', help: 'Show this help.' },
];

export const INPUT_FLAGS: readonly FlagSpec[] = [
  { name: 'dockerconfig', type: 'string', help: 'A dockerconfigjson / .dockercfg file, or a mounted Secret volume directory.' },
  { name: 'registry-config', type: 'string', help: 'TOML with per-registry host options (ca, ca_file, skip_verify, auth_header).' },
];

export type Flags = Record<string, string | boolean | undefined>;

export const envName = (flag: string): string => `NRC_${flag.toUpperCase().replace(/-/g, '_')}`;

/** Parses argv; flags win over NRC_* variables, which win over defaults. */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], env: NodeJS.ProcessEnv = process.env): Flags {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const s of specs) options[s.name] = { type: s.type };
  const { values } = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true });
  const out: Flags = {};
  for (const s of specs) {
    const v = (values as Record<string, string | boolean | undefined>)[s.name];
    const e = env[envName(s.name)];
    if (v !== undefined) out[s.name] = v;
    else if (e !== undefined) out[s.name] = s.type === 'boolean' ? ['1', 'true', 'yes'].includes(e.toLowerCase()) : e;
    else if (s.default !== undefined) out[s.name] = s.default;
    const value = out[s.name];
    if (s.choices && typeof value === 'string' && !s.choices.includes(value)) {
      throw new AgentError('NRC_E_FLAG_INVALID', { subject: `--${s.name}`, detail: `Use one of: ${s.choices.join(', ')}.` });
    }
  }
  return out;
}

export function helpText(command: string, summary: string, specs: readonly FlagSpec[]): string {
  const lines = specs.map((s) => {
    const flag = `--${s.name}${s.type === 'string' ? ' VALUE' : ''}`;
    const def = s.default !== undefined ? ` (default: ${s.default === '' ? "''" : s.default})` : '';
    return `  ${flag.padEnd(28)} ${s.help}${def}\n  ${''.padEnd(28)} env ${envName(s.name)}`;
  });
  return `Usage: node-registry-credentials ${command} [flags]\n\n${summary}\n\nFlags:\n${lines.join('\n')}\n`;
}

export const str = (f: Flags, name: string): string | undefined => (typeof f[name] === 'string' ? (f[name] as string) : undefined);

export function hostFromFlags(f: Flags): HostFs | AgentError {
  const root = path.resolve(str(f, 'host-root') ?? '/');
  if (!existsSync(root) || !statSync(root).isDirectory()) return new AgentError('NRC_E_HOST_ROOT_MISSING', { subject: root });
  return new HostFs(root);
}

export function targetOptionsFromFlags(f: Flags): TargetOptions {
  return {
    ...DEFAULT_TARGET_OPTIONS,
    kubeletRootDir: str(f, 'kubelet-root-dir') ?? DEFAULT_TARGET_OPTIONS.kubeletRootDir,
    dockerConfig: str(f, 'docker-config-path') ?? DEFAULT_TARGET_OPTIONS.dockerConfig,
    writeContainerd: f['no-containerd'] !== true,
    containerdVersion: (str(f, 'containerd-version') ?? 'auto') as ContainerdVersionOption,
  };
}

/** Reads --registry-config; a file that cannot be read or parsed is an error for the whole run. */
export function registryConfigFromFlags(f: Flags): RegistryConfig | AgentError {
  const file = str(f, 'registry-config');
  if (!file) return EMPTY_REGISTRY_CONFIG;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return new AgentError('NRC_E_REGISTRY_CONFIG_INVALID', { subject: file, detail: `(${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, cause: err });
  }
  // ca_file paths are relative to the config file, like every other config of this kind.
  const config = parseRegistryConfig(text, (p) => readFileSync(path.resolve(path.dirname(file), p), 'utf8'));
  return config.readable ? config : config.errors[0]!;
}
