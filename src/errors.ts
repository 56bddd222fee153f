// Every error the agent can report. Codes are stable: operators grep for them and
// docs/errors.md is checked against this table by a test.

export interface ErrorInfo {
  /** What went wrong, in general terms (no values from the input: they may be secrets). */
  readonly summary: string;
  /** What the operator should do about it. */
  readonly fix: string;
}

export const ERROR_CODES = {
  // Input: the dockerconfigjson and registry config
  NRC_E_INPUT_NOT_JSON: {
    summary: 'The docker config is not valid JSON.',
    fix: 'Fix the Secret so that .dockerconfigjson holds a JSON object like {"auths": {...}}.',
  },
  NRC_E_INPUT_SHAPE: {
    summary: 'The docker config is JSON but not a docker config (expected {"auths": {...}} or the legacy .dockercfg map).',
    fix: 'Recreate the Secret with type kubernetes.io/dockerconfigjson, e.g. with `kubectl create secret docker-registry`.',
  },
  NRC_E_INPUT_TOO_LARGE: {
    summary: 'The docker config is larger than the agent accepts.',
    fix: 'Keep the Secret under the size limit (Kubernetes itself caps Secrets at 1 MiB); remove unused registries.',
  },
  NRC_E_INPUT_UNREADABLE: {
    summary: 'The docker config file cannot be read (missing, or permission denied).',
    fix: 'Check the --dockerconfig path (or the mounted Secret volume); the last good configuration stays on the node meanwhile.',
  },
  NRC_E_SOURCE_NOT_READY: {
    summary: 'A credential source has not delivered a valid configuration yet, so the agent changes nothing on the node.',
    fix: 'Check the errors reported for that source; the node keeps its current configuration until every source is readable.',
  },
  NRC_E_FLAG_INVALID: {
    summary: 'A flag (or its NRC_* variable) has a value the agent does not accept: not one of its choices, a number that is not a number or is out of range, or a malformed duration.',
    fix: 'Use a value that `<command> --help` lists or describes for that flag; the command did nothing.',
  },
  NRC_E_REGISTRY_HOST_INVALID: {
    summary: 'A registry key is not a valid host[:port][/path] (empty, bad characters, path traversal or a bad port).',
    fix: 'Use a plain registry hostname such as registry.example.com or registry.example.com:5000 as the key.',
  },
  NRC_E_ENTRY_NOT_OBJECT: {
    summary: 'A registry entry is not a JSON object.',
    fix: 'Each value under "auths" must be an object with "auth" or "username" and "password".',
  },
  NRC_E_AUTH_BASE64: {
    summary: 'A registry entry\'s "auth" field is not valid base64.',
    fix: 'Set "auth" to base64("username:password"), or give "username" and "password" instead.',
  },
  NRC_E_AUTH_NO_COLON: {
    summary: 'A registry entry\'s "auth" field does not decode to "username:password".',
    fix: 'Encode "auth" as base64 of the username, a colon, and the password.',
  },
  NRC_E_AUTH_MISSING: {
    summary: 'A registry entry has neither "auth", nor "username" and "password", nor "identitytoken".',
    fix: 'Give the entry credentials, or remove it from the Secret.',
  },
  NRC_E_FIELD_TOO_LARGE: {
    summary: 'A value of a registry entry is larger than the agent accepts (64 KiB).',
    fix: 'Check the entry: registry credentials and tokens are a few KiB at most.',
  },
  NRC_E_FIELD_TYPE: {
    summary: 'A field of a registry entry has the wrong type (it must be a string).',
    fix: 'Quote the value as a JSON string.',
  },
  NRC_E_CONTROL_CHARACTERS: {
    summary: 'A value contains control characters (NUL, newline, ...) that no registry accepts.',
    fix: 'Remove the control characters from the value in the Secret.',
  },
  NRC_E_DUPLICATE_REGISTRY: {
    summary: 'Two keys of one source name the same registry after normalization; the first one (in sorted key order) is used.',
    fix: 'Keep one key per registry in the Secret (e.g. drop either "https://reg.example.com" or "reg.example.com").',
  },
  NRC_E_REGISTRY_CONFIG_INVALID: {
    summary: 'The registry config (TOML) cannot be parsed or has an invalid value.',
    fix: 'Check the --registry-config file against docs/reference.md (keys ca, ca_file, skip_verify, auth_header).',
  },
  NRC_E_CA_INVALID: {
    summary: 'A registry\'s CA certificate is not a PEM certificate.',
    fix: 'Give the CA as PEM ("-----BEGIN CERTIFICATE-----"), inline or as a file path.',
  },

  // Host: reading and writing files on the node
  NRC_E_HOST_ROOT_MISSING: {
    summary: 'The host root directory does not exist.',
    fix: 'Mount the host\'s / at --host-root (the DaemonSet does this at /host).',
  },
  NRC_E_UNSAFE_PATH: {
    summary: 'A path the agent would write is a symlink, or passes through a symlinked directory that dangles or leads outside the host root.',
    fix: 'Replace the symlink by the file or directory itself, or point the agent at the real path; it follows symlinked directories only inside the host root.',
  },
  NRC_E_TARGET_NOT_FILE: {
    summary: 'A file the agent manages is a directory or another non-regular file on the host.',
    fix: 'Move the directory or special file away; the agent will write the file on its next pass.',
  },
  NRC_E_FOREIGN_FILE_UNPARSEABLE: {
    summary: 'An existing host file that the agent merges into is not valid JSON.',
    fix: 'Repair or remove the file; the agent does not overwrite what it cannot read, to keep what others wrote.',
  },
  NRC_E_FOREIGN_ENTRY_INVALID: {
    summary: 'A foreign entry in the kubelet\'s config.json is one the kubelet cannot decode (not an object, a non-string field, an "auth" that is not base64 of user:password), which makes the kubelet ignore the WHOLE file; the agent moved it aside (recorded, and put back by cleanup).',
    fix: 'Repair or remove that entry where it comes from; until then the agent keeps it out of the file so that every other credential stays usable.',
  },
  NRC_E_FOREIGN_ENTRY_REPLACED: {
    summary: 'A foreign entry in the kubelet\'s config.json would be tried before the agent\'s credential for the same images (the same key spelled another way, a narrower key, or a docker.io key that shadows the Docker Hub fallback key); the agent moved it aside (recorded, and put back when the agent\'s entry goes or on cleanup).',
    fix: 'Nothing, if the Secret is meant to rule that registry; otherwise remove the registry from the Secret.',
  },
  NRC_E_FOREIGN_ENTRY_SHADOWS: {
    summary: 'A foreign entry in the kubelet\'s config.json matches more images than the agent\'s credential and is tried before it for some of them; the agent leaves it (removing it would break the other images), so the kubelet tries both.',
    fix: 'Narrow or remove the foreign entry (often a wildcard key), or give the Secret the same key.',
  },
  NRC_E_HUB_ALIAS_REORDERS: {
    summary: 'A foreign key in the kubelet\'s config.json broader than docker.io (e.g. *.io) would hide the Secret\'s Docker Hub fallback credential, so the agent also writes it as docker.io; the kubelet then tries it before the Secret\'s own keys that cover part of Docker Hub (e.g. *.io/library), which the Secret alone would try first. Both are still tried, in that order.',
    fix: 'Narrow or remove the foreign entry, or give the Secret a docker.io key (or the narrower keys only) instead of the Docker Hub fallback key.',
  },
  NRC_E_KUBELET_CANNOT_READ: {
    summary: 'The kubelet\'s config.json holds something besides the registry entries that makes the kubelet ignore the whole file (e.g. "HttpHeaders" with a value that is not a string), so the credentials the agent wrote there are not used.',
    fix: 'Repair that part of the file (HttpHeaders must map names to strings); the agent does not rewrite what is not a registry entry.',
  },
  NRC_E_WRITE_FAILED: {
    summary: 'Writing a host file failed (disk full, read-only filesystem, permission denied, ...).',
    fix: 'Free space or fix permissions on the node; the agent retries with backoff and the old file stays intact.',
  },
  NRC_E_STATE_CORRUPT: {
    summary: 'The agent\'s ownership record is unreadable; the agent will not delete anything it cannot prove it owns.',
    fix: 'Inspect the state directory (default /var/lib/node-registry-credentials); remove the record only if the host files are right.',
  },
  NRC_E_CONTAINERD_CONFIG_INVALID: {
    summary: 'The containerd config (or one of its imports) cannot be parsed.',
    fix: 'Fix the containerd config; until then the agent writes only the kubelet\'s config.json.',
  },
  NRC_E_CONTAINERD_NO_CONFIG_PATH: {
    summary: 'containerd has no registry config_path set, so hosts.toml files would be ignored.',
    fix: 'Set config_path in the containerd registry section (this needs a one-time containerd restart, which the agent never does).',
  },
  NRC_E_FOREIGN_DIRECTORY: {
    summary: 'A registry directory (hosts.toml or certs.d) already exists and was not created by the agent, so the agent leaves it alone.',
    fix: 'Remove the directory if the agent should manage that registry, or keep managing it by hand.',
  },
  NRC_E_CONTAINERD_DEFAULT_BYPASSED: {
    summary: 'containerd\'s hosts directory has a _default directory (e.g. a mirror for every registry); containerd uses the first directory that exists, so the agent\'s per-registry directory replaces _default for that registry.',
    fix: 'Copy what _default configures (mirrors) into the registry config for that registry, or give that registry no host options if it must keep going through _default.',
  },
  NRC_E_HOST_OPTIONS_UNSUPPORTED: {
    summary: 'Host options (CA, skip_verify, auth header) cannot be applied to this registry key (wildcard hosts have no hosts.toml).',
    fix: 'Give host options for concrete hostnames only.',
  },
  NRC_E_CONTAINERD_COLON_LIST: {
    summary: 'containerd\'s config_path is a colon-separated list (on containerd 2.2 also when it is unset: the default is /etc/containerd/certs.d:/etc/docker/certs.d). containerd 2.x CRI pulls through the transfer service read the whole list as ONE directory name, so no hosts.toml is read at all.',
    fix: 'Set config_path to a single directory (e.g. /etc/containerd/certs.d) on containerd 2.x; this needs a one-time containerd restart, which the agent never does.',
  },

  // AWS ECR tokens (src/sources/ecr)
  NRC_E_ECR_HOST_INVALID: {
    summary: 'A Registry with AWS credentials is not named after an ECR hostname, so no region or partition can be derived.',
    fix: 'Name the Registry <account>.dkr.ecr.<region>.amazonaws.com (or another ECR form, see docs/ecr.md), exactly as the images use it.',
  },
  NRC_E_ECR_AUTH_FAILED: {
    summary: 'AWS rejected the credentials or the identity may not call ecr:GetAuthorizationToken.',
    fix: 'Check the access keys (or the role) and allow ecr:GetAuthorizationToken in its IAM policy (docs/ecr.md).',
  },
  NRC_E_ECR_ASSUME_ROLE_FAILED: {
    summary: 'sts:AssumeRoleWithWebIdentity was refused for the Registry\'s role.',
    fix: 'Check the role ARN, the cluster\'s OIDC provider in IAM and the trust policy conditions on aud (the Registry\'s audience) and sub (the agent\'s service account).',
  },
  NRC_E_ECR_SA_TOKEN_FAILED: {
    summary: 'The Kubernetes TokenRequest for the service account used for web identity failed.',
    fix: 'Check that the service account exists and that the agent may create serviceaccounts/token for it (RBAC).',
  },
  NRC_E_ECR_NO_CREDENTIALS: {
    summary: 'The node\'s own AWS identity (SDK default chain) found no credentials.',
    fix: 'Give the agent an AWS identity (EKS Pod Identity, IRSA, or instance metadata with hop limit 2), or define the Registry with awsIamUser/awsIamRole.',
  },
  NRC_E_ECR_THROTTLED: {
    summary: 'AWS throttled the token request; the agent backs off and keeps the current token until it expires.',
    fix: 'Usually none: it retries later. If it persists, other clients share the account\'s GetAuthorizationToken quota.',
  },
  NRC_E_ECR_UNAVAILABLE: {
    summary: 'The AWS endpoint failed (5xx, timeout, network); the agent backs off and keeps the current token until it expires.',
    fix: 'Check the node\'s egress to the ECR and STS endpoints (proxy, VPC endpoints, DNS).',
  },
  NRC_E_ECR_RESPONSE_INVALID: {
    summary: 'AWS answered GetAuthorizationToken without a usable token (missing data or not AWS:<password>).',
    fix: 'Report it; the agent retries with backoff.',
  },
  NRC_E_ECR_TOKEN_EXPIRED: {
    summary: 'The registry\'s ECR token expired before a refresh succeeded, so it was removed from the node.',
    fix: 'Fix the refresh error reported for the registry; the agent keeps retrying with backoff.',
  },
  NRC_E_ECR_UNSUPPORTED: {
    summary: 'The ECR registry kind is not supported by this agent version (ECR Public).',
    fix: 'Pull public.ecr.aws images anonymously, or give them a static credential.',
  },
  // Kubernetes sources, node status (src/sources/kubernetes, src/report/node-status.ts)
  NRC_E_K8S_FORBIDDEN: {
    summary: 'The API server refused a request of the agent (403 Forbidden): its RBAC Role lacks a rule.',
    fix: 'Add the rule named in the message to the agent\'s Role (daemonset/base/rbac.yaml, docs/kubernetes.md); the agent retries and keeps the node as it is meanwhile.',
  },
  NRC_E_K8S_UNAVAILABLE: {
    summary: 'The Kubernetes API server cannot be reached or keeps failing; the node keeps its last good credentials.',
    fix: 'Check the API server and the node\'s network; the agent reconnects with backoff by itself.',
  },
  NRC_E_K8S_BAD_RESPONSE: {
    summary: 'A request to the Kubernetes API got a success status with a body the API server does not send (not JSON, such as a proxy\'s or load balancer\'s HTML page, or not a list); it is not read as "no objects", so the node keeps its last good credentials.',
    fix: 'Check what stands between the node and the API server (proxy, load balancer, KUBERNETES_SERVICE_HOST); the agent retries with backoff by itself.',
  },
  NRC_E_K8S_SECRET_MISSING: {
    summary: 'The broker\'s Secret disappeared; the node keeps the credentials it had from it for a grace period (--broker-secret-grace-seconds), while the broker restores the Secret.',
    fix: 'Nothing, if the broker is running: it rewrites its Secret within seconds. Otherwise check the broker Deployment (kubectl -n okteto get deploy node-registry-credentials-broker); after the grace period the node removes those credentials.',
  },
  NRC_E_K8S_SECRET_NOT_DOCKERCONFIG: {
    summary: 'The watched Secret has neither a .dockerconfigjson nor a .dockercfg key (or its data is not base64).',
    fix: 'Recreate it as type kubernetes.io/dockerconfigjson (`kubectl create secret docker-registry`); the node keeps its last good credentials meanwhile.',
  },
  NRC_E_REGISTRY_SPEC_INVALID: {
    summary: 'A Registry resource does not have exactly one of spec.static, spec.awsIamUser, spec.awsIamRole with all required fields.',
    fix: 'Fix the Registry (see docs/kubernetes.md for the fields of each kind).',
  },
  NRC_E_REGISTRY_SECRET_MISSING: {
    summary: 'A Secret (or a key in it) that a Registry references does not exist or is empty.',
    fix: 'Create the Opaque Secret in the Registry\'s namespace with the referenced key, or fix the reference.',
  },
  NRC_E_REGISTRY_KIND_UNSUPPORTED: {
    summary: 'A Registry uses awsIamUser/awsIamRole but the ECR source is not enabled in this agent, so it is not configured on the node.',
    fix: 'Run the agent with its ECR source enabled (docs/ecr.md), or give the registry a static credential.',
  },
  NRC_E_NODE_STATUS_FAILED: {
    summary: 'Reporting the result to the cluster (Node annotation or Event) failed; the node itself is configured.',
    fix: 'Allow the agent to patch its Node and create Events (ClusterRole in daemonset/base/rbac.yaml).',
  },
  // The cluster broker (src/broker)
  NRC_E_BROKER_SECRET_FOREIGN: {
    summary: 'The broker\'s output Secret exists but another controller manages it (it lacks the label app.kubernetes.io/managed-by=node-registry-credentials-broker), so the broker refuses to write it.',
    fix: 'Give the broker a Secret name nobody else uses (--broker-secret-name, and the same name in the node agent), or delete that Secret if it is a leftover; the broker never takes over a Secret it did not create.',
  },
  NRC_E_BROKER_WRITE_FAILED: {
    summary: 'The broker could not read or write its output Secret (API server unreachable, RBAC, conflict); nodes keep the last Secret it wrote.',
    fix: 'Check the broker\'s Role (secrets create, and get/update on its own Secret name) and the API server; the broker retries with backoff.',
  },
  NRC_E_REGISTRY_STATUS_FAILED: {
    summary: 'The broker leader could not write a Registry\'s status (conditions Resolved and Effective) or one of its Events; the credentials themselves are not affected.',
    fix: 'Check the broker\'s Role (registries/status patch, events create) and ClusterRole (nodes list/watch). An HTTP 409 means another field manager owns status.conditions as a whole (a CRD whose status.conditions is not a list keyed by type): the broker never overwrites it; declare conditions with x-kubernetes-list-type: map and x-kubernetes-list-map-keys: [type].',
  },
  NRC_E_BROKER_LEADERSHIP_LOST: {
    summary: 'The broker could not renew its Lease within the renew deadline, so it stopped writing and exits (the pod restarts and joins the election again).',
    fix: 'Usually none: another replica takes over within the lease duration. If it repeats, check the API server latency and the broker\'s Role (leases get/create/update on its Lease name).',
  },
  NRC_E_BROKER_NOT_LEADER: {
    summary: 'The broker was about to write its Secret but had not renewed its Lease within the renew deadline on its own monotonic clock (the process was paused, throttled or its VM frozen), so it did not write: another replica may lead by now.',
    fix: 'Usually none: this replica stops leading and exits, and the current leader keeps the Secret. If it repeats, look for CPU throttling (raise the broker\'s CPU limit), paused or overloaded nodes, and the API server latency.',
  },
  // Credential check (src/check)
  NRC_E_CREDENTIAL_REJECTED: {
    summary: 'The registry (or its token service) rejected the credential the agent writes for it: pulls that use it will fail.',
    fix: 'Fix the username/password in the Secret or Registry resource (the platform\'s Registry Credentials view); `node-registry-credentials check` re-checks it.',
  },
  NRC_E_CREDENTIAL_CHECK_FAILED: {
    summary: 'The credential check could not reach the registry (connection, TLS, timeout, unexpected HTTP status); the credential is written anyway.',
    fix: 'Check the registry host and port, its CA (ca/ca_file in the registry config) and the node\'s egress; or leave --check-credentials off where nodes cannot reach the registry by design.',
  },
  NRC_E_CREDENTIAL_DROPPED: {
    summary: 'Docker Hub rejected its credential, so the agent did not write it (--drop-rejected-docker-hub): a wrong Docker Hub credential breaks even public pulls.',
    fix: 'Fix the Docker Hub credential in the Secret or Registry resource; the agent writes it once Docker Hub accepts it.',
  },
  // The credential provider plugin (examples/credential-provider, --kubelet-credentials provider):
  // it answers the kubelet with no credentials and one line on stderr carrying one of these.
  // Namespace-scoped registries (docs/kubernetes.md#scoped-registries)
  NRC_E_SCOPE_INVALID: {
    summary: 'A registry\'s namespace scope cannot be read (a namespace that is not a DNS label, an empty or malformed namespace selector, or a scopes annotation that is not the documented JSON), so that registry is configured nowhere: a scope is never dropped to make it node-wide.',
    fix: 'Fix the annotation: registry-credentials.okteto.com/namespaces "a,b" or registry-credentials.okteto.com/namespace-selector "team=a" on a Registry, or the Secret\'s registry-credentials.okteto.com/scopes JSON {"<registry>": {"namespaces": ["a"], "namespaceSelector": "team=a"}}.',
  },
  NRC_E_SCOPE_UNSUPPORTED: {
    summary: 'A namespace-scoped registry reached a node that cannot serve it per namespace (not in provider mode with service-account tokens, or a kubelet older than 1.35 without KubeletEnsureSecretPulledImages), so it is not configured on that node at all; it is never written node-wide.',
    fix: 'Boot the node with the service-account CredentialProviderConfig (examples/credential-provider/credential-provider-config-serviceaccount.yaml) and run the agent with --namespace-scoping (Helm: agent.namespaceScoping.enabled) on kubelet 1.35 or later (1.34: set the KubeletEnsureSecretPulledImages gate and --namespace-scoping=assume-ensure-secret-pulled-images).',
  },
  NRC_E_PROVIDER_REQUEST_INVALID: {
    summary: 'The credential provider plugin got a request that is not a CredentialProviderRequest of credentialprovider.kubelet.k8s.io/v1 (another apiVersion in the CredentialProviderConfig, or not JSON), so it answered with no credentials.',
    fix: 'Set apiVersion: credentialprovider.kubelet.k8s.io/v1 for the provider in the kubelet\'s CredentialProviderConfig (examples/credential-provider/credential-provider-config.yaml) and restart the kubelet; the plugin only reads requests from the kubelet on stdin.',
  },
  NRC_E_PROVIDER_STATE_MISSING: {
    summary: 'The credential provider plugin found no state file (a new node before the agent\'s first apply, or an agent not in provider mode), so it answered with no credentials (not cached: the next pull asks again).',
    fix: 'Run the agent with --kubelet-credentials provider on this node (Helm: agent.kubeletCredentials=provider), and check that NRC_PROVIDER_STATE in the CredentialProviderConfig names /var/lib/node-registry-credentials/provider/response.json (the default).',
  },
  NRC_E_PROVIDER_STATE_UNSAFE: {
    summary: 'The credential provider plugin\'s state file or its .sha256 is a symbolic link or not a regular file, so it answered with no credentials: only the agent\'s own atomically written files are served.',
    fix: 'Remove what is at that path; the agent writes the file again at its next pass (at the latest within --resync-seconds).',
  },
  NRC_E_PROVIDER_STATE_UNREADABLE: {
    summary: 'The credential provider plugin cannot read its state file or its .sha256 (permissions), so it answered with no credentials.',
    fix: 'The kubelet runs the plugin as root and the agent writes the files as root with mode 0600; check that nothing changed their owner or mode, or that a rootless kubelet is given read access.',
  },
  NRC_E_PROVIDER_STATE_CORRUPT: {
    summary: 'The credential provider plugin\'s state file does not match its sha256 (truncated or damaged), or sha256sum is missing, so it answered with no credentials rather than a damaged answer.',
    fix: 'Nothing to do in most cases: the agent rewrites both files when they change (it watches its files, and re-checks them every --resync-seconds); if it repeats, look for a full or failing disk, or another writer in /var/lib/node-registry-credentials.',
  },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AgentError extends Error {
  readonly code: ErrorCode;
  /** The registry or file this error is about; never a secret. */
  readonly subject: string | undefined;

  constructor(code: ErrorCode, opts: { subject?: string; detail?: string; cause?: unknown } = {}) {
    const info = ERROR_CODES[code];
    const where = opts.subject ? ` [${opts.subject}]` : '';
    const detail = opts.detail ? ` ${opts.detail}` : '';
    super(`${code}${where}: ${info.summary}${detail} Fix: ${info.fix}`, { cause: opts.cause });
    this.name = 'AgentError';
    this.code = code;
    this.subject = opts.subject;
  }

  toJSON(): { code: ErrorCode; subject?: string; message: string } {
    return { code: this.code, ...(this.subject ? { subject: this.subject } : {}), message: this.message };
  }
}

/** Wraps an unknown failure into an AgentError of the given code, keeping the cause. */
export function asAgentError(err: unknown, code: ErrorCode, subject?: string): AgentError {
  if (err instanceof AgentError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  return new AgentError(code, { ...(subject ? { subject } : {}), ...(errno ? { detail: `(${errno})` } : {}), cause: err });
}
