// The real CLIs against the real API server, each as its own ServiceAccount with daemonset/'s RBAC
// as shipped: `run` (the node agent, a token bound to a Pod on its Node, as the kubelet binds it)
// follows the platform's Secret and the broker's onto the kubelet's config.json and annotates its
// Node; `broker` (the Deployment's account) resolves Registry resources of all three kinds (static,
// awsIamUser through the fake AWS endpoint's SigV4 check, awsIamRole through a real TokenRequest
// for the broker's own account with the Registry's audience, its signature checked against the API
// server's signing key) into its Secret, which the agent then writes for the kubelet.
import { type ChildProcess, spawn } from 'node:child_process';
import { createPublicKey, createVerify } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { V1NodeSystemInfo } from '@kubernetes/client-node';
import { renderScoped, SCOPED_DATA_KEY } from '../../src/model/scope.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANNOTATION_TOKEN_EXPIRIES } from '../../src/report/node-annotations.ts';
import { ANNOTATION_HASH } from '../../src/report/node-status.ts';
import { SERVICE_ACCOUNT_ISSUER } from '../support/control-plane.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { Admin, b64, controlPlane, NS, SECRET, waitFor } from './helpers.ts';

const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const BROKER_SECRET = 'node-registry-credentials-broker';
const BROKER_SA = 'node-registry-credentials-broker';
const info = controlPlane();
const dockerconfig = (a: Record<string, string>): unknown => ({ auths: Object.fromEntries(Object.entries(a).map(([h, up]) => [h, { auth: b64(up) }])) });
const staticSpec = (secret: string): unknown => ({ static: { userSecretRef: { name: secret, key: 'username' }, passwordSecretRef: { name: secret, key: 'password' } } });

/** The claims of a service-account JWT after checking its ES256 signature with the API server's public key. */
async function verifiedClaims(token: string): Promise<Record<string, unknown>> {
  const [h, p, s] = token.split('.');
  const key = createPublicKey(await readFile(join(info!.dir, 'pki', 'sa.pub')));
  const ok = createVerify('SHA256').update(`${h}.${p}`).verify({ key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s!, 'base64url'));
  if (!ok) throw new Error('bad signature');
  return JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
}

describe.skipIf(!info)('run with Kubernetes sources against the real API server (real CLI process)', () => {
  let admin: Admin;
  let kubeconfig: string;
  let dir: string;
  let child: ChildProcess | undefined;
  let stderr: string;
  const node = 'run-node-1';
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    admin = new Admin(info!);
    await admin.putNode(node);
    kubeconfig = (await admin.agent({ onNode: node })).path;
  });
  afterAll(async () => {
    await admin.deleteTokenAnchors();
    await admin.deleteNode(node);
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nrc-run-k8s-real-'));
    await mkdir(join(dir, 'host/var/lib/kubelet'), { recursive: true });
    stderr = '';
  });
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    for (const c of cleanups.splice(0)) await c();
    await admin.clean();
    await rm(dir, { recursive: true, force: true });
  });

  function cli(args: string[], extraEnv: NodeJS.ProcessEnv, onStderr: (s: string) => void): ChildProcess {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(REPO_ROOT, 'node_modules', '.bin')}:${process.env['PATH'] ?? ''}`, NRC_LOG_LEVEL: 'info', ...extraEnv };
    delete env['KUBERNETES_SERVICE_HOST'];
    const c = spawn(NODE, ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.on('data', (d: Buffer) => onStderr(d.toString()));
    return c;
  }
  function start(extra: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): ChildProcess {
    child = cli(['run', '--host-root', join(dir, 'host'), '--kubeconfig', kubeconfig, '--node-name', node, '--listen-address', '127.0.0.1:0', '--debounce-ms', '20', ...extra], extraEnv, (s) => (stderr += s));
    return child;
  }
  const kubeletAuths = async (): Promise<Record<string, { auth: string }>> => {
    try {
      return (JSON.parse(await readFile(join(dir, 'host/var/lib/kubelet/config.json'), 'utf8')) as { auths: Record<string, { auth: string }> }).auths;
    } catch {
      return {};
    }
  };
  const serverAddress = (): string | undefined => /"address":"([^"]+)"/.exec(stderr)?.[1];

  it("follows both Secrets onto the host (the broker's wins), reads no Registry resource, annotates its Node, and exits on SIGTERM", async () => {
    await admin.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1', 'both.example.com': 'fromsecret:s' }));
    // The broker's Secret carries the Registry resources' credentials (written here by the admin).
    await admin.putDockerConfigSecret(NS, BROKER_SECRET, dockerconfig({ 'both.example.com': 'fromregistry:r' }));
    // A Registry resource the agent has no right to read: it must not try (no 403 in its log).
    await admin.putOpaqueSecret(NS, 'other-creds', { username: 'o', password: 'never' });
    await admin.putRegistry(NS, 'other.example.com', staticSpec('other-creds'));
    const c = start();

    await waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u1:p1')), { timeout: 20_000, interval: 100 });
    // Precedence: the broker's Secret (Registry resources) wins over the platform's for the same registry.
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));

    await admin.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u2:p2', 'new.example.com:5000': 'n:m' }));
    await waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u2:p2')), { timeout: 10_000, interval: 50 });
    expect((await kubeletAuths())['new.example.com:5000']?.auth).toBe(b64('n:m'));
    // The broker's Secret still provides both.example.com after the platform's Secret dropped it.
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));
    await admin.putDockerConfigSecret(NS, BROKER_SECRET, dockerconfig({ 'both.example.com': 'fromregistry:r2' }));
    await waitFor(async () => expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r2')), { timeout: 10_000, interval: 50 });

    await waitFor(() => expect(serverAddress()).toBeDefined(), { timeout: 5000 });
    expect((await fetch(`http://${serverAddress()}/readyz`)).status).toBe(200);
    // Its own Node: the admission policy lets the pod-bound token through.
    await waitFor(async () => expect((await admin.nodeAnnotations(node))[ANNOTATION_HASH]).toBeTruthy());
    expect((await kubeletAuths())['other.example.com']).toBeUndefined();
    expect(stderr).not.toContain('p2');
    expect(stderr).not.toContain('NRC_E_K8S_FORBIDDEN');

    await admin.deleteSecret(NS, SECRET);
    await waitFor(async () => expect((await kubeletAuths())['reg.example.com']).toBeUndefined(), { timeout: 10_000, interval: 50 });

    const exited = new Promise<number | null>((resolve) => {
      c.once('exit', (code) => resolve(code));
      c.kill('SIGTERM');
    });
    expect(await exited).toBe(0);
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r2'));
  }, 60_000);

  it("namespace scoping: a kubelet 1.35+ gets scoped credentials per namespace only; an older one refuses them with NRC_E_SCOPE_UNSUPPORTED and writes them nowhere", async () => {
    const scoped = renderScoped({ entries: [{ key: 'team.example.com', username: 't', password: 'SCOPED-PW', namespaces: ['team-a'], source: 'registry:okteto/team' }], selectors: {} });
    await admin.putSecret(NS, { type: 'kubernetes.io/dockerconfigjson', name: BROKER_SECRET, data: { '.dockerconfigjson': b64(JSON.stringify(dockerconfig({ 'wide.example.com': 'w:1' }))), [SCOPED_DATA_KEY]: b64(scoped) } });
    const setKubelet = async (version: string): Promise<void> => {
      const current = await admin.core.readNode({ name: node });
      await admin.core.replaceNodeStatus({ name: node, body: { ...current, status: { ...current.status, nodeInfo: { ...(current.status?.nodeInfo ?? {}), kubeletVersion: version } as V1NodeSystemInfo } } });
    };
    const files = async (): Promise<string> => {
      const out: string[] = [];
      const walk = async (d: string): Promise<void> => {
        for (const e of await readdir(d, { withFileTypes: true })) {
          if (e.isDirectory()) await walk(join(d, e.name));
          else out.push(`${join(d, e.name)}\n${await readFile(join(d, e.name), 'utf8')}`);
        }
      };
      await walk(join(dir, 'host'));
      return out.join('\n');
    };
    const provider = ['--kubelet-credentials', 'provider', '--namespace-scoping', 'serviceaccount', '--docker-config-path', ''];
    const answer = join(dir, 'host/var/lib/node-registry-credentials/provider');

    await setKubelet('v1.34.4');
    let c = start(provider);
    await waitFor(async () => expect(await readFile(join(answer, 'response.json'), 'utf8')).toContain('wide.example.com'), { timeout: 20_000, interval: 100 });
    await waitFor(() => expect(stderr).toContain('NRC_E_SCOPE_UNSUPPORTED'), { timeout: 10_000, interval: 100 });
    expect(stderr).toContain('kubelet v1.34.4 is older than 1.35');
    expect(await files()).not.toContain('SCOPED-PW');
    expect(await files()).not.toContain(b64('t:SCOPED-PW'));
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });

    await setKubelet('v1.37.2');
    stderr = '';
    c = start(provider);
    await waitFor(async () => expect(await readFile(join(answer, 'namespaces', 'team-a.json'), 'utf8')).toContain('SCOPED-PW'), { timeout: 20_000, interval: 100 });
    expect(await readFile(join(answer, 'response.json'), 'utf8')).not.toContain('SCOPED-PW');
    expect(stderr).not.toContain('NRC_E_SCOPE_UNSUPPORTED');
    expect(stderr).not.toContain('SCOPED-PW');
  }, 60_000);

  it('the broker process turns Registry resources of all three kinds into its Secret; the agent writes every credential for the kubelet', async () => {
    const audience = 'okteto.example.com/us-east-2';
    const roleArn = 'arn:aws:iam::210987654321:role/pull';
    const claims: Record<string, unknown>[] = [];
    const aws = new FakeAws({
      region: 'us-east-2',
      // The role's trust policy: <issuer>:aud = audience and <issuer>:sub = the BROKER's own ServiceAccount.
      acceptWebIdentity: (token) => {
        void verifiedClaims(token).then((c) => claims.push(c));
        const c = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { aud?: string[]; sub?: string; iss?: string };
        return c.iss === SERVICE_ACCOUNT_ISSUER && c.sub === `system:serviceaccount:okteto:${BROKER_SA}` && (c.aud ?? []).includes(audience);
      },
    });
    const url = await aws.start();
    let broker: ChildProcess | undefined;
    let brokerErr = '';
    try {
      const userHost = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
      const roleHost = '210987654321.dkr.ecr.us-east-2.amazonaws.com';
      await admin.putOpaqueSecret(NS, 'static-creds', { username: 'alice', password: 's3cret-static' });
      await admin.putRegistry(NS, 'registry.example.com', staticSpec('static-creds'));
      await admin.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
      await admin.putRegistry(NS, userHost, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } });
      await admin.putRegistry(NS, roleHost, { awsIamRole: { audience, roleARN: roleArn } });
      await admin.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1' }));
      const brokerKubeconfig = (await admin.agent({ name: BROKER_SA })).path;
      broker = cli(['broker', '--kubeconfig', brokerKubeconfig, '--identity', 'broker-0', '--listen-address', '127.0.0.1:0'], { AWS_ENDPOINT_URL_ECR: url, AWS_ENDPOINT_URL_STS: url }, (s) => (brokerErr += s));
      start();
      await waitFor(async () => expect(Object.keys(await kubeletAuths()).sort()).toEqual([roleHost, userHost, 'reg.example.com', 'registry.example.com'].sort()), { timeout: 30_000, interval: 100 });
      const a = await kubeletAuths();
      expect(a['registry.example.com']?.auth).toBe(b64('alice:s3cret-static'));
      const passwords = aws.issued.map((t) => t.password);
      for (const host of [userHost, roleHost]) expect(passwords.map((p) => b64(`AWS:${p}`))).toContain(a[host]?.auth);
      expect(aws.ecrCalls().map((c) => c.status)).toEqual([200, 200]);
      expect(aws.calls.filter((c) => c.service === 'sts').map((c) => c.status)).toEqual([200]);
      await waitFor(() => expect(claims).toHaveLength(1));
      // The broker exports each token's remaining life, which the chart's EcrTokenExpiring alert reads.
      const brokerAddress = /"address":"([^"]+)"/.exec(brokerErr)?.[1];
      expect(brokerAddress, brokerErr).toBeDefined();
      const exposition = await (await fetch(`http://${brokerAddress}/metrics`)).text();
      for (const host of [userHost, roleHost]) {
        const left = Number(new RegExp(`^nrc_ecr_token_expiry_seconds\\{registry="${host.replace(/\./g, '\\.')}"\\} (\\S+)$`, 'm').exec(exposition)?.[1]);
        expect(left, exposition).toBeGreaterThan(3600);
      }
      expect(claims[0]).toMatchObject({ iss: SERVICE_ACCOUNT_ISSUER, aud: [audience], sub: `system:serviceaccount:okteto:${BROKER_SA}` });
      const life = Number(claims[0]!['exp']) - Number(claims[0]!['iat']);
      expect(life).toBeGreaterThanOrEqual(600);
      expect(life).toBeLessThanOrEqual(3600);
      // The fleet view still sees when this node's tokens expire (from the broker's expiry annotation).
      await waitFor(async () => expect((await admin.nodeAnnotations(node))[ANNOTATION_TOKEN_EXPIRIES]).toContain(userHost));
      expect((await admin.lease(NS, BROKER_SECRET))?.holderIdentity).toBe('broker-0');
      // SIGTERM releases the Lease for the other replica.
      const exited = new Promise<number | null>((resolve) => broker!.once('exit', (code) => resolve(code)));
      broker.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect((await admin.lease(NS, BROKER_SECRET))?.holderIdentity ?? '').toBe('');
      for (const secret of ['s3cret-static', TEST_SECRET_ACCESS_KEY, ...passwords, ...aws.webIdentityTokens]) {
        expect(stderr).not.toContain(secret);
        expect(brokerErr).not.toContain(secret);
      }
      expect(stderr).not.toContain('NRC_E_K8S_FORBIDDEN');
      expect(brokerErr).not.toContain('NRC_E_K8S_FORBIDDEN');
    } finally {
      if (broker && broker.exitCode === null && broker.signalCode === null) broker.kill('SIGKILL');
      await aws.stop();
      await admin.deleteLease(NS, BROKER_SECRET);
    }
  }, 60_000);
});
