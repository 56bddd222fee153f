import { posix } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { AgentError } from '../errors.ts';
import type { HostReader } from '../host/host-fs.ts';

export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';
/** k3s and RKE2 run their own containerd with a generated config at these places. */
export const EMBEDDED_CONTAINERD = [
  { flavor: 'k3s', config: '/var/lib/rancher/k3s/agent/etc/containerd/config.toml', certsD: '/var/lib/rancher/k3s/agent/etc/containerd/certs.d' },
  { flavor: 'rke2', config: '/var/lib/rancher/rke2/agent/etc/containerd/config.toml', certsD: '/var/lib/rancher/rke2/agent/etc/containerd/certs.d' },
] as const;

export interface ContainerdInfo {
  readonly flavor: 'containerd' | 'k3s' | 'rke2';
  /** The main config file that was read. */
  readonly configFile: string;
  readonly configVersion: number;
  /** Files actually read, main first then imports in order. */
  readonly filesRead: readonly string[];
  /** Every directory of config_path (it may be a colon-separated list). */
  readonly configPaths: readonly string[];
  /** Where the agent writes hosts.toml: the first directory of config_path; undefined when hosts.toml would be ignored. */
  readonly hostsDir: string | undefined;
  readonly problems: readonly AgentError[];
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);

function dig(doc: Table, path: readonly string[]): unknown {
  let cur: unknown = doc;
  for (const p of path) {
    if (!isTable(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

/** Where config_path lives, by config version (1, 2, 3). */
function registryConfigPath(doc: Table, version: number): unknown {
  if (version >= 3) return dig(doc, ['plugins', 'io.containerd.cri.v1.images', 'registry', 'config_path']);
  if (version === 2) return dig(doc, ['plugins', 'io.containerd.grpc.v1.cri', 'registry', 'config_path']);
  return dig(doc, ['plugins', 'cri', 'registry', 'config_path']) ?? dig(doc, ['plugins', 'io.containerd.grpc.v1.cri', 'registry', 'config_path']);
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

/** Expands an `imports` entry the way containerd does (filepath.Glob; relative to the main file's directory). */
function expandImport(entry: string, baseDir: string, fs: HostReader): string[] {
  const abs = posix.isAbsolute(entry) ? entry : posix.join(baseDir, entry);
  if (!/[*?[]/.test(abs)) return [abs];
  const dir = posix.dirname(abs);
  const re = globToRegExp(posix.basename(abs));
  return (fs.listDir(dir) ?? []).filter((n) => re.test(n)).sort().map((n) => posix.join(dir, n));
}

/**
 * Finds containerd's registry config_path by reading its config and every import, the way
 * containerd merges them (later files override earlier ones). Reads through `fs` only.
 */
export function detectContainerd(fs: HostReader): ContainerdInfo | undefined {
  for (const embedded of EMBEDDED_CONTAINERD) {
    if (fs.readText(embedded.config) !== undefined) {
      const info = readConfig(fs, embedded.config, embedded.flavor);
      // k3s/RKE2 set config_path to their certs.d when registries.yaml exists; fall back to it.
      if (info.hostsDir === undefined) {
        return { ...info, configPaths: [embedded.certsD], hostsDir: embedded.certsD, problems: info.problems.filter((p) => p.code !== 'NRC_E_CONTAINERD_NO_CONFIG_PATH') };
      }
      return info;
    }
  }
  if (fs.readText(CONTAINERD_CONFIG) === undefined) return undefined;
  return readConfig(fs, CONTAINERD_CONFIG, 'containerd');
}

function readConfig(fs: HostReader, file: string, flavor: ContainerdInfo['flavor']): ContainerdInfo {
  const problems: AgentError[] = [];
  const filesRead: string[] = [];
  let version = 1;
  let configPath: unknown;
  const parseFile = (path: string): Table | undefined => {
    const text = fs.readText(path);
    if (text === undefined) return undefined;
    try {
      const doc = parseToml(text) as Table;
      filesRead.push(path);
      return doc;
    } catch {
      problems.push(new AgentError('NRC_E_CONTAINERD_CONFIG_INVALID', { subject: path }));
      return undefined;
    }
  };
  const main = parseFile(file);
  if (main) {
    version = typeof main['version'] === 'number' ? main['version'] : 1;
    configPath = registryConfigPath(main, version);
    const imports = Array.isArray(main['imports']) ? main['imports'].filter((i): i is string => typeof i === 'string') : [];
    for (const entry of imports) {
      for (const path of expandImport(entry, posix.dirname(file), fs)) {
        const doc = parseFile(path);
        if (!doc) continue;
        // An import is read with its own version, defaulting to the main file's.
        const v = typeof doc['version'] === 'number' ? doc['version'] : version;
        const cp = registryConfigPath(doc, v);
        if (cp !== undefined) configPath = cp;
      }
    }
  }
  let configPaths: string[] = [];
  if (typeof configPath === 'string' && configPath.trim() !== '') {
    configPaths = configPath.split(':').filter((p) => p !== '');
  } else if (main && version >= 3) {
    // containerd 2.x default on Linux.
    configPaths = ['/etc/containerd/certs.d', '/etc/docker/certs.d'];
  }
  if (configPaths.length > 1 && version >= 3) {
    problems.push(new AgentError('NRC_E_CONTAINERD_COLON_LIST', { subject: configPaths.join(':') }));
  }
  if (main && configPaths.length === 0) problems.push(new AgentError('NRC_E_CONTAINERD_NO_CONFIG_PATH', { subject: file }));
  const first = configPaths[0];
  const hostsDir = first !== undefined && posix.isAbsolute(first) ? posix.normalize(first) : undefined;
  return { flavor, configFile: file, configVersion: version, filesRead, configPaths, hostsDir, problems };
}
