import { posix } from 'node:path';
import type { AgentError } from '../errors.ts';
import type { HostReader } from '../host/host-fs.ts';
import { PROVIDER_NAMESPACES_DIR, PROVIDER_RESPONSE_PATH } from '../model/state-paths.ts';
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
  /** --namespace-scoping: serve namespace-scoped credentials per service account (provider mode only). */
  readonly namespaceScoping?: NamespaceScopingMode;
  /** Set at start when this node cannot serve them after all (its kubelet's version): the reason. */
  readonly scopedRefusal?: string;
}

/**
 * --namespace-scoping: `off`; `serviceaccount` (the kubelet runs the plugin with service-account
 * tokens, KEP-4412, and is 1.35 or later so that KEP-2535 re-verifies present images: checked
 * against the Node's kubeletVersion); `assume-ensure-secret-pulled-images` (the same, trusting the
 * operator that the kubelet has KubeletEnsureSecretPulledImages on, e.g. 1.34 with the gate set).
 */
export const NAMESPACE_SCOPING_MODES = ['off', 'serviceaccount', 'assume-ensure-secret-pulled-images'] as const;
export type NamespaceScopingMode = (typeof NAMESPACE_SCOPING_MODES)[number];

/** The first kubelet minor where KubeletEnsureSecretPulledImages (KEP-2535) is on by default. */
export const SCOPING_MIN_KUBELET = { major: 1, minor: 35 } as const;

/**
 * `serviceaccount` mode, given the Node's status.nodeInfo.kubeletVersion: why its kubelet cannot
 * hold the scope (an older one lets another namespace's pod run an image already on the node
 * without credentials), or undefined when it can. An unknown version refuses: never widened.
 */
export function kubeletScopingRefusal(kubeletVersion: string | undefined): string | undefined {
  const m = /^v?(\d+)\.(\d+)\./.exec(kubeletVersion ?? '');
  if (!m) return `the kubelet's version could not be read from this Node (${kubeletVersion === undefined ? 'no answer' : JSON.stringify(kubeletVersion.slice(0, 40))})`;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > SCOPING_MIN_KUBELET.major || (major === SCOPING_MIN_KUBELET.major && minor >= SCOPING_MIN_KUBELET.minor)) return undefined;
  return `kubelet ${kubeletVersion} is older than ${SCOPING_MIN_KUBELET.major}.${SCOPING_MIN_KUBELET.minor}, where KubeletEnsureSecretPulledImages is on by default (1.34 with the gate set: --namespace-scoping=assume-ensure-secret-pulled-images)`;
}

/** Why a node with these options does not serve scoped credentials, or undefined when it does. */
export function scopedRefusal(o: TargetOptions): string | undefined {
  if (o.scopedRefusal !== undefined) return o.scopedRefusal;
  if ((o.namespaceScoping ?? 'off') === 'off') return 'namespace scoping is off on this node (--namespace-scoping)';
  if (o.kubeletCredentials !== 'provider') return 'namespace scoping needs --kubelet-credentials provider';
  return undefined;
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
  namespaceScoping: 'off',
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
      ...(scopedRefusal(o) === undefined ? { providerNamespacesDir: PROVIDER_NAMESPACES_DIR } : { scopedRefusal: scopedRefusal(o) }),
    },
    containerd,
    problems: containerd?.problems ?? [],
  };
}
