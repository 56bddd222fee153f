// A real local control plane for the tests (the controller-runtime "envtest" convention): etcd and
// kube-apiserver built from the Go module proxy by scripts/build-go-tools.sh (testenv/etcd,
// testenv/kube), started on free loopback ports with TLS, `--authorization-mode=Node,RBAC`, a
// service-account issuer and signing key (TokenRequest works without kube-controller-manager),
// an admin client certificate (O=system:masters) for the test itself, the project's CRD and the
// DaemonSet's manifests (`kubectl kustomize daemonset/`, exactly as shipped, namespace okteto).
//
// Used by test/support/control-plane-global-setup.ts (one shared instance per `npm test`), by the
// fault suites (their own instance: they stop and restart etcd and the API server) and by
// scripts/cluster.ts (`npm run cluster`). Every child is killed when this process exits.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { goTool } from './go-tools.ts';
import { REPO_ROOT } from './e2e-prereqs.ts';

const execFileP = promisify(execFile);

export const CONTROL_PLANE_TOOLS = ['etcd', 'kube-apiserver'] as const;

/** The Kubernetes minors the test environment builds: testenv/kube (1.34) and testenv/kube137. */
export type KubeMinor = '1.34' | '1.37';
/** The newest minor the Go module proxy serves (k8s.io/kubernetes v1.37.2, testenv/kube137). */
export const NEWEST_KUBE: KubeMinor = '1.37';
/** The minor every suite runs unless it asks for another. */
export const DEFAULT_KUBE: KubeMinor = '1.34';

/** A Kubernetes binary of `minor` as goTool names it: 1.34 at the top, others in k8s-<minor>/. */
export function kubeToolName(name: 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubelet', minor: KubeMinor = DEFAULT_KUBE): string {
  return minor === DEFAULT_KUBE ? name : `k8s-${minor}/${name}`;
}
/** The namespace and ServiceAccount the shipped manifests (daemonset/) create. */
export const AGENT_NAMESPACE = 'okteto';
export const AGENT_SERVICE_ACCOUNT = 'node-registry-credentials';
/** The platform's own ServiceAccount, the one awsIamRole tokens are requested for. */
export const PLATFORM_SERVICE_ACCOUNT = 'okteto';
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** What a test needs to reach a running control plane (serializable: passed from globalSetup). */
export interface ControlPlaneInfo {
  readonly dir: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly caFile: string;
  readonly adminKubeconfig: string;
  /** http://127.0.0.1:<port>: etcd's client URL (v3 HTTP gateway for compaction). */
  readonly etcdUrl: string;
  /** Milliseconds from spawning etcd to the CRD and manifests being installed. */
  readonly startupMs: number;
  /** The kube-apiserver's minor (absent: 1.34). */
  readonly kube?: KubeMinor;
}

export interface ControlPlaneOptions {
  /** Extra kube-apiserver flags (e.g. --watch-cache=false). */
  readonly apiserverArgs?: readonly string[];
  /** Directory for certs, data, logs and kubeconfigs (default: a new temp dir, removed on stop). */
  readonly dir?: string;
  /** Install daemonset/crd and daemonset/ (default true). */
  readonly install?: boolean;
  /** The kube-apiserver's minor (default 1.34); etcd is the same for both. */
  readonly kube?: KubeMinor;
  readonly log?: (line: string) => void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await execFileP('openssl', args, { cwd });
}

/** CA, API server serving cert, admin client cert, service-account signing key (EC P-256). */
async function makePki(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=nrc-test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const sign = async (name: string, subj: string, ext: string): Promise<void> => {
    await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '30', '-extfile', `${name}.ext`], dir);
  };
  await sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  await sign('admin', '/O=system:masters/CN=nrc-test-admin', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], dir);
  await openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A kubeconfig (YAML) for `server` authenticating with a bearer token. */
export function tokenKubeconfigYaml(server: string, caFile: string, token: string, user = 'token'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: nrc-test`,
    `  cluster: {server: "${server}", certificate-authority: "${caFile}"}`,
    'users:',
    `- name: ${user}`,
    `  user: {token: "${token}"}`,
    'contexts:',
    `- name: nrc-test`,
    `  context: {cluster: nrc-test, user: ${user}}`,
    'current-context: nrc-test',
    '',
  ].join('\n');
}

/** A KubeConfig object for a running control plane from its info (admin, or a token). */
export function kubeConfigFor(info: ControlPlaneInfo, token?: string): KubeConfig {
  const kc = new KubeConfig();
  if (token === undefined) kc.loadFromFile(info.adminKubeconfig);
  else kc.loadFromString(tokenKubeconfigYaml(info.server, info.caFile, token));
  return kc;
}

/** kubectl against the control plane with the admin credential. */
export async function kubectl(info: ControlPlaneInfo, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = execFile(goTool('kubectl'), ['--kubeconfig', info.adminKubeconfig, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) c.stdin?.end(input);
  });
}

/** `kubectl kustomize DIR` (relative to the repository). */
export async function kustomize(dir: string): Promise<string> {
  return (await execFileP(goTool('kubectl'), ['kustomize', join(REPO_ROOT, dir)], { maxBuffer: 16 << 20 })).stdout;
}

/** kustomize, blocking: for test files that render while collecting. */
export function kustomizeSync(dir: string): string {
  return execFileSync(goTool('kubectl'), ['kustomize', join(REPO_ROOT, dir)], { encoding: 'utf8', maxBuffer: 16 << 20 });
}

/**
 * A ServiceAccount token through the TokenRequest API (admin credential), as the kubelet gets a
 * pod's projected token. Default audience: the API server's own.
 */
export async function serviceAccountToken(
  info: ControlPlaneInfo,
  namespace: string,
  name: string,
  opts: { audiences?: string[]; expirationSeconds?: number; boundPod?: { name: string; uid: string } } = {},
): Promise<string> {
  // Bound to a Pod (as the kubelet binds a pod's projected token): the API server then adds the
  // pod's node to the token (user extra authentication.kubernetes.io/node-name, 1.30+), which the
  // agent's ValidatingAdmissionPolicy reads.
  const boundObjectRef = opts.boundPod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', ...opts.boundPod } } : {};
  const body = JSON.stringify({
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { ...(opts.audiences ? { audiences: opts.audiences } : {}), expirationSeconds: opts.expirationSeconds ?? 3600, ...boundObjectRef },
  });
  const res = await adminRequest(info, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, body);
  if (res.status !== 201) throw new Error(`TokenRequest ${namespace}/${name}: HTTP ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { status: { token: string } }).status.token;
}

const httpCode = (err: unknown): unknown => (typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined);

/**
 * A Pod of `serviceAccount` on Node `node` (the Node created if missing; no kubelet runs the Pod:
 * it only anchors a token, label nrc-test=token-anchor). A TokenRequest bound to it (boundPod)
 * carries the node name that the agent's ValidatingAdmissionPolicy checks.
 */
export async function tokenAnchorPod(info: ControlPlaneInfo, node: string, namespace = AGENT_NAMESPACE, serviceAccount = AGENT_SERVICE_ACCOUNT): Promise<{ name: string; uid: string }> {
  const core = kubeConfigFor(info).makeApiClient(CoreV1Api);
  await core.createNode({ body: { metadata: { name: node } } }).catch((err: unknown) => {
    if (httpCode(err) !== 409) throw err;
  });
  const name = `${serviceAccount}-${node}`.slice(0, 63);
  const body = {
    metadata: { name, namespace, labels: { 'nrc-test': 'token-anchor' } },
    spec: { nodeName: node, serviceAccountName: serviceAccount, automountServiceAccountToken: false, containers: [{ name: 'agent', image: 'node-registry-credentials:dev' }] },
  };
  const pod = await core.createNamespacedPod({ namespace, body }).catch(async (err: unknown) => {
    if (httpCode(err) !== 409) throw err;
    return core.readNamespacedPod({ namespace, name });
  });
  return { name, uid: pod.metadata!.uid! };
}

/** Writes a kubeconfig for a ServiceAccount token under the control plane's dir; returns its path. */
export async function serviceAccountKubeconfig(info: ControlPlaneInfo, namespace = AGENT_NAMESPACE, name = AGENT_SERVICE_ACCOUNT, boundPod?: { name: string; uid: string }): Promise<{ path: string; token: string }> {
  const token = await serviceAccountToken(info, namespace, name, boundPod ? { boundPod } : {});
  const path = join(info.dir, `kubeconfig-${namespace}-${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  await writeFile(path, tokenKubeconfigYaml(info.server, info.caFile, token, `system:serviceaccount:${namespace}:${name}`), { mode: 0o600 });
  return { path, token };
}

/** One HTTPS request with the admin client certificate. */
export async function adminRequest(info: ControlPlaneInfo, method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; body: string }> {
  const pki = join(info.dir, 'pki');
  const [ca, cert, key] = await Promise.all(['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(join(pki, f))));
  const url = new URL(path, info.server);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ca, cert, key, headers: body ? { 'content-type': contentType } : {}, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

export class ControlPlane {
  private readonly opts: ControlPlaneOptions;
  private etcd: ChildProcess | undefined;
  private apiserver: ChildProcess | undefined;
  private ownsDir = false;
  private ports = { etcdClient: 0, etcdPeer: 0, apiserver: 0 };
  info!: ControlPlaneInfo;

  constructor(opts: ControlPlaneOptions = {}) {
    this.opts = opts;
  }

  private log(line: string): void {
    this.opts.log?.(`[control-plane] ${line}`);
  }

  async start(): Promise<ControlPlaneInfo> {
    installExitHook();
    const t0 = Date.now();
    const dir = this.opts.dir ?? (await mkdtemp(join(tmpdir(), 'nrc-control-plane-')));
    this.ownsDir = this.opts.dir === undefined;
    await mkdir(join(dir, 'logs'), { recursive: true });
    await makePki(join(dir, 'pki'));
    this.ports = { etcdClient: await freePort(), etcdPeer: await freePort(), apiserver: await freePort() };
    const pki = join(dir, 'pki');
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    const server = `https://127.0.0.1:${this.ports.apiserver}`;
    await writeFile(
      adminKubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: nrc-test',
        `  cluster: {server: "${server}", certificate-authority: "${join(pki, 'ca.crt')}"}`,
        'users:',
        '- name: nrc-test-admin',
        `  user: {client-certificate: "${join(pki, 'admin.crt')}", client-key: "${join(pki, 'admin.key')}"}`,
        'contexts:',
        '- name: nrc-test',
        '  context: {cluster: nrc-test, user: nrc-test-admin}',
        'current-context: nrc-test',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    this.info = { dir, server, caFile: join(pki, 'ca.crt'), adminKubeconfig, etcdUrl: `http://127.0.0.1:${this.ports.etcdClient}`, startupMs: 0, kube: this.opts.kube ?? DEFAULT_KUBE };
    await this.startEtcd();
    await this.startApiserver();
    if (this.opts.install !== false) await this.install();
    this.info = { ...this.info, startupMs: Date.now() - t0 };
    this.log(`ready in ${this.info.startupMs} ms: ${server} (etcd ${this.info.etcdUrl}, dir ${dir})`);
    return this.info;
  }

  private spawnLogged(name: string, bin: string, args: string[]): ChildProcess {
    const out = createWriteStream(join(this.info.dir, 'logs', `${name}.log`), { flags: 'a' });
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout?.pipe(out, { end: false });
    c.stderr?.pipe(out, { end: false });
    children.add(c);
    c.once('exit', () => {
      children.delete(c);
      out.end();
    });
    return c;
  }

  private async logTail(name: string): Promise<string> {
    const text = await readFile(join(this.info.dir, 'logs', `${name}.log`), 'utf8').catch(() => '');
    return text.split('\n').slice(-30).join('\n');
  }

  async startEtcd(): Promise<void> {
    const { etcdClient, etcdPeer } = this.ports;
    const client = `http://127.0.0.1:${etcdClient}`;
    const peer = `http://127.0.0.1:${etcdPeer}`;
    this.etcd = this.spawnLogged('etcd', goTool('etcd'), [
      '--name=nrc',
      `--data-dir=${join(this.info.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=nrc=${peer}`,
      // Test data only: no fsync (start-up and writes are several times faster on a loaded disk).
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await this.waitFor('etcd', this.etcd, async () => {
      const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    });
  }

  async startApiserver(): Promise<void> {
    const pki = join(this.info.dir, 'pki');
    this.apiserver = this.spawnLogged('kube-apiserver', goTool(kubeToolName('kube-apiserver', this.opts.kube)), [
      `--etcd-servers=${this.info.etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.ports.apiserver}`,
      `--cert-dir=${join(this.info.dir, 'apiserver-certs')}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      // The tests compact etcd themselves (faults: 410 Gone); no background compaction.
      '--etcd-compaction-interval=0',
      '--profiling=false',
      // 1.37 refuses the loopback advertise address with the default lease reconciler
      // (pkg/controlplane/instance.go:354, v1.37.2); nothing reads the `kubernetes` Endpoints here:
      // pods reach the API server through the tests' DNAT of the Service VIP.
      ...(this.info.kube === '1.37' ? ['--endpoint-reconciler-type=none'] : []),
      ...(this.opts.apiserverArgs ?? []),
    ]);
    await this.waitFor('kube-apiserver', this.apiserver, async () => (await adminRequest(this.info, 'GET', '/readyz')).status === 200, 90_000);
  }

  private async waitFor(name: string, child: ChildProcess, ready: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) during start-up:\n${await this.logTail(name)}`);
      if (await ready().catch(() => false)) {
        this.log(`${name} ready in ${Date.now() - t0} ms`);
        return;
      }
      await sleep(100);
    }
    throw new Error(`${name} not ready after ${timeoutMs} ms:\n${await this.logTail(name)}`);
  }

  private async stopChild(c: ChildProcess | undefined): Promise<void> {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  /** True when the API server answers /readyz with 200 (etcd reachable again after a restart). */
  async adminReady(): Promise<boolean> {
    return (await adminRequest(this.info, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 200;
  }

  async stopApiserver(): Promise<void> {
    await this.stopChild(this.apiserver);
    this.apiserver = undefined;
  }

  async stopEtcd(): Promise<void> {
    await this.stopChild(this.etcd);
    this.etcd = undefined;
  }

  /** CRD (daemonset/crd), namespace okteto, the DaemonSet's manifests (daemonset/) as shipped, the platform's ServiceAccount. */
  private async install(): Promise<void> {
    // One kubectl apply (each kubectl start costs ~0.3-1 s on 2 cores): the namespace first, as an
    // operator creates it, then the CRD, daemonset/ as rendered, and the platform's ServiceAccount.
    const [crd, manifests] = await Promise.all([kustomize('daemonset/crd'), kustomize('daemonset')]);
    const namespace = `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${AGENT_NAMESPACE}\n`;
    const platformSa = `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${PLATFORM_SERVICE_ACCOUNT}\n  namespace: ${AGENT_NAMESPACE}\n`;
    await kubectl(this.info, ['apply', '-f', '-'], [namespace, crd, manifests, platformSa].join('\n---\n'));
    await kubectl(this.info, ['wait', '--for=condition=Established', '--timeout=30s', 'crd/registries.admin.okteto.com']);
    // Established comes before the CRD's storage is ready ("storage is (re)initializing", 429): a
    // first list through kubectl (which waits out Retry-After) so that no test meets that window.
    await kubectl(this.info, ['get', 'registries.admin.okteto.com', '-n', AGENT_NAMESPACE, '--request-timeout=30s']);
  }

  /** Compacts etcd at its current revision (v3 HTTP gateway); returns that revision. */
  async compact(): Promise<number> {
    const head = await fetch(`${this.info.etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) });
    const revision = Number(((await head.json()) as { header: { revision: string } }).header.revision);
    const res = await fetch(`${this.info.etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(revision), physical: true }) });
    if (!res.ok) throw new Error(`etcd compaction: HTTP ${res.status} ${await res.text()}`);
    return revision;
  }

  async stop(): Promise<void> {
    await this.stopApiserver();
    await this.stopEtcd();
    if (this.ownsDir && this.info) await rm(this.info.dir, { recursive: true, force: true });
  }
}

/** Starts a control plane (for a suite of its own). */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const cp = new ControlPlane(opts);
  try {
    await cp.start();
  } catch (err) {
    await cp.stop().catch(() => undefined);
    throw err;
  }
  return cp;
}
