/** Where the outputs go on this node (host paths), as found by runtime detection and flags. */
export interface Targets {
  /** `{kubelet root dir}/config.json`. */
  readonly kubeletConfig: string;
  /** Files the kubelet would read today when kubeletConfig is absent, in its search order. */
  readonly kubeletFallbacks: readonly string[];
  /** Docker config for tools on the node (`/root/.docker/config.json`); undefined to leave it alone. */
  readonly dockerConfig: string | undefined;
  /** containerd's hosts directory (first entry of config_path); undefined when there is none. */
  readonly containerdHostsDir: string | undefined;
  /** `/etc/docker/certs.d` and `/etc/containers/certs.d`, each only if that runtime's directory exists. */
  readonly certsDirs: readonly string[];
  /**
   * Provider mode (--kubelet-credentials provider): the credential provider's response file. The
   * kubelet's credentials go there instead of into kubeletConfig, which keeps only foreign entries
   * the kubelet tries before the provider's. Undefined (config-json mode): they go into kubeletConfig.
   */
  readonly providerResponse?: string | undefined;
  /**
   * Provider mode with namespace scoping served on this node: the directory of per-namespace
   * answers (PROVIDER_NAMESPACES_DIR). Undefined: scoped credentials are written nowhere.
   */
  readonly providerNamespacesDir?: string | undefined;
  /** Why scoped credentials are not served on this node (reported with NRC_E_SCOPE_UNSUPPORTED). */
  readonly scopedRefusal?: string | undefined;
}
