// The real CLI (`run`) against the real API server as the DaemonSet's ServiceAccount (a
// TokenRequest token in a kubeconfig, RBAC from daemonset/): Secret edits and Registry resources
// reach the kubelet's config.json; the Node annotation; ECR awsIamUser through the fake AWS
// endpoint; awsIamRole through a real TokenRequest for the platform's ServiceAccount with the
// Registry's audience, its signature checked against the API server's signing key.
import { type ChildProcess, spawn } from 'node:child_process';
import { createPublicKey, createVerify } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
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
    kubeconfig = (await admin.agent()).path;
    await admin.putNode(node);
  });
  afterAll(async () => {
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

  function start(extra: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): ChildProcess {
    const args = ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'run', '--host-root', join(dir, 'host'), '--kubeconfig', kubeconfig, '--node-name', node, '--listen-address', '127.0.0.1:0', '--debounce-ms', '20', ...extra];
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(REPO_ROOT, 'node_modules', '.bin')}:${process.env['PATH'] ?? ''}`, NRC_LOG_LEVEL: 'info', ...extraEnv };
    delete env['KUBERNETES_SERVICE_HOST'];
    const c = spawn(NODE, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child = c;
    return c;
  }
  const kubeletAuths = async (): Promise<Record<string, { auth: string }>> => {
    try {
      return (JSON.parse(await readFile(join(dir, 'host/var/lib/kubelet/config.json'), 'utf8')) as { auths: Record<string, { auth: string }> }).auths;
    } catch {
      return {};
    }
  };
  const serverAddress = (): string | undefined => /"address":"([^"]+)"/.exec(stderr)?.[1];

  it('follows Secret edits and Registry resources onto the host, annotates its Node, and exits on SIGTERM', async () => {
    cleanups.push(await admin.grantSecrets(NS, ['both-creds']));
    await admin.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1', 'both.example.com': 'fromsecret:s' }));
    await admin.putOpaqueSecret(NS, 'both-creds', { username: 'fromregistry', password: 'r' });
    await admin.putRegistry(NS, 'both.example.com', staticSpec('both-creds'));
    const c = start();

    await waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u1:p1')), { timeout: 20_000, interval: 100 });
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));

    await admin.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u2:p2', 'new.example.com:5000': 'n:m' }));
    await waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u2:p2')), { timeout: 10_000, interval: 50 });
    expect((await kubeletAuths())['new.example.com:5000']?.auth).toBe(b64('n:m'));
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));

    await waitFor(() => expect(serverAddress()).toBeDefined(), { timeout: 5000 });
    expect((await fetch(`http://${serverAddress()}/readyz`)).status).toBe(200);
    await waitFor(async () => expect((await admin.nodeAnnotations(node))[ANNOTATION_HASH]).toBeTruthy());
    expect(stderr).not.toContain('p2');
    expect(stderr).not.toContain('NRC_E_K8S_FORBIDDEN');

    await admin.deleteSecret(NS, SECRET);
    await waitFor(async () => expect((await kubeletAuths())['reg.example.com']).toBeUndefined(), { timeout: 10_000, interval: 50 });

    const exited = new Promise<number | null>((resolve) => {
      c.once('exit', (code) => resolve(code));
      c.kill('SIGTERM');
    });
    expect(await exited).toBe(0);
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));
  }, 60_000);

  it('ECR: awsIamUser keys and an awsIamRole web identity from a real TokenRequest with the Registry\'s audience', async () => {
    const audience = 'okteto.example.com/us-east-2';
    const roleArn = 'arn:aws:iam::210987654321:role/pull';
    const claims: Record<string, unknown>[] = [];
    const aws = new FakeAws({
      region: 'us-east-2',
      // The role's trust policy: <issuer>:aud = audience and <issuer>:sub = the platform's ServiceAccount.
      acceptWebIdentity: (token) => {
        void verifiedClaims(token).then((c) => claims.push(c));
        const c = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { aud?: string[]; sub?: string; iss?: string };
        return c.iss === SERVICE_ACCOUNT_ISSUER && c.sub === 'system:serviceaccount:okteto:okteto' && (c.aud ?? []).includes(audience);
      },
    });
    const url = await aws.start();
    try {
      cleanups.push(await admin.grantSecrets(NS, ['ecr-keys']));
      const userHost = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
      const roleHost = '210987654321.dkr.ecr.us-east-2.amazonaws.com';
      await admin.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
      await admin.putRegistry(NS, userHost, { awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } } });
      await admin.putRegistry(NS, roleHost, { awsIamRole: { audience, roleARN: roleArn } });
      await admin.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1' }));
      start(['--ecr-fleet-size', '100000'], { AWS_ENDPOINT_URL_ECR: url, AWS_ENDPOINT_URL_STS: url });
      await waitFor(async () => expect(Object.keys(await kubeletAuths())).toEqual(expect.arrayContaining([userHost, roleHost])), { timeout: 30_000, interval: 100 });
      expect(aws.ecrCalls().every((c) => c.status === 200)).toBe(true);
      expect(aws.calls.filter((c) => c.service === 'sts').map((c) => c.status)).toEqual([200]);
      await waitFor(() => expect(claims).toHaveLength(1));
      expect(claims[0]).toMatchObject({ iss: SERVICE_ACCOUNT_ISSUER, aud: [audience], sub: 'system:serviceaccount:okteto:okteto' });
      const life = Number(claims[0]!['exp']) - Number(claims[0]!['iat']);
      expect(life).toBeGreaterThanOrEqual(600);
      expect(life).toBeLessThanOrEqual(3600);
      await waitFor(async () => expect((await admin.nodeAnnotations(node))[ANNOTATION_TOKEN_EXPIRIES]).toContain(userHost));
      for (const secret of [TEST_SECRET_ACCESS_KEY, ...aws.issued.map((t) => t.password), ...aws.webIdentityTokens]) expect(stderr).not.toContain(secret);
    } finally {
      await aws.stop();
    }
  }, 60_000);
});
