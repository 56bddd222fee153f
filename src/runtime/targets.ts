import { posix } from 'node:path';
import type { AgentError } from '../errors.ts';
import type { HostReader } from '../host/host-fs.ts';
import { PROVIDER_RESPONSE_PATH } from '../model/state-paths.ts';
import type { Targets } from '../model/targets.ts';
import { detectContainerd, type ContainerdInfo, type ContainerdVersionOption } from './containerd.ts';

export interface TargetOptions {
  /** The kubelet's --root-dir. */
  readonly kubeletRootDir: string;
  /** The kubelet's $HOME and working directory, for its fallback search. */
  readonly kubeletHome: string;
  readonly kubeletCwd: string;
  /** Docker config for tools on the node; '' leaves it alone. */
  readonly dockerConfig: string;
  readonly writeContainerd: boolean;
  readonly containerdVersion: ContainerdVersionOption;
  /** Where the kubelet's credentials go: its docker config.json, or the credential provider's state. */
  readonly kubeletCredentials?: KubeletCredentialsMode;
}

/** --kubelet-credentials: `config-json` (the kubelet's config.json) or `provider` (a credential provider plugin). */
export const KUBELET_CREDENTIALS_MODES = ['config-json', 'provider'] as const;
export type KubeletCredentialsMode = (typeof KUBELET_CREDENTIALS_MODES)[number];

export const DEFAULT_TARGET_OPTIONS: TargetOptions = {
  kubeletRootDir: '/var/lib/kubelet',
  kubeletHome: '/root',
  kubeletCwd: '/',
  dockerConfig: '/root/.docker/config.json',
  writeContainerd: true,
  containerdVersion: 'auto',
  kubeletCredentials: 'config-json',
};

/** The kubelet's search order (pkg/credentialprovider/config.go): config.json files first, then .dockercfg. */
export function kubeletSearchPath(o: TargetOptions): string[] {
  const dirs = [o.kubeletRootDir, o.kubeletCwd, posix.join(o.kubeletHome, '.docker'), '/.docker'];
  const legacy = [o.kubeletRootDir, o.kubeletCwd, o.kubeletHome, '/'];
  return [...new Set([...dirs.map((d) => posix.join(d, 'config.json')), ...legacy.map((d) => posix.join(d, '.dockercfg'))])];
}

export interface DetectedTargets {
  readonly targets: Targets;
  readonly containerd: ContainerdInfo | undefined;
  readonly problems: readonly AgentError[];
}

export function detectTargets(fs: HostReader, o: TargetOptions): DetectedTargets {
  const search = kubeletSearchPath(o);
  const containerd = o.writeContainerd ? detectContainerd(fs, o.containerdVersion) : undefined;
  const certsDirs: string[] = [];
  // Other runtimes' trust stores, only where that runtime's config directory exists.
  if (fs.listDir('/etc/docker') !== undefined) certsDirs.push('/etc/docker/certs.d');
  if (fs.listDir('/etc/containers') !== undefined) certsDirs.push('/etc/containers/certs.d');
  const hostsDir = containerd?.hostsDir;
  return {
    targets: {
      kubeletConfig: search[0]!,
      kubeletFallbacks: search.slice(1),
      dockerConfig: o.dockerConfig === '' ? undefined : o.dockerConfig,
      containerdHostsDir: hostsDir,
      // containerd may read /etc/docker/certs.d itself (config_path list): never write it twice.
      certsDirs: certsDirs.filter((d) => d !== hostsDir),
      providerResponse: o.kubeletCredentials === 'provider' ? PROVIDER_RESPONSE_PATH : undefined,
    },
    containerd,
    problems: containerd?.problems ?? [],
  };
}
