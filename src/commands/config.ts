// Flags → typed, validated configurations, built once at the edge. Every piece below the
// commands (the agent, the Kubernetes runtime, doctor, the check) takes one of these, never the
// raw Flags; a value that cannot be used is a coded error (NRC_E_FLAG_INVALID), never NaN.
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { CheckSettings } from '../check/settings.ts';
import { AgentError } from '../errors.ts';
import { HostFs } from '../host/host-fs.ts';
import { quoteSubject } from '../model/registry-key.ts';
import { DEFAULT_STARTUP_TAINT } from '../report/node-annotations.ts';
import type { ContainerdVersionOption } from '../runtime/containerd.ts';
import { DEFAULT_TARGET_OPTIONS, KUBELET_CREDENTIALS_MODES, NAMESPACE_SCOPING_MODES, type TargetOptions } from '../runtime/targets.ts';
import { EMPTY_REGISTRY_CONFIG, parseRegistryConfig, type RegistryConfig } from '../sources/registry-config.ts';
import { hostname } from 'node:os';
import { BROKER_FLAGS, CHECK_FLAGS, COMMON_FLAGS, KUBERNETES_RUN_FLAGS, numberFlag, RUN_FLAGS, str, withDefault, type Flags } from './options.ts';

/** Where the node is and which of its files the agent writes. */
export interface HostConfig {
  /** Absolute: the node's / as the agent sees it. */
  readonly hostRoot: string;
  readonly targets: TargetOptions;
}

/** A command that reads credentials: the host, plus the input files. */
export interface InputConfig extends HostConfig {
  readonly dockerconfig: string | undefined;
  readonly registryConfig: string | undefined;
}

export interface KubernetesConfig {
  readonly hostRoot: string;
  readonly kubeconfig: string | undefined;
  /** false with --no-kubernetes. */
  readonly useKubernetes: boolean;
  readonly namespace: string;
  /** '' disables the Secret watch. */
  readonly secretName: string;
  /** The broker's Secret (Registry-derived, wins over secretName); '' disables its watch. */
  readonly brokerSecretName: string;
  /** How long the node keeps the broker's credentials after its Secret disappeared (0: drop them at once). */
  readonly brokerSecretGraceMs: number;
  readonly secretDir: string | undefined;
  readonly watchRegistries: boolean;
  readonly nodeName: string | undefined;
  /** The startup taint's key to lift once effective; '' for none. */
  readonly startupTaint: string;
  readonly listenAddress: string | undefined;
  readonly ecr: {
    readonly serviceAccount: { readonly namespace: string; readonly name: string };
    readonly defaultChainHosts: readonly string[];
    readonly fleetSize: number;
  };
}

/** `run` (and the local demo): the agent, its reconciler and its sources. */
export interface AgentConfig extends InputConfig {
  readonly logLevel: string;
  readonly debounceMs: number;
  readonly resyncMs: number;
  readonly check: CheckSettings;
  readonly kubernetes: KubernetesConfig;
}

export function hostConfig(f: Flags): HostConfig {
  return {
    hostRoot: path.resolve(withDefault(COMMON_FLAGS, 'host-root', str(f, 'host-root'))!),
    targets: {
      ...DEFAULT_TARGET_OPTIONS,
      kubeletRootDir: str(f, 'kubelet-root-dir') ?? DEFAULT_TARGET_OPTIONS.kubeletRootDir,
      dockerConfig: str(f, 'docker-config-path') ?? DEFAULT_TARGET_OPTIONS.dockerConfig,
      writeContainerd: f['no-containerd'] !== true,
      containerdVersion: withDefault(COMMON_FLAGS, 'containerd-version', str(f, 'containerd-version')) as ContainerdVersionOption,
      // parseFlags has checked the value against its choices; cleanup has no such flag (it removes both).
      kubeletCredentials: KUBELET_CREDENTIALS_MODES.find((m) => m === str(f, 'kubelet-credentials')) ?? DEFAULT_TARGET_OPTIONS.kubeletCredentials,
      namespaceScoping: NAMESPACE_SCOPING_MODES.find((m) => m === str(f, 'namespace-scoping')) ?? DEFAULT_TARGET_OPTIONS.namespaceScoping,
    },
  };
}

export function inputConfig(f: Flags): InputConfig {
  return { ...hostConfig(f), dockerconfig: str(f, 'dockerconfig'), registryConfig: str(f, 'registry-config') };
}

export function checkSettings(f: Flags): CheckSettings | AgentError {
  const timeoutMs = numberFlag(CHECK_FLAGS, 'check-timeout-ms', str(f, 'check-timeout-ms'));
  if (timeoutMs instanceof AgentError) return timeoutMs;
  return {
    enabled: f['check-credentials'] === true,
    checker: { timeoutMs },
    policy: { dropRejectedDockerHub: f['check-credentials'] === true && f['drop-rejected-docker-hub'] === true },
  };
}

export function kubernetesConfig(f: Flags): KubernetesConfig | AgentError {
  const fleetSize = numberFlag(KUBERNETES_RUN_FLAGS, 'ecr-fleet-size', str(f, 'ecr-fleet-size'));
  if (fleetSize instanceof AgentError) return fleetSize;
  const sa = serviceAccountFlag(withDefault(KUBERNETES_RUN_FLAGS, 'ecr-service-account', str(f, 'ecr-service-account'))!);
  if (sa instanceof AgentError) return sa;
  const graceSeconds = numberFlag(KUBERNETES_RUN_FLAGS, 'broker-secret-grace-seconds', str(f, 'broker-secret-grace-seconds'));
  if (graceSeconds instanceof AgentError) return graceSeconds;
  const startupTaint = withDefault(KUBERNETES_RUN_FLAGS, 'startup-taint', str(f, 'startup-taint'))!;
  // A taint key is a qualified name: an optional DNS prefix and '/', then at most 63 characters.
  if (startupTaint !== '' && !/^(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(startupTaint)) {
    return new AgentError('NRC_E_FLAG_INVALID', { subject: '--startup-taint', detail: `(got ${quoteSubject(startupTaint)}; expected a taint key such as ${DEFAULT_STARTUP_TAINT}, or '')` });
  }
  return {
    hostRoot: hostConfig(f).hostRoot,
    kubeconfig: str(f, 'kubeconfig'),
    useKubernetes: f['no-kubernetes'] !== true,
    namespace: withDefault(KUBERNETES_RUN_FLAGS, 'secret-namespace', str(f, 'secret-namespace'))!,
    secretName: withDefault(KUBERNETES_RUN_FLAGS, 'secret-name', str(f, 'secret-name'))!,
    brokerSecretName: withDefault(KUBERNETES_RUN_FLAGS, 'broker-secret-name', str(f, 'broker-secret-name'))!,
    brokerSecretGraceMs: graceSeconds * 1000,
    secretDir: str(f, 'secret-dir'),
    watchRegistries: f['registries'] === true,
    nodeName: str(f, 'node-name'),
    startupTaint,
    listenAddress: str(f, 'listen-address'),
    ecr: {
      serviceAccount: sa,
      defaultChainHosts: (str(f, 'ecr-default-chain') ?? '').split(',').map((h) => h.trim()).filter(Boolean),
      fleetSize,
    },
  };
}

/** NAMESPACE/NAME of a service account. */
function serviceAccountFlag(text: string): { namespace: string; name: string } | AgentError {
  const [namespace, name, ...rest] = text.split('/');
  if (!namespace || !name || rest.length > 0) return new AgentError('NRC_E_FLAG_INVALID', { subject: '--ecr-service-account', detail: '(expected NAMESPACE/NAME)' });
  return { namespace, name };
}

/** `broker`: the cluster broker. */
export interface BrokerConfig {
  readonly kubeconfig: string | undefined;
  readonly namespace: string;
  readonly secretName: string;
  readonly leaseName: string;
  readonly identity: string;
  readonly serviceAccount: { readonly namespace: string; readonly name: string };
  readonly timing: { readonly leaseDurationMs: number; readonly renewDeadlineMs: number; readonly retryPeriodMs: number };
  readonly listenAddress: string | undefined;
  readonly logLevel: string;
}

export function brokerConfig(f: Flags, env: NodeJS.ProcessEnv = process.env): BrokerConfig | AgentError {
  const seconds = (name: string): number | AgentError => numberFlag(BROKER_FLAGS, name, str(f, name));
  const lease = seconds('lease-duration-seconds');
  if (lease instanceof AgentError) return lease;
  const renew = seconds('renew-deadline-seconds');
  if (renew instanceof AgentError) return renew;
  const retry = seconds('retry-period-seconds');
  if (retry instanceof AgentError) return retry;
  if (!(lease > renew && renew > retry)) {
    return new AgentError('NRC_E_FLAG_INVALID', { subject: '--renew-deadline-seconds', detail: '(needs lease duration > renew deadline > retry period)' });
  }
  const sa = serviceAccountFlag(withDefault(BROKER_FLAGS, 'ecr-service-account', str(f, 'ecr-service-account'))!);
  if (sa instanceof AgentError) return sa;
  const secretName = withDefault(BROKER_FLAGS, 'broker-secret-name', str(f, 'broker-secret-name'))!;
  if (secretName === '') return new AgentError('NRC_E_FLAG_INVALID', { subject: '--broker-secret-name', detail: '(the broker needs a Secret name)' });
  return {
    kubeconfig: str(f, 'kubeconfig'),
    namespace: withDefault(BROKER_FLAGS, 'namespace', str(f, 'namespace'))!,
    secretName,
    leaseName: withDefault(BROKER_FLAGS, 'lease-name', str(f, 'lease-name'))!,
    identity: str(f, 'identity') ?? env['POD_NAME'] ?? hostname(),
    serviceAccount: sa,
    timing: { leaseDurationMs: lease * 1000, renewDeadlineMs: renew * 1000, retryPeriodMs: retry * 1000 },
    listenAddress: str(f, 'listen-address'),
    logLevel: withDefault(COMMON_FLAGS, 'log-level', str(f, 'log-level'))!,
  };
}

export function agentConfig(f: Flags): AgentConfig | AgentError {
  const debounceMs = numberFlag(RUN_FLAGS, 'debounce-ms', str(f, 'debounce-ms'));
  if (debounceMs instanceof AgentError) return debounceMs;
  const resyncSeconds = numberFlag(RUN_FLAGS, 'resync-seconds', str(f, 'resync-seconds'));
  if (resyncSeconds instanceof AgentError) return resyncSeconds;
  const check = checkSettings(f);
  if (check instanceof AgentError) return check;
  const kubernetes = kubernetesConfig(f);
  if (kubernetes instanceof AgentError) return kubernetes;
  return { ...inputConfig(f), logLevel: withDefault(COMMON_FLAGS, 'log-level', str(f, 'log-level'))!, debounceMs, resyncMs: resyncSeconds * 1000, check, kubernetes };
}

export function openHost(hostRoot: string): HostFs | AgentError {
  if (!existsSync(hostRoot) || !statSync(hostRoot).isDirectory()) return new AgentError('NRC_E_HOST_ROOT_MISSING', { subject: hostRoot });
  return new HostFs(hostRoot);
}

/** Reads --registry-config; a file that cannot be read or parsed is an error for the whole run. */
export function loadRegistryConfig(file: string | undefined): RegistryConfig | AgentError {
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
