// A real one-node cluster on this machine: the control plane of test/support/control-plane.ts,
// plus kube-controller-manager, kube-scheduler, a kubelet (1.34 from testenv/kube, or 1.37 from
// testenv/kube137: NodeOptions.kube) and a container runtime: Debian's containerd 1.6 or
// containerd 2.2 built from testenv/containerd2.
// Facts of this host that shape it (found the hard way, see docs/e2e.md):
// - root here lacks CAP_SYS_RESOURCE, so containerd must clamp oom_score_adj
//   (restrict_oom_score_adj), or every pod sandbox fails in runc ("final child's PID: EOF");
// - cgroup v1 (hybrid): the kubelet runs with failCgroupV1: false and the cgroupfs driver;
// - pods that are not hostNetwork need CNI: a bridge from Debian's plugins (/usr/lib/cni);
// - no image can be pulled from outside: the pause image is a static binary imported locally.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { dump, load } from 'js-yaml';
import { DEFAULT_KUBE, kubectl, kubeToolName, kustomize, type ControlPlaneInfo, type KubeMinor } from './control-plane.ts';
import { snapshot, type Entry } from './e2e-hostroot.ts';
import { buildAgentImage } from './e2e-images.ts';
import { makePki, type Pki } from './e2e-pki.ts';
import { REPO_ROOT } from './e2e-prereqs.ts';
import { goTool } from './go-tools.ts';

const execFileP = promisify(execFile);

type ControlPlaneRef = ControlPlaneInfo;

export type Runtime = 'containerd-1.6' | 'containerd-2.2';
export const NODE_TOOLS = ['kubelet', 'kube-controller-manager', 'kube-scheduler', 'containerd2/containerd', 'containerd2/ctr', 'containerd2/containerd-shim-runc-v2'] as const;

/** What a cluster of `minor` needs from the Go tools (control plane, controllers, kubelet, containerd 2). */
export function clusterTools(minor: KubeMinor = DEFAULT_KUBE): string[] {
  return ['etcd', ...(['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet'] as const).map((t) => kubeToolName(t, minor)), ...NODE_TOOLS.filter((t) => t.startsWith('containerd2/'))];
}

/**
 * Refuses a kubelet/runtime pair upstream does not support: 1.35 is the last Kubernetes release
 * that supports containerd 1.x; later kubelets need containerd 2.x.
 */
export function checkKubeletRuntime(minor: KubeMinor, runtime: Runtime): void {
  if (runtime === 'containerd-1.6' && Number(minor.split('.')[1]) > 35) {
    throw new Error(`kubelet ${minor} with ${runtime}: kubelets after 1.35 need containerd 2.x (use containerd-2.2)`);
  }
}
export const PAUSE_IMAGE = 'nrc.local/pause:1';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function spawnLogged(name: string, bin: string, args: readonly string[], logDir: string, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  await mkdir(logDir, { recursive: true });
  const { createWriteStream } = await import('node:fs');
  const out = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  const child = spawn(bin, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function stopChild(child: ChildProcess | undefined, ms = 10_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await done;
  clearTimeout(timer);
}

/** kube-controller-manager (DaemonSet, ServiceAccount, namespace, root-CA controllers) and kube-scheduler. */
export class Controllers {
  private procs: ChildProcess[] = [];

  /** `minor`: of the two binaries (default: the control plane's own, as the version-skew policy wants). */
  async start(cp: ControlPlaneRef, minor: KubeMinor = cp.kube ?? DEFAULT_KUBE): Promise<void> {
    const k = cp.adminKubeconfig;
    const pki = join(cp.dir, 'pki');
    const logs = join(cp.dir, 'logs');
    this.procs.push(
      await spawnLogged('kube-controller-manager', goTool(kubeToolName('kube-controller-manager', minor)), [
        `--kubeconfig=${k}`, `--authentication-kubeconfig=${k}`, `--authorization-kubeconfig=${k}`,
        `--service-account-private-key-file=${join(pki, 'sa.key')}`, `--root-ca-file=${cp.caFile}`,
        '--use-service-account-credentials=false', '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=0',
        // No cloud and no pod CIDRs: node IPAM is off. The node lifecycle controller stays: it lifts the
        // not-ready taint the kubelet registers with, without which only DaemonSet pods (which tolerate
        // it) would schedule, and the broker's Deployment would stay Pending. 1.37 no longer knows the
        // cloud controllers' names and exits on an unknown one.
        minor === '1.34' ? '--controllers=*,-nodeipam,-cloud-node-lifecycle,-ttl,-service-lb-controller,-node-route-controller' : '--controllers=*,-node-ipam-controller,-ttl-controller',
      ], logs),
      await spawnLogged('kube-scheduler', goTool(kubeToolName('kube-scheduler', minor)), [`--kubeconfig=${k}`, `--authentication-kubeconfig=${k}`, `--authorization-kubeconfig=${k}`, '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=0'], logs),
    );
    // Up when the ServiceAccount controller made namespace default's account (every pod needs it);
    // an exit (a flag this minor refuses) fails here rather than as a pod forbidden later.
    const until = Date.now() + 90_000;
    for (;;) {
      const dead = this.procs.find((p) => p.exitCode !== null || p.signalCode !== null);
      if (dead) throw new Error(`${dead.spawnargs[0]} exited (${dead.exitCode ?? dead.signalCode}); see ${logs}`);
      if ((await kubectl(cp, ['-n', 'default', 'get', 'serviceaccount', 'default', '-o', 'name']).catch(() => '')).trim() !== '') return;
      if (Date.now() > until) throw new Error(`controllers ${minor}: no ServiceAccount default/default after 90 s; see ${logs}`);
      await sleep(500);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopChild(p)));
    this.procs = [];
  }
}

/** A static pause binary as an image, saved once as a docker archive for any containerd to import. */
export async function pauseImageArchive(dir: string): Promise<string> {
  const archive = join(dir, 'pause.tar');
  if (existsSync(archive)) return archive;
  await mkdir(join(dir, 'pause'), { recursive: true });
  await writeFile(join(dir, 'pause', 'pause.c'), '#include <signal.h>\n#include <unistd.h>\nstatic void bye(int s) { (void)s; _exit(0); }\nint main(void) { signal(SIGINT, bye); signal(SIGTERM, bye); for (;;) pause(); }\n');
  await execFileP('gcc', ['-static', '-O2', '-o', join(dir, 'pause', 'pause'), join(dir, 'pause', 'pause.c')]);
  await execFileP('sh', ['-c', `tar -C '${join(dir, 'pause')}' -c pause | docker import --change 'ENTRYPOINT ["/pause"]' - ${PAUSE_IMAGE} >/dev/null && docker save ${PAUSE_IMAGE} -o '${archive}'`]);
  return archive;
}

/** Saves a local docker image as an archive containerd can import. */
export async function dockerArchive(image: string, dir: string): Promise<string> {
  const file = join(dir, `${image.replace(/[^a-zA-Z0-9.-]/g, '_')}.tar`);
  await execFileP('docker', ['save', image, '-o', file], { maxBuffer: 1 << 20 });
  return file;
}

/**
 * The shipped manifests (daemonset/ or a variant), rendered by kubectl kustomize with an overlay
 * that only sets the image, this node's host paths (and pins the pods to it), the registry config
 * and, given brokerEnv, the broker's environment.
 */
export async function agentOverlay(
  node: KubeNode,
  registryToml: string,
  variant = 'daemonset',
  agentEnv: Readonly<Record<string, string>> = {},
  /** Added to the broker Deployment's container (the fake AWS endpoints). */
  brokerEnv: Readonly<Record<string, string>> = {},
  /**
   * The agent's image from a registry (`host:port/name:tag`), pulled by the kubelet with the
   * Secret `imagePullSecret` as a node pulls it from a private mirror; default: the preloaded
   * node-registry-credentials:e2e.
   */
  pull: { readonly image?: string; readonly imagePullSecret?: string } = {},
): Promise<string> {
  const dir = join(REPO_ROOT, '.local', 'node-e2e', `${node.o.name}-${variant.replace(/\W/g, '_')}`);
  await mkdir(dir, { recursive: true });
  const isAgent = !variant.endsWith('cleanup');
  const name = isAgent ? 'node-registry-credentials' : 'node-registry-credentials-cleanup';
  const paths: Record<string, string> = { kubelet: node.kubeletRootDir, state: join(node.root, 'var/lib/node-registry-credentials'), etc: join(node.root, 'etc'), 'root-home': join(node.root, 'root') };
  const patch = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name },
    spec: {
      template: {
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': node.o.name },
          volumes: Object.entries(paths).map(([v, path]) => ({ name: v, hostPath: { path } })),
          ...(Object.keys(agentEnv).length > 0 ? { containers: [{ name: 'agent', env: Object.entries(agentEnv).map(([n, value]) => ({ name: n, value })) }] } : {}),
          ...(pull.imagePullSecret ? { imagePullSecrets: [{ name: pull.imagePullSecret }] } : {}),
        },
      },
    },
  };
  const brokerPatch = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'node-registry-credentials-broker' },
    spec: {
      template: {
        spec: {
          containers: [{ name: 'broker', env: Object.entries(brokerEnv).map(([n, value]) => ({ name: n, value })) }],
          ...(pull.imagePullSecret ? { imagePullSecrets: [{ name: pull.imagePullSecret }] } : {}),
        },
      },
    },
  };
  const withBroker = isAgent && (Object.keys(brokerEnv).length > 0 || pull.imagePullSecret !== undefined);
  const at = pull.image?.lastIndexOf(':') ?? -1;
  const [imageName, imageTag] = pull.image && at > pull.image.lastIndexOf('/') ? [pull.image.slice(0, at), pull.image.slice(at + 1)] : ['node-registry-credentials', 'e2e'];
  await writeFile(join(dir, 'registry.toml'), registryToml);
  await writeFile(join(dir, 'patch.json'), JSON.stringify(patch));
  if (withBroker) await writeFile(join(dir, 'broker-patch.json'), JSON.stringify(brokerPatch));
  await writeFile(
    join(dir, 'kustomization.yaml'),
    [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      `resources: [${JSON.stringify(relative(dir, join(REPO_ROOT, variant)))}]`,
      `images: [{name: node-registry-credentials, newName: ${JSON.stringify(imageName)}, newTag: ${JSON.stringify(imageTag)}}]`,
      `patches: [{path: patch.json}${withBroker ? ', {path: broker-patch.json}' : ''}]`,
      ...(isAgent ? ['configMapGenerator: [{name: node-registry-credentials-registries, behavior: replace, files: [registry.toml]}]'] : []),
      '',
    ].join('\n'),
  );
  return kustomize(relative(REPO_ROOT, dir));
}

/**
 * kube-proxy's part for the one Service pods need: the `kubernetes` VIP (10.0.0.1:443) leads to
 * the API server on loopback. Returns the undo.
 */
export async function routeServiceVip(cp: ControlPlaneRef, bridgeIndex?: number): Promise<() => Promise<void>> {
  return routeVip('10.0.0.1', 443, Number(new URL(cp.server).port), bridgeIndex);
}

/**
 * Pods reach a test server on this machine's loopback (the API server, the fake AWS) at vip:port.
 * Per bridge when several clusters run side by side, so each node's pods reach their own.
 */
export async function routeVip(vip: string, port: number, loopbackPort: number, bridgeIndex?: number): Promise<() => Promise<void>> {
  const from = bridgeIndex === undefined ? [] : ['-i', `nrc${bridgeIndex}`];
  const rule = ['PREROUTING', ...from, '-d', `${vip}/32`, '-p', 'tcp', '--dport', String(port), '-j', 'DNAT', '--to-destination', `127.0.0.1:${loopbackPort}`];
  await execFileP('sysctl', ['-qw', 'net.ipv4.conf.all.route_localnet=1']);
  await execFileP('iptables', ['-t', 'nat', '-I', ...rule]);
  return async () => {
    await execFileP('iptables', ['-t', 'nat', '-D', ...rule]).catch(() => undefined);
  };
}

export interface NodeOptions {
  readonly name: string;
  readonly runtime: Runtime;
  /** Everything of this node lives here: the node's host root is `<dir>/root`. */
  readonly dir: string;
  /** Docker archives to import into the runtime's k8s.io namespace (the pause image is added). */
  readonly images: readonly string[];
  /** A /24 for the node's pod bridge, distinct per node, e.g. 10.244.1.0/24. */
  readonly podSubnet: string;
  /** Distinct per node on one machine: the kubelet's port, healthz port, cgroup root. */
  readonly index: number;
  /**
   * Boot the node as a provider-mode bootstrap does (docs/kubernetes.md#credential-provider-mode):
   * before the kubelet starts, the shipped plugin is copied into the kubelet's
   * --image-credential-provider-bin-dir and a CredentialProviderConfig derived from the shipped
   * example is given as --image-credential-provider-config.
   */
  readonly credentialProvider?: CredentialProviderBoot;
  /** KubeletConfiguration registerWithTaints (a node pool's startup taints, issue 22). */
  readonly registerWithTaints?: readonly { readonly key: string; readonly effect: string }[];
  /** The kubelet's minor (default 1.34). After 1.35 only with containerd-2.2 (checkKubeletRuntime). */
  readonly kube?: KubeMinor;
  /** KubeletConfiguration featureGates (e.g. {KubeletEnsureSecretPulledImages: false}). */
  readonly featureGates?: Readonly<Record<string, boolean>>;
}

export interface CredentialProviderBoot {
  /** The registries' ports: the example's `:5000` patterns are repeated for each, as its comment tells an operator. */
  readonly ports: readonly number[];
  /**
   * A CredentialProviderConfig to install instead of the shipped example (e.g. a scoped one); the
   * same changes apply to its node-registry-credentials-provider entry (ports, NRC_PROVIDER_STATE,
   * NRC_PROVIDER_ASKED).
   */
  readonly configFile?: string;
  /**
   * Test-only mutation (never in CI): the installed plugin rewrites its answer's cacheDuration to
   * this value, to show that the provider scenario then fails.
   */
  readonly answerCacheDuration?: string;
}

/** The shipped plugin and the example CredentialProviderConfig (examples/credential-provider). */
export const PROVIDER_EXAMPLE_DIR = join(REPO_ROOT, 'examples', 'credential-provider');
export const PROVIDER_PLUGIN = 'node-registry-credentials-provider';

/**
 * One node: its runtime and kubelet, registered with the control plane. Its host root is
 * `<dir>/root` (kubelet root dir `<root>/var/lib/kubelet`, containerd's hosts directory
 * `<root>/etc/containerd/certs.d`); the DaemonSet under test mounts those directories.
 */
export class KubeNode {
  readonly root: string;
  readonly socket: string;
  /** The kubelet's minor (NodeOptions.kube, default 1.34). */
  readonly kube: KubeMinor;
  /** The kubelet's version as the Node reports it (status.nodeInfo.kubeletVersion), once Ready. */
  kubeletVersion: string | undefined;
  private containerd: ChildProcess | undefined;
  private kubelet: ChildProcess | undefined;

  constructor(readonly cp: ControlPlaneRef, readonly o: NodeOptions) {
    this.kube = o.kube ?? DEFAULT_KUBE;
    checkKubeletRuntime(this.kube, o.runtime);
    this.root = join(o.dir, 'root');
    this.socket = join(o.dir, 'containerd', 'containerd.sock');
  }

  get kubeletRootDir(): string {
    return join(this.root, 'var', 'lib', 'kubelet');
  }

  /** Where the bootstrap installed the plugin (the kubelet's --image-credential-provider-bin-dir), under the host root. */
  get providerBinDir(): string {
    return join(this.root, 'usr', 'local', 'libexec', 'kubelet-credential-providers');
  }

  /** The kubelet's --image-credential-provider-config, under the host root. */
  get providerConfigPath(): string {
    return join(this.root, 'etc', 'kubernetes', 'credential-provider-config.yaml');
  }

  /** The agent's provider state (response.json), where the DaemonSet's state volume puts it on this node. */
  get providerStatePath(): string {
    return join(this.root, 'var', 'lib', 'node-registry-credentials', 'provider', 'response.json');
  }

  /** The file the plugin touches at each valid request (NRC_PROVIDER_ASKED), outside the host root. */
  get providerAskedPath(): string {
    return join(this.o.dir, 'provider-asked');
  }

  /** The kubelet's process id (the same from boot to stop: nothing restarts it). */
  get kubeletPid(): number | undefined {
    return this.kubelet?.pid;
  }

  get hostsDir(): string {
    return join(this.root, 'etc', 'containerd', 'certs.d');
  }

  private ctrBin(): string {
    return this.o.runtime === 'containerd-1.6' ? '/usr/bin/ctr' : goTool('containerd2/ctr');
  }

  async ctr(args: readonly string[]): Promise<string> {
    const { stdout } = await execFileP(this.ctrBin(), ['-a', this.socket, '-n', 'k8s.io', ...args], { maxBuffer: 16 << 20 });
    return stdout;
  }

  /** containerd's own config (real paths), and the copy the agent reads at <root>/etc/containerd/config.toml (paths as the node sees them). */
  private containerdConfigs(): { real: string; view: string } {
    const d = join(this.o.dir, 'containerd');
    const cni = join(this.o.dir, 'cni');
    if (this.o.runtime === 'containerd-1.6') {
      const real = [
        'version = 2',
        `root = "${join(d, 'root')}"`,
        `state = "${join(d, 'state')}"`,
        '[grpc]',
        `  address = "${this.socket}"`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        '  restrict_oom_score_adj = true',
        '  [plugins."io.containerd.grpc.v1.cri".registry]',
        `    config_path = "${this.hostsDir}"`,
        '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '    runtime_type = "io.containerd.runc.v2"',
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/usr/lib/cni"',
        `    conf_dir = "${cni}"`,
        '',
      ].join('\n');
      const view = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n';
      return { real, view };
    }
    const real = [
      'version = 3',
      `root = "${join(d, 'root')}"`,
      `state = "${join(d, 'state')}"`,
      '[grpc]',
      `  address = "${this.socket}"`,
      "[plugins.'io.containerd.cri.v1.images']",
      "  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
      `    sandbox = "${PAUSE_IMAGE}"`,
      "  [plugins.'io.containerd.cri.v1.images'.registry]",
      `    config_path = "${this.hostsDir}"`,
      "[plugins.'io.containerd.cri.v1.runtime']",
      '  restrict_oom_score_adj = true',
      "  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
      '    runtime_type = "io.containerd.runc.v2"',
      "  [plugins.'io.containerd.cri.v1.runtime'.cni]",
      '    bin_dirs = ["/usr/lib/cni"]',
      `    conf_dir = "${cni}"`,
      '',
    ].join('\n');
    const view = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = \"/etc/containerd/certs.d\"\n";
    return { real, view };
  }

  private async nodeCredentials(): Promise<string> {
    const d = join(this.o.dir, 'pki');
    await mkdir(d, { recursive: true });
    const ca = join(this.cp.dir, 'pki');
    const ssl = (args: string[]): Promise<unknown> => execFileP('openssl', args, { cwd: d });
    await ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'node.key', '-out', 'node.csr', '-subj', `/O=system:nodes/CN=system:node:${this.o.name}`]);
    await writeFile(join(d, 'node.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
    await ssl(['x509', '-req', '-in', 'node.csr', '-CA', join(ca, 'ca.crt'), '-CAkey', join(ca, 'ca.key'), '-CAcreateserial', '-out', 'node.crt', '-days', '2', '-extfile', 'node.ext']);
    const kubeconfig = join(this.o.dir, 'kubelet.kubeconfig');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- {name: cluster, cluster: {server: "${this.cp.server}", certificate-authority: "${this.cp.caFile}"}}`,
        'users:',
        `- {name: kubelet, user: {client-certificate: "${join(d, 'node.crt')}", client-key: "${join(d, 'node.key')}"}}`,
        'contexts:',
        '- {name: node, context: {cluster: cluster, user: kubelet}}',
        'current-context: node',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return kubeconfig;
  }

  async start(): Promise<void> {
    const { dir, runtime, index } = this.o;
    const logs = join(dir, 'logs');
    for (const p of [this.kubeletRootDir, this.hostsDir, join(this.root, 'root'), join(this.root, 'var', 'lib', 'node-registry-credentials'), join(dir, 'cni'), join(dir, 'containerd')]) await mkdir(p, { recursive: true });
    const cfg = this.containerdConfigs();
    await writeFile(join(dir, 'containerd', 'config.toml'), cfg.real);
    await writeFile(join(this.root, 'etc', 'containerd', 'config.toml'), cfg.view);
    await writeFile(
      join(dir, 'cni', '10-nrc.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: `nrc-${index}`,
        plugins: [
          { type: 'bridge', bridge: `nrc${index}`, isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: this.o.podSubnet }]], routes: [{ dst: '0.0.0.0/0' }] } },
          { type: 'loopback' },
        ],
      }),
    );
    const ctrd = runtime === 'containerd-1.6' ? '/usr/bin/containerd' : goTool('containerd2/containerd');
    // containerd 2 finds its shim through $PATH first: put the matching one there.
    const env = runtime === 'containerd-1.6' ? process.env : { ...process.env, PATH: `${join(goTool('containerd2/containerd'), '..')}:${process.env.PATH ?? ''}` };
    this.containerd = await spawnLogged('containerd', ctrd, ['--config', join(dir, 'containerd', 'config.toml')], logs, env);
    for (let i = 0; i < 100 && !existsSync(this.socket); i++) await sleep(100);
    for (const archive of this.o.images) await this.ctr(['images', 'import', archive]);

    const kubeconfig = await this.nodeCredentials();
    // Each kubelet on this machine needs its own ports and cgroup root.
    const cgroupRoot = `/nrc-node-${index}`;
    for (const c of ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'systemd', 'blkio', 'devices', 'freezer', 'hugetlb', 'net_cls', 'net_prio', 'perf_event']) {
      if (existsSync(`/sys/fs/cgroup/${c}`)) await mkdir(`/sys/fs/cgroup/${c}${cgroupRoot}`, { recursive: true });
    }
    await writeFile(
      join(dir, 'kubelet.yaml'),
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'failSwapOn: false',
        'failCgroupV1: false',
        'cgroupDriver: cgroupfs',
        `cgroupRoot: ${cgroupRoot}`,
        `containerRuntimeEndpoint: unix://${this.socket}`,
        'authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: "' + this.cp.caFile + '"}}',
        'authorization: {mode: AlwaysAllow}',
        'address: 127.0.0.1',
        `port: ${10_350 + index * 10}`,
        'readOnlyPort: 0',
        `healthzPort: ${10_351 + index * 10}`,
        'healthzBindAddress: 127.0.0.1',
        'evictionHard: {}',
        'imageGCHighThresholdPercent: 100',
        'imageGCLowThresholdPercent: 99',
        'localStorageCapacityIsolation: false',
        'resolvConf: /etc/resolv.conf',
        'serializeImagePulls: false',
        `podLogsDir: ${join(dir, 'pod-logs')}`,
        ...(this.o.registerWithTaints?.length ? [`registerWithTaints: ${JSON.stringify(this.o.registerWithTaints)}`] : []),
        ...(this.o.featureGates && Object.keys(this.o.featureGates).length > 0 ? [`featureGates: ${JSON.stringify(this.o.featureGates)}`] : []),
        '',
      ].join('\n'),
    );
    const args = [`--config=${join(dir, 'kubelet.yaml')}`, `--kubeconfig=${kubeconfig}`, `--root-dir=${this.kubeletRootDir}`, `--hostname-override=${this.o.name}`, '--v=2'];
    if (this.o.credentialProvider) {
      await this.installCredentialProvider(this.o.credentialProvider);
      // pkg/kubelet/config/flags.go (1.34.4): both are ContainerRuntimeOptions flags, read once at
      // start (kuberuntime_manager.go: RegisterCredentialProviderPlugins, os.Exit(1) on error).
      args.push(`--image-credential-provider-config=${this.providerConfigPath}`, `--image-credential-provider-bin-dir=${this.providerBinDir}`);
    }
    this.kubelet = await spawnLogged('kubelet', goTool(kubeToolName('kubelet', this.kube)), args, logs);
    await this.waitReady();
    this.kubeletVersion = (await kubectl(this.cp, ['get', 'node', this.o.name, '-o', 'jsonpath={.status.nodeInfo.kubeletVersion}'])).trim();
    // A wrong binary must not pass as the minor the test is named after.
    if (!this.kubeletVersion.startsWith(`v${this.kube}.`)) throw new Error(`node ${this.o.name}: kubelet ${this.kubeletVersion}, expected ${this.kube}`);
  }

  /**
   * The bootstrap's part of provider mode, done before the kubelet starts: the shipped plugin
   * copied byte for byte into the bin dir (mode 0755), and the example config with only what a
   * test node needs changed: NRC_PROVIDER_STATE names the state under this node's host root (a
   * directory here, `/` on a node), NRC_PROVIDER_ASKED is set, and the example's `:5000` patterns
   * are repeated for the test registries' ports. Everything else (the example's matchImages,
   * apiVersion, defaultCacheDuration, args) is kept.
   */
  private async installCredentialProvider(boot: CredentialProviderBoot): Promise<void> {
    await mkdir(this.providerBinDir, { recursive: true });
    await mkdir(join(this.providerConfigPath, '..'), { recursive: true });
    let plugin = await readFile(join(PROVIDER_EXAMPLE_DIR, PROVIDER_PLUGIN), 'utf8');
    if (boot.answerCacheDuration !== undefined) {
      const last = `printf '%s' "$body"\n`;
      if (!plugin.endsWith(last)) throw new Error(`${PROVIDER_PLUGIN}: its last line is no longer ${last.trim()}; update the cacheDuration mutation`);
      plugin = `${plugin.slice(0, -last.length)}printf '%s' "$body" | sed 's/"cacheDuration":"0s"/"cacheDuration":"${boot.answerCacheDuration}"/'\n`;
    }
    await writeFile(join(this.providerBinDir, PROVIDER_PLUGIN), plugin, { mode: 0o755 });
    await chmod(join(this.providerBinDir, PROVIDER_PLUGIN), 0o755);
    const config = load(await readFile(boot.configFile ?? join(PROVIDER_EXAMPLE_DIR, 'credential-provider-config.yaml'), 'utf8')) as {
      providers: { name: string; matchImages: string[]; env?: { name: string; value: string }[] }[];
    };
    const provider = config.providers.find((p) => p.name === PROVIDER_PLUGIN);
    if (!provider) throw new Error(`${boot.configFile ?? 'the example config'} has no provider ${PROVIDER_PLUGIN}`);
    const ported = provider.matchImages.filter((m) => m.endsWith(':5000'));
    provider.matchImages = [...provider.matchImages, ...boot.ports.flatMap((port) => ported.map((m) => `${m.slice(0, -':5000'.length)}:${port}`))];
    provider.env = [
      ...(provider.env ?? []).filter((e) => e.name !== 'NRC_PROVIDER_STATE' && e.name !== 'NRC_PROVIDER_ASKED'),
      { name: 'NRC_PROVIDER_STATE', value: this.providerStatePath },
      { name: 'NRC_PROVIDER_ASKED', value: this.providerAskedPath },
    ];
    await writeFile(this.providerConfigPath, dump(config));
  }

  async waitReady(timeoutMs = 90_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const out = await kubectl(this.cp, ['get', 'node', this.o.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']).catch(() => '');
      if (out === 'True') return;
      if (Date.now() > until) throw new Error(`node ${this.o.name} not Ready after ${timeoutMs} ms; see ${join(this.o.dir, 'logs')}`);
      await sleep(500);
    }
  }

  /** What a failing step needs to be understood: pods on this node, their events and container logs. */
  async diagnostics(): Promise<string> {
    const out: string[] = [];
    out.push(await kubectl(this.cp, ['get', 'pods', '-A', '-o', 'wide', '--field-selector', `spec.nodeName=${this.o.name}`]).catch((e: Error) => e.message));
    out.push(await kubectl(this.cp, ['get', 'events', '-A', '--sort-by=.lastTimestamp']).then((t) => t.split('\n').slice(-25).join('\n')).catch((e: Error) => e.message));
    const { readdir } = await import('node:fs/promises');
    const logs = join(this.o.dir, 'pod-logs');
    for (const pod of await readdir(logs).catch(() => [] as string[])) {
      for (const c of await readdir(join(logs, pod)).catch(() => [] as string[])) {
        for (const f of await readdir(join(logs, pod, c)).catch(() => [] as string[])) {
          const text = await readFile(join(logs, pod, c, f), 'utf8').catch(() => '');
          out.push(`--- ${pod}/${c}/${f}\n${text.split('\n').slice(-30).join('\n')}`);
        }
      }
    }
    return out.join('\n');
  }

  /** Stops the kubelet and the runtime and removes every container, shim and mount they left. */
  async stop(): Promise<void> {
    await stopChild(this.kubelet);
    try {
      for (const id of (await this.ctr(['tasks', 'ls', '-q'])).split('\n').filter(Boolean)) {
        await this.ctr(['tasks', 'kill', '-s', 'KILL', id]).catch(() => undefined);
        for (let i = 0; i < 20; i++) if ((await this.ctr(['tasks', 'delete', id]).then(() => true, () => false))) break; else await sleep(100);
      }
      // Sandboxes (and the CNI bridge's addresses) go with the pods.
      for (const id of (await this.ctr(['containers', 'ls', '-q'])).split('\n').filter(Boolean)) await this.ctr(['containers', 'rm', id]).catch(() => undefined);
    } catch {
      // the runtime is already gone
    }
    await stopChild(this.containerd);
    await execFileP('pkill', ['-KILL', '-f', `containerd-shim.* -address ${this.socket}`]).catch(() => undefined);
    // The kubelet bind-mounts its root dir and every volume under it.
    const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(this.o.dir));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await execFileP('umount', ['-l', m]).catch(() => undefined);
    await execFileP('ip', ['link', 'del', `nrc${this.o.index}`]).catch(() => undefined);
  }
}

/** A node suite's shared inputs: its work directory, a registry PKI, the agent and pause images as archives. */
export interface NodeSuiteWork {
  readonly work: string;
  readonly pki: Pki;
  readonly agentArchive: string;
  readonly pauseArchive: string;
}

export async function nodeSuiteWork(prefix: string): Promise<NodeSuiteWork> {
  const work = await mkdtemp(join(tmpdir(), prefix));
  const pkiDir = join(work, 'pki');
  await mkdir(pkiDir, { recursive: true });
  const pki = await makePki(pkiDir);
  // The node project runs its files two at a time (vitest.config.ts): one docker build of the
  // agent's image (and import of the pause image) at a time, as two builds of one tag race.
  return withHostLock('nrc-node-images', async () => ({ work, pki, agentArchive: await dockerArchive(await buildAgentImage(), work), pauseArchive: await pauseImageArchive(work) }));
}

/** Runs `fn` holding a lock shared by every process on this machine (a directory under /tmp). */
async function withHostLock<T>(name: string, fn: () => Promise<T>, staleMs = 30 * 60_000): Promise<T> {
  const { stat } = await import('node:fs/promises');
  const lock = join(tmpdir(), `${name}.lock`);
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A holder killed mid-build leaves its lock: taken over once older than any build.
      const age = Date.now() - ((await stat(lock).catch(() => undefined))?.mtimeMs ?? Date.now());
      if (age > staleMs) await rm(lock, { recursive: true, force: true });
      else await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Removes a node suite's work directory, after whatever a failed step left mounted under it. */
export async function removeNodeSuiteWork(work: string | undefined): Promise<void> {
  if (!work) return;
  const mounted = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(work));
  for (const m of mounted.sort((a, b) => b.length - a.length)) await execFileP('umount', ['-l', m]).catch(() => undefined);
  await rm(work, { recursive: true, force: true }).catch(() => undefined);
}

/** What the agent may touch on the node (etc/, root/, the kubelet's config.json), to compare byte for byte. */
export async function agentHostFiles(node: KubeNode): Promise<Record<string, Entry>> {
  const root = Object.entries(await snapshot(join(node.root, 'root'))).map(([k, v]) => [`root/${k}`, v] as const);
  const kubelet = await readNoAtime(join(node.kubeletRootDir, 'config.json')).catch(() => Buffer.from('absent'));
  return { ...(await snapshot(join(node.root, 'etc'))), ...Object.fromEntries(root), 'var/lib/kubelet/config.json': { type: 'file', mode: 0, content: kubelet.toString('base64') } };
}

/**
 * Reads a file without moving its access time: the agent tells the kubelet's read of config.json
 * by it (src/report/effective.ts), so the tests' own reads must not look like the kubelet's.
 */
export async function readNoAtime(path: string): Promise<Buffer> {
  const f = await open(path, constants.O_RDONLY | constants.O_NOATIME);
  try {
    return await f.readFile();
  } finally {
    await f.close();
  }
}

/**
 * containerd's CRI pulls of `image`, in order: `PullImage "…" returns image reference` (ok) or
 * `PullImage "…" failed` at info/error level, logfmt with an RFC 3339 time (containerd 1.6 and 2.x).
 */
export async function containerdPulls(node: KubeNode, image: string): Promise<{ at: number; ok: boolean }[]> {
  const text = await readFile(join(node.o.dir, 'logs', 'containerd.log'), 'utf8').catch(() => '');
  const quoted = `PullImage \\"${image}\\" `;
  const out: { at: number; ok: boolean }[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(quoted)) continue;
    const ok = line.includes(`${quoted}returns image reference`);
    if (!ok && !line.includes(`${quoted}failed`)) continue;
    const m = /^time="([^"]+)"/.exec(line);
    // Milliseconds are enough, and Date.parse wants at most three fraction digits.
    const at = m?.[1] === undefined ? Number.NaN : Date.parse(m[1].replace(/(\.\d{3})\d+/, '$1'));
    if (Number.isFinite(at)) out.push({ at, ok });
  }
  return out;
}

/**
 * The kubelet's image pull records (KEP-2535 KubeletEnsureSecretPulledImages, on by default from
 * 1.35): `<root-dir>/image_manager/pulled/sha256-…`, one JSON ImagePulledRecord per image
 * (pkg/kubelet/images/pullmanager/fs_pullrecords.go). Image (repository) → the credentials it was
 * pulled with; undefined when the directory does not exist (1.34: the gate is off).
 */
export async function pulledRecords(node: KubeNode): Promise<Record<string, PullCredentials> | undefined> {
  const { readdir } = await import('node:fs/promises');
  const dir = join(node.kubeletRootDir, 'image_manager', 'pulled');
  const files = await readdir(dir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  if (files === undefined) return undefined;
  const out: Record<string, PullCredentials> = {};
  for (const f of files.filter((n) => n.startsWith('sha256-'))) {
    const rec = JSON.parse(await readFile(join(dir, f), 'utf8')) as { credentialMapping?: Record<string, PullCredentials> };
    Object.assign(out, rec.credentialMapping ?? {});
  }
  return out;
}

export interface PullCredentials {
  readonly nodePodsAccessible?: boolean;
  readonly kubernetesSecrets?: readonly { readonly namespace: string; readonly name: string }[];
  readonly kubernetesServiceAccounts?: readonly { readonly namespace: string; readonly name: string }[];
}

/** The user:password the kubelet's config.json on the node holds for each key (none when the file is absent). */
export async function kubeletAuths(node: KubeNode): Promise<Record<string, string>> {
  const text = (await readNoAtime(join(node.kubeletRootDir, 'config.json')).catch(() => undefined))?.toString('utf8') ?? '{}';
  const auths = (JSON.parse(text) as { auths?: Record<string, { auth?: string }> }).auths ?? {};
  return Object.fromEntries(Object.entries(auths).map(([k, v]) => [k, Buffer.from(v.auth ?? '', 'base64').toString()]));
}

/** Polls `fn` until it yields a value (errors count as "not yet"). */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out: ${what}`);
    await sleep(500);
  }
}

/** kubectl against one cluster (the admin's). */
export type Kubectl = (args: readonly string[], input?: string) => Promise<string>;

export interface PullOutcome {
  readonly phase: 'Running' | 'Failed';
  readonly events: string;
}

let podSeq = 0;
/**
 * A pod with the private image, no imagePullSecrets, on the node: Running, or its pull error.
 * `pollMs`: how often its status is read (the bench's wait section reads it every 250 ms).
 */
export async function pullWithPod(
  kubectl: Kubectl,
  node: KubeNode,
  image: string,
  timeoutMs = 60_000,
  pollMs = 1000,
  /** Default: namespace default (its default service account), imagePullPolicy Always, no imagePullSecrets (a Secret named here must be in that namespace). */
  pod: { readonly policy?: 'Always' | 'IfNotPresent'; readonly pullSecret?: string; readonly namespace?: string } = {},
): Promise<PullOutcome> {
  const name = `pull-${node.o.index}-${++podSeq}`;
  const ns = pod.namespace ?? 'default';
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns },
    spec: {
      nodeName: node.o.name, terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image, imagePullPolicy: pod.policy ?? 'Always' }],
      ...(pod.pullSecret ? { imagePullSecrets: [{ name: pod.pullSecret }] } : {}),
    },
  }));
  const until = Date.now() + timeoutMs;
  const events = (): Promise<string> => kubectl(['-n', ns, 'get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'custom-columns=REASON:.reason,MSG:.message', '--no-headers']);
  try {
    for (;;) {
      const status = JSON.parse(await kubectl(['-n', ns, 'get', 'pod', name, '-o', 'json'])) as { status?: { phase?: string; containerStatuses?: { state?: { waiting?: { reason?: string } } }[] } };
      const waiting = status.status?.containerStatuses?.[0]?.state?.waiting?.reason;
      if (status.status?.phase === 'Running') return { phase: 'Running', events: await events() };
      if (waiting === 'ErrImagePull' || waiting === 'ImagePullBackOff') return { phase: 'Failed', events: await events() };
      if (Date.now() > until) throw new Error(`pod ${name}: neither Running nor a pull error after ${timeoutMs} ms: ${await events()}`);
      await sleep(pollMs);
    }
  } finally {
    await kubectl(['-n', ns, 'delete', 'pod', name, '--grace-period=0', '--force', '--wait=false']).catch(() => undefined);
  }
}

/** The agent's Secret (okteto/okteto-dockerconfig-static by default), as kubectl apply takes it. */
export function dockerConfigSecret(auths: Record<string, { username: string; password: string }>, namespace = 'okteto', name = 'okteto-dockerconfig-static'): string {
  const doc = { auths: Object.fromEntries(Object.entries(auths).map(([k, v]) => [k, { auth: Buffer.from(`${v.username}:${v.password}`).toString('base64') }])) };
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(doc)).toString('base64') },
  });
}

/** The agent's provider state on the node (response.json): user:password per key, undefined when absent. */
export async function providerAuths(node: KubeNode): Promise<Record<string, string> | undefined> {
  const text = await readFile(node.providerStatePath, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const auth = (JSON.parse(text) as { auth?: Record<string, { username: string; password: string }> }).auth ?? {};
  return Object.fromEntries(Object.entries(auth).map(([k, v]) => [k, `${v.username}:${v.password}`]));
}
