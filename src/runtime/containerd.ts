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

/**
 * How the containerd on the node merges its config: 1.x replaces a whole plugin table with an
 * import's (services/server/config mergeConfig), 2.x merges them key by key; 2.2+ also defaults
 * an unset config_path. Decided by the containerd version, not by the config's `version` field.
 */
export type ContainerdFamily = '1.x' | '2.0' | '2.2';
/** `auto`: a `version = 3` config means containerd 2.2+ (1.x cannot read it), otherwise 1.x. */
export type ContainerdVersionOption = ContainerdFamily | 'auto';

export interface ContainerdInfo {
  readonly flavor: 'containerd' | 'k3s' | 'rke2';
  /** The main config file that was read. */
  readonly configFile: string;
  /** The merged config's version field. */
  readonly configVersion: number;
  /** The merge rules applied (the node's containerd version family). */
  readonly family: ContainerdFamily;
  /** Files actually read, main first then imports in containerd's order. */
  readonly filesRead: readonly string[];
  /** config_path as `containerd config dump` shows it ('' when unset). */
  readonly configuredPath: string;
  /** Every directory containerd reads hosts.toml from (config_path may be a colon-separated list, or defaulted). */
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

const GRPC_CRI = 'io.containerd.grpc.v1.cri';
const CRI_IMAGES = 'io.containerd.cri.v1.images';

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

/** filepath.Glob on the last path element, as containerd calls it for an import holding "*". */
function glob(abs: string, fs: HostReader): string[] {
  const dir = posix.dirname(abs);
  const re = globToRegExp(posix.basename(abs));
  return (fs.listDir(dir) ?? []).filter((n) => re.test(n)).sort().map((n) => posix.join(dir, n));
}

/**
 * resolveImports: 1.x globs an entry with "*" as written (a relative one against containerd's
 * working directory, "/" for the service) and joins other relative entries to the importing
 * file's directory; 2.x joins first, then globs.
 */
function resolveImports(parent: string, entries: readonly string[], family: ContainerdFamily, fs: HostReader): string[] {
  const out: string[] = [];
  for (const entry of entries) {
    if (family === '1.x') {
      if (entry.includes('*')) out.push(...glob(posix.resolve('/', entry), fs));
      else out.push(posix.isAbsolute(entry) ? posix.normalize(entry) : posix.join(posix.dirname(parent), entry));
    } else {
      const abs = posix.isAbsolute(entry) ? posix.normalize(entry) : posix.join(posix.dirname(parent), entry);
      if (abs.includes('*')) out.push(...glob(abs, fs));
      else out.push(abs);
    }
  }
  return out;
}

/** mergo.Merge with WithOverride: maps merged key by key, a non-empty value replaces. */
function deepMerge(to: Table, from: Table): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = to[k];
    if (isTable(cur) && isTable(v)) deepMerge(cur, v);
    else if (isTable(v)) to[k] = structuredClone(v);
    else if (v !== '' && v !== 0 && v !== false) to[k] = v;
  }
}

/** containerd 2.x v1Migrate: a version 1 file's short plugin names become URIs. */
function renameV1Plugins(plugins: Table): void {
  if (isTable(plugins['cri'])) {
    plugins[GRPC_CRI] = plugins['cri'];
    delete plugins['cri'];
  }
}

/**
 * Finds containerd's registry config_path by reading its config and every import the way the
 * node's containerd merges them. Reads through `fs` only.
 */
export function detectContainerd(fs: HostReader, version: ContainerdVersionOption = 'auto'): ContainerdInfo | undefined {
  for (const embedded of EMBEDDED_CONTAINERD) {
    if (fs.readText(embedded.config) !== undefined) {
      const info = readContainerdConfig(fs, embedded.config, embedded.flavor, version);
      // k3s/RKE2 set config_path to their certs.d when registries.yaml exists; fall back to it.
      if (info.hostsDir === undefined) {
        return { ...info, configPaths: [embedded.certsD], hostsDir: embedded.certsD, problems: info.problems.filter((p) => p.code !== 'NRC_E_CONTAINERD_NO_CONFIG_PATH') };
      }
      return info;
    }
  }
  if (fs.readText(CONTAINERD_CONFIG) === undefined) return undefined;
  return readContainerdConfig(fs, CONTAINERD_CONFIG, 'containerd', version);
}

export function readContainerdConfig(fs: HostReader, file: string, flavor: ContainerdInfo['flavor'], version: ContainerdVersionOption = 'auto'): ContainerdInfo {
  const problems: AgentError[] = [];
  const filesRead: string[] = [];
  const parseFile = (path: string): Table | undefined => {
    const text = fs.readText(path);
    if (text === undefined) {
      // containerd refuses to start on a missing import; say so rather than guess.
      if (path !== file) problems.push(new AgentError('NRC_E_CONTAINERD_CONFIG_INVALID', { subject: path, detail: '(imported, but missing)' }));
      return undefined;
    }
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
  const mainVersion = main && typeof main['version'] === 'number' ? main['version'] : 0;
  const family: ContainerdFamily = version !== 'auto' ? version : mainVersion >= 3 ? '2.2' : '1.x';

  // LoadConfig: breadth first, each file once, imports of imports too. 2.x starts from its
  // default config, which is version 3.
  const merged: Table = { plugins: {} };
  let mergedVersion = family === '1.x' ? 0 : 3;
  const loaded = new Set<string>();
  const pending: [string, Table | undefined][] = [[file, main]];
  while (pending.length > 0) {
    const [path, parsed] = pending.shift()!;
    if (loaded.has(path)) continue;
    loaded.add(path);
    const doc = parsed ?? parseFile(path);
    if (!doc) continue;
    let v = typeof doc['version'] === 'number' ? doc['version'] : 0;
    const plugins = isTable(doc['plugins']) ? structuredClone(doc['plugins']) : {};
    if (family === '1.x') {
      for (const [k, t] of Object.entries(plugins)) (merged['plugins'] as Table)[k] = t;
    } else {
      // A version 0/1 file is migrated to the version read so far: renames only, so a v1 CRI
      // registry table lands where a version 3 config no longer reads it.
      if (v <= 1) {
        renameV1Plugins(plugins);
        v = mergedVersion;
      }
      deepMerge(merged['plugins'] as Table, plugins);
    }
    if (v !== 0) mergedVersion = v;
    const imports = Array.isArray(doc['imports']) ? doc['imports'].filter((i): i is string => typeof i === 'string') : [];
    for (const p of resolveImports(path, imports, family, fs)) pending.push([p, undefined]);
  }

  let registry: unknown;
  if (family === '1.x') {
    registry = dig(merged, ['plugins', mergedVersion >= 2 ? GRPC_CRI : 'cri', 'registry']);
  } else {
    const plugins = merged['plugins'] as Table;
    // The images plugin's ConfigMigration runs only for a merged config below version 3.
    const grpc = plugins[GRPC_CRI];
    registry = mergedVersion < 3 && isTable(grpc) && grpc['registry'] !== undefined ? grpc['registry'] : dig(merged, ['plugins', CRI_IMAGES, 'registry']);
  }
  const rawPath = isTable(registry) ? registry['config_path'] : undefined;
  const configuredPath = typeof rawPath === 'string' ? rawPath : '';
  let configPaths = configuredPath.split(':').filter((p) => p !== '');
  const mirrors = isTable(registry) && isTable(registry['mirrors']) && Object.keys(registry['mirrors']).length > 0;
  // plugins/cri/images (2.2+): an unset config_path defaults to both directories unless mirrors are set.
  if (main && configPaths.length === 0 && family === '2.2' && !mirrors) configPaths = ['/etc/containerd/certs.d', '/etc/docker/certs.d'];
  if (configPaths.length > 1 && family !== '1.x') {
    problems.push(new AgentError('NRC_E_CONTAINERD_COLON_LIST', { subject: configPaths.join(':') }));
  }
  if (main && configPaths.length === 0) problems.push(new AgentError('NRC_E_CONTAINERD_NO_CONFIG_PATH', { subject: file }));
  const first = configPaths[0];
  const hostsDir = first !== undefined && posix.isAbsolute(first) ? posix.normalize(first) : undefined;
  return { flavor, configFile: file, configVersion: mergedVersion === 0 ? 1 : mergedVersion, family, filesRead, configuredPath, configPaths, hostsDir, problems };
}
