// Every flag of every command, and argv/env → Flags. config.ts turns Flags into the typed,
// validated configurations that the rest of the agent takes.
import { parseArgs } from 'node:util';
import { AgentError } from '../errors.ts';
import { quoteSubject } from '../model/registry-key.ts';
import { DEFAULT_STARTUP_TAINT } from '../report/node-annotations.ts';
import { DEFAULT_TARGET_OPTIONS, KUBELET_CREDENTIALS_MODES, NAMESPACE_SCOPING_MODES } from '../runtime/targets.ts';
import { AGENT_SERVICE_ACCOUNT, BROKER_NAME, DEFAULT_BROKER_SECRET_NAME, DEFAULT_SECRET_NAME, DEFAULT_SECRET_NAMESPACE } from '../sources/kubernetes/defaults.ts';

/** What a number flag accepts; its value is checked once, when the configuration is built. */
export interface NumberRule {
  readonly integer?: boolean;
  /** Smallest value allowed. */
  readonly atLeast?: number;
  /** The value must be greater than this. */
  readonly above?: number;
}

export interface FlagSpec {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  readonly help: string;
  /** The one place a flag's default is written. */
  readonly default?: string;
  /** The only values a string flag takes. */
  readonly choices?: readonly string[];
  /** A string flag that holds a number. */
  readonly number?: NumberRule;
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
  {
    name: 'kubelet-credentials',
    type: 'string',
    default: DEFAULT_TARGET_OPTIONS.kubeletCredentials,
    choices: KUBELET_CREDENTIALS_MODES,
    help: "Where the kubelet's credentials go: config-json (its config.json, which it reads through a 5-minute cache) or provider (a state file that the credential provider plugin of examples/credential-provider serves to the kubelet at every pull, so a change counts at the next pull; the node's kubelet must be configured with that plugin, docs/kubernetes.md#credential-provider-mode).",
  },
  {
    name: 'namespace-scoping',
    type: 'string',
    default: DEFAULT_TARGET_OPTIONS.namespaceScoping,
    choices: NAMESPACE_SCOPING_MODES,
    help: "Serve namespace-scoped registries (docs/kubernetes.md#scoped-registries) to the pods of their namespaces only: needs --kubelet-credentials provider and a kubelet booted with the service-account CredentialProviderConfig. serviceaccount: checked against the Node's kubelet version (1.35 or later, where KEP-2535 re-verifies images already on the node); assume-ensure-secret-pulled-images: trusts that the kubelet has KubeletEnsureSecretPulledImages on (1.34 with the gate). off: scoped registries are configured nowhere on this node (NRC_E_SCOPE_UNSUPPORTED), never node-wide.",
  },
];

/** Flags of the credential check (for `run`, and the `check` command). */
export const CHECK_FLAGS: readonly FlagSpec[] = [
  { name: 'check-credentials', type: 'boolean', help: "Check each credential against its registry's /v2/ (Basic or Bearer token flow) after it changes; results go to metrics, Events, Node annotations." },
  { name: 'check-timeout-ms', type: 'string', default: '5000', number: { above: 0 }, help: 'Timeout of each HTTP request of a credential check.' },
  { name: 'drop-rejected-docker-hub', type: 'boolean', help: 'Do not write a Docker Hub credential that Docker Hub rejects (a wrong one breaks public pulls). Needs --check-credentials.' },
];

/** The Kubernetes side of `run`: sources, server, node status. */
export const KUBERNETES_RUN_FLAGS: readonly FlagSpec[] = [
  { name: 'kubeconfig', type: 'string', help: 'Kubeconfig file; default: in-cluster config when running in a pod.' },
  { name: 'no-kubernetes', type: 'boolean', help: 'Do not talk to Kubernetes even in a pod (file sources only).' },
  { name: 'secret-namespace', type: 'string', default: DEFAULT_SECRET_NAMESPACE, help: 'Namespace of the docker-config Secret and of the Registry resources.' },
  { name: 'secret-name', type: 'string', default: DEFAULT_SECRET_NAME, help: "The docker-config Secret to watch; '' disables the watch." },
  { name: 'secret-dir', type: 'string', help: 'Read that Secret from a mounted volume directory instead of watching it (no Secret RBAC needed).' },
  {
    name: 'broker-secret-name',
    type: 'string',
    default: DEFAULT_BROKER_SECRET_NAME,
    help: "The cluster broker's Secret to watch (every Registry credential, ECR tokens included; it wins over --secret-name); '' disables the watch.",
  },
  {
    name: 'broker-secret-grace-seconds',
    type: 'string',
    default: '600',
    number: { atLeast: 0 },
    help: "When the broker's Secret disappears (deleted by mistake: the broker rewrites it within seconds), keep its credentials on the node this long before removing them; 0 removes them at once.",
  },
  {
    name: 'registries',
    type: 'boolean',
    help: "Opt-in (the per-node ECR variant): watch Registry resources on this node; awsIamRole ones use this agent's own ServiceAccount token, static ones come through the platform's Secret, awsIamUser needs the broker.",
  },
  { name: 'node-name', type: 'string', help: 'This node (Downward API spec.nodeName): annotations and Events go to it.' },
  {
    name: 'startup-taint',
    type: 'string',
    default: DEFAULT_STARTUP_TAINT,
    help: "The taint key nodes are registered with so that no pod lands before the credentials are effective: removed from this node once they are (provider mode: at the first write; config.json mode: when the kubelet has read the file, or its 5-minute cache has run out). Absent taint: nothing happens. '' never removes one.",
  },
  { name: 'listen-address', type: 'string', help: 'Serve /healthz, /readyz and /metrics on host:port (e.g. 0.0.0.0:8080).' },
  { name: 'ecr-service-account', type: 'string', default: `okteto/${AGENT_SERVICE_ACCOUNT}`, help: "With --registries: NAMESPACE/NAME of this agent's own service account, whose tokens awsIamRole registries exchange with STS (its Role allows no other)." },
  { name: 'ecr-default-chain', type: 'string', help: "Comma-separated ECR hosts without a Registry resource that use the node's own AWS identity (SDK default chain)." },
  { name: 'ecr-fleet-size', type: 'string', default: '100', number: { integer: true, atLeast: 1 }, help: 'About how many nodes run the agent: spreads their first ECR calls to stay under the AWS quota.' },
];

export const RUN_FLAGS: readonly FlagSpec[] = [
  { name: 'debounce-ms', type: 'string', default: '200', number: { integer: true, atLeast: 0 }, help: 'A change after a quiet spell applies at once; a burst (changes piling up while an apply is pending) is applied once no change came for this long (at most max(5 s, 25x) after it began).' },
  { name: 'resync-seconds', type: 'string', default: '60', number: { above: 0 }, help: 'Re-check the host files this often (with jitter) to repair drift.' },
  ...KUBERNETES_RUN_FLAGS,
  ...CHECK_FLAGS,
];

/** `broker`: the cluster broker (a Deployment with leader election). */
export const BROKER_FLAGS: readonly FlagSpec[] = [
  { name: 'kubeconfig', type: 'string', help: 'Kubeconfig file; default: in-cluster config when running in a pod.' },
  { name: 'namespace', type: 'string', default: DEFAULT_SECRET_NAMESPACE, help: 'Namespace of the Registry resources, the Secrets they reference, the Lease and the output Secret.' },
  { name: 'broker-secret-name', type: 'string', default: DEFAULT_BROKER_SECRET_NAME, help: 'The dockerconfigjson Secret the broker writes (and alone manages).' },
  { name: 'secret-name', type: 'string', default: DEFAULT_SECRET_NAME, help: "The platform's docker-config Secret, watched by name for its scopes annotation only: the broker resolves its namespace selectors for the nodes (docs/kubernetes.md#scoped-registries); '' for none." },
  { name: 'lease-name', type: 'string', default: BROKER_NAME, help: 'The coordination.k8s.io Lease of the leader election.' },
  { name: 'identity', type: 'string', help: 'This candidate in the election; default: the pod name ($POD_NAME or the hostname).' },
  {
    name: 'ecr-service-account',
    type: 'string',
    default: `okteto/${BROKER_NAME}`,
    help: "NAMESPACE/NAME of the service account whose tokens awsIamRole registries exchange with STS: the broker's own by default (trust policy sub system:serviceaccount:okteto:node-registry-credentials-broker); okteto/okteto only with the platform-account variant.",
  },
  { name: 'lease-duration-seconds', type: 'string', default: '15', number: { above: 0 }, help: 'How long a Lease holds without renewal before another replica may take it.' },
  { name: 'renew-deadline-seconds', type: 'string', default: '10', number: { above: 0 }, help: 'A leader that cannot renew within this stops and exits (must be below the lease duration).' },
  { name: 'retry-period-seconds', type: 'string', default: '2', number: { above: 0 }, help: 'How often the leader renews and candidates retry (must be below the renew deadline).' },
  { name: 'listen-address', type: 'string', help: 'Serve /healthz, /readyz (ready = leading or standing by) and /metrics on host:port.' },
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

const specOf = (specs: readonly FlagSpec[], name: string): FlagSpec | undefined => specs.find((s) => s.name === name);

/** A string flag's value, or its default from `specs` when the Flags were built without it. */
export function withDefault(specs: readonly FlagSpec[], name: string, value: string | undefined): string | undefined {
  return value ?? specOf(specs, name)?.default;
}

function describeRule(r: NumberRule): string {
  const kind = r.integer ? 'a whole number' : 'a number';
  if (r.atLeast !== undefined) return `${kind} of at least ${r.atLeast}`;
  if (r.above !== undefined) return `${kind} greater than ${r.above}`;
  return kind;
}

/**
 * A number flag's value (its default from `specs` when not given), checked against its rule:
 * a value that is not a number, or is out of range, is NRC_E_FLAG_INVALID, never NaN.
 */
export function numberFlag(specs: readonly FlagSpec[], name: string, value: string | undefined): number | AgentError {
  const spec = specOf(specs, name);
  const rule = spec?.number ?? {};
  const text = value ?? spec?.default;
  const n = text === undefined || text.trim() === '' ? Number.NaN : Number(text);
  const ok = Number.isFinite(n) && (!rule.integer || Number.isInteger(n)) && (rule.atLeast === undefined || n >= rule.atLeast) && (rule.above === undefined || n > rule.above);
  if (ok) return n;
  return new AgentError('NRC_E_FLAG_INVALID', { subject: `--${name}`, detail: `(${text === undefined ? 'no value' : `got ${quoteSubject(text)}`}; expected ${describeRule(rule)})` });
}

// Summaries and flags of the commands whose code cli.ts loads only when that command runs.

export const BROKER_SUMMARY =
  "The cluster broker (a Deployment of 2 replicas, leader election on a Lease): resolves the Registry resources and exchanges AWS credentials for ECR tokens once per cluster, and writes them into one dockerconfigjson Secret that the node agents watch.\nExit 0 on SIGTERM; 1 when leadership is lost or it cannot start.";

export const CHECK_COMMAND_FLAGS: readonly FlagSpec[] = [
  { name: 'dockerconfig', type: 'string', help: 'A dockerconfigjson / .dockercfg file, or a mounted Secret volume directory (required).' },
  { name: 'registry-config', type: 'string', help: 'TOML with per-registry host options; ca/ca_file and skip_verify are used by the check.' },
  CHECK_FLAGS.find((s) => s.name === 'check-timeout-ms')!,
  { name: 'output', type: 'string', default: 'text', help: 'text or json.' },
  { name: 'help', type: 'boolean', help: 'Show this help.' },
];

export const CHECK_SUMMARY =
  "Check every credential of --dockerconfig against its registry's /v2/ (Basic, or the Bearer token flow) and print valid / rejected / unreachable per registry; writes nothing.\nExit 0: none rejected or unreachable. 2: some rejected or unreachable. 1: the input cannot be read.";

export const STATUS_FLAGS: readonly FlagSpec[] = [
  { name: 'kubeconfig', type: 'string', help: 'Kubeconfig file; default: in-cluster config, else $KUBECONFIG or ~/.kube/config.' },
  { name: 'behind-after', type: 'string', default: '10m', help: 'A node still on an older configuration this long after the newest one was applied is "behind" (s, m, h).' },
  { name: 'expiry-warning', type: 'string', default: '1h', help: 'Mark nodes whose registry tokens expire within this time (s, m, h).' },
  { name: 'output', type: 'string', default: 'text', help: 'text or json.' },
  { name: 'help', type: 'boolean', help: 'Show this help.' },
];

export const STATUS_SUMMARY =
  'Fleet view: what every node reports (configuration hash, applied-at, whether its configuration is effective, token expiries, last error codes), one line per node; nodes behind or failing are marked with !. Then one line per Registry from its status (resolved, effective on n/N nodes, token expiry, masked hint).\nExit 0: every node in step. 2: some node behind, failing or not reporting. 1: the cluster cannot be read.';
