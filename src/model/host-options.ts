/** Per-registry host options from the registry config; they decide whether containerd gets a hosts.toml. */
export interface HostOptions {
  readonly host: string;
  /** PEM text of the CA bundle that signs the registry's certificate. */
  readonly ca?: string;
  readonly skipVerify: boolean;
  /** Put `Authorization: Basic …` into hosts.toml (Basic-auth registries only; Docker Hub uses Bearer). */
  readonly authHeader: boolean;
}
