// The real CLI (`run`) against the fake API server and a temporary host root: edit the
// Secret and the Registry resources, see the kubelet's config.json change; SIGTERM ends it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ANNOTATION_HASH } from '../../src/report/node-status.ts';
import { ANNOTATION_TOKEN_EXPIRIES } from '../../src/report/node-annotations.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const NODE = join(REPO, 'node_modules', '.bin', 'node');
const NS = 'okteto';
const SECRET = 'okteto-dockerconfig-static';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const dockerconfig = (auths: Record<string, string>): unknown => ({
  auths: Object.fromEntries(Object.entries(auths).map(([h, up]) => [h, { auth: b64(up) }])),
});

describe('run with Kubernetes sources (real CLI process)', () => {
  let api: FakeApiServer;
  let dir: string;
  let child: ChildProcess | undefined;
  let stderr: string;

  beforeEach(async () => {
    api = new FakeApiServer();
    await api.start();
    api.putNode('node-1');
    dir = await mkdtemp(join(tmpdir(), 'nrc-run-k8s-'));
    await mkdir(join(dir, 'host/var/lib/kubelet'), { recursive: true });
    await writeFile(join(dir, 'kubeconfig'), api.kubeconfigYaml());
    stderr = '';
  });
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function start(extra: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): ChildProcess {
    const args = ['--import', 'tsx', join(REPO, 'src/cli.ts'), 'run', '--host-root', join(dir, 'host'), '--kubeconfig', join(dir, 'kubeconfig'), '--node-name', 'node-1', '--listen-address', '127.0.0.1:0', '--debounce-ms', '20', ...extra];
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(REPO, 'node_modules', '.bin')}:${process.env['PATH'] ?? ''}`, NRC_LOG_LEVEL: 'info', ...extraEnv };
    delete env['KUBERNETES_SERVICE_HOST'];
    const c = spawn(NODE, args, { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
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

  it('follows Secret edits and Registry resources onto the host, reports status, and exits on SIGTERM within a second', async () => {
    api.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1', 'both.example.com': 'fromsecret:s' }));
    api.putOpaqueSecret(NS, 'both-creds', { username: 'fromregistry', password: 'r' });
    api.putRegistry(NS, 'both.example.com', { static: { userSecretRef: { name: 'both-creds', key: 'username' }, passwordSecretRef: { name: 'both-creds', key: 'password' } } });
    const c = start();

    await vi.waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u1:p1')), { timeout: 20_000, interval: 100 });
    // Precedence: the Registry resource wins over the Secret for the same registry.
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));

    api.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u2:p2', 'new.example.com:5000': 'n:m' }));
    await vi.waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u2:p2')), { timeout: 10_000, interval: 50 });
    expect((await kubeletAuths())['new.example.com:5000']?.auth).toBe(b64('n:m'));
    // The Registry still provides both.example.com after the Secret dropped it.
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));

    // Readiness, metrics and the Node annotation are visible from outside.
    await vi.waitFor(() => expect(serverAddress()).toBeDefined(), { timeout: 5000 });
    expect((await fetch(`http://${serverAddress()}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`http://${serverAddress()}/metrics`)).text();
    expect(metrics).toMatch(/nrc_last_successful_apply_timestamp_seconds \d+/);
    await vi.waitFor(() => expect((api.get('nodes', undefined, 'node-1')?.['metadata'] as { annotations?: Record<string, string> }).annotations?.[ANNOTATION_HASH]).toBeTruthy());
    expect(stderr).not.toContain('p2');

    api.delete('secrets', NS, SECRET);
    await vi.waitFor(async () => expect((await kubeletAuths())['reg.example.com']).toBeUndefined(), { timeout: 10_000, interval: 50 });

    const exited = new Promise<{ code: number | null; ms: number }>((resolve) => {
      const t0 = Date.now();
      c.once('exit', (code) => resolve({ code, ms: Date.now() - t0 }));
      c.kill('SIGTERM');
    });
    const { code, ms } = await exited;
    expect(code).toBe(0);
    // The agent enforces its own 800 ms stop deadline (run.ts); the bound here only catches a hang,
    // with slack for a loaded CI machine.
    expect(ms).toBeLessThan(3000);
    // A restart of the pod leaves the node configured: nothing was cleaned up on SIGTERM.
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));
  }, 60_000);

  it('exchanges an awsIamUser Registry for an ECR token through the real AWS SDK and writes it for the kubelet', async () => {
    const aws = new FakeAws({ region: 'us-east-2' });
    const url = await aws.start();
    try {
      const ecrHost = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
      api.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
      api.putRegistry(NS, ecrHost, {
        awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } },
      });
      api.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1' }));
      // A fleet this size spreads first calls over 30 minutes, but this node has just joined
      // (its creationTimestamp is now): it calls AWS within seconds.
      start(['--ecr-fleet-size', '100000'], { AWS_ENDPOINT_URL_ECR: url });
      await vi.waitFor(async () => expect((await kubeletAuths())[ecrHost]).toBeDefined(), { timeout: 30_000, interval: 100 });
      const token = aws.issued[0]!;
      expect((await kubeletAuths())[ecrHost]?.auth).toBe(b64(`AWS:${token.password}`));
      expect(aws.ecrCalls().every((c) => c.status === 200 && c.region === 'us-east-2')).toBe(true);
      // The fleet view sees when this node's token expires (status reads this annotation).
      await vi.waitFor(() => {
        const annotations = (api.get('nodes', undefined, 'node-1')?.['metadata'] as { annotations?: Record<string, string> }).annotations ?? {};
        expect(annotations[ANNOTATION_TOKEN_EXPIRIES]).toBe(`${ecrHost}=${token.expiresAt.toISOString()}`);
      });
      for (const secret of [token.password, TEST_SECRET_ACCESS_KEY]) expect(stderr).not.toContain(secret);
    } finally {
      await aws.stop();
    }
  }, 60_000);
});
