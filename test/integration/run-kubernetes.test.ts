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
const BROKER_SECRET = 'node-registry-credentials-broker';

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

  it("follows both Secrets onto the host (the broker's wins), reports status, and exits on SIGTERM within a second", async () => {
    api.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1', 'both.example.com': 'fromsecret:s' }));
    // The broker's Secret carries the Registry resources' credentials.
    api.putDockerConfigSecret(NS, BROKER_SECRET, dockerconfig({ 'both.example.com': 'fromregistry:r' }));
    // The node agent no longer reads Registry resources or their Secrets: make that visible.
    api.deny({ verb: '*', resource: 'registries' });
    api.putRegistry(NS, 'other.example.com', { static: { userSecretRef: { name: 'x', key: 'u' }, passwordSecretRef: { name: 'x', key: 'p' } } });
    const c = start();

    await vi.waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u1:p1')), { timeout: 20_000, interval: 100 });
    // Precedence: the broker's Secret (Registry resources) wins over the platform's Secret for the same registry.
    expect((await kubeletAuths())['both.example.com']?.auth).toBe(b64('fromregistry:r'));
    expect(api.count('list', 'registries') + api.count('watch', 'registries')).toBe(0);

    api.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u2:p2', 'new.example.com:5000': 'n:m' }));
    await vi.waitFor(async () => expect((await kubeletAuths())['reg.example.com']?.auth).toBe(b64('u2:p2')), { timeout: 10_000, interval: 50 });
    expect((await kubeletAuths())['new.example.com:5000']?.auth).toBe(b64('n:m'));
    // The broker's Secret still provides both.example.com after the platform's Secret dropped it.
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

  it('an awsIamUser Registry reaches the kubelet through the broker process: only the broker reads the keys and calls AWS', async () => {
    const aws = new FakeAws({ region: 'us-east-2' });
    const url = await aws.start();
    let broker: ChildProcess | undefined;
    let brokerErr = '';
    try {
      const ecrHost = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
      api.putOpaqueSecret(NS, 'ecr-keys', { 'access-key-id': TEST_ACCESS_KEY_ID, 'secret-access-key': TEST_SECRET_ACCESS_KEY });
      api.putRegistry(NS, ecrHost, {
        awsIamUser: { accessKeyIDSecretRef: { name: 'ecr-keys', key: 'access-key-id' }, secretAccessKeySecretRef: { name: 'ecr-keys', key: 'secret-access-key' } },
      });
      api.putDockerConfigSecret(NS, SECRET, dockerconfig({ 'reg.example.com': 'u1:p1' }));
      const env: NodeJS.ProcessEnv = { ...process.env, AWS_ENDPOINT_URL_ECR: url, NRC_LOG_LEVEL: 'info' };
      delete env['KUBERNETES_SERVICE_HOST'];
      broker = spawn(NODE, ['--import', 'tsx', join(REPO, 'src/cli.ts'), 'broker', '--kubeconfig', join(dir, 'kubeconfig'), '--identity', 'broker-0'], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
      broker.stderr?.on('data', (d: Buffer) => (brokerErr += d.toString()));
      start();
      await vi.waitFor(async () => expect((await kubeletAuths())[ecrHost]).toBeDefined(), { timeout: 30_000, interval: 100 });
      const token = aws.issued[0]!;
      expect((await kubeletAuths())[ecrHost]?.auth).toBe(b64(`AWS:${token.password}`));
      expect(aws.ecrCalls().every((c) => c.status === 200 && c.region === 'us-east-2')).toBe(true);
      // The fleet view still sees when this node's token expires (from the broker's expiry annotation).
      await vi.waitFor(() => {
        const annotations = (api.get('nodes', undefined, 'node-1')?.['metadata'] as { annotations?: Record<string, string> }).annotations ?? {};
        expect(annotations[ANNOTATION_TOKEN_EXPIRIES]).toBe(`${ecrHost}=${token.expiresAt.toISOString()}`);
      });
      expect(api.get('leases', NS, 'node-registry-credentials-broker')?.['spec']).toMatchObject({ holderIdentity: 'broker-0' });
      // SIGTERM releases the Lease for the other replica.
      const exited = new Promise<number | null>((resolve) => broker!.once('exit', (code) => resolve(code)));
      broker.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect((api.get('leases', NS, 'node-registry-credentials-broker')?.['spec'] as { holderIdentity?: string }).holderIdentity).toBe('');
      for (const secret of [token.password, TEST_SECRET_ACCESS_KEY]) {
        expect(stderr).not.toContain(secret);
        expect(brokerErr).not.toContain(secret);
      }
    } finally {
      if (broker && broker.exitCode === null && broker.signalCode === null) broker.kill('SIGKILL');
      await aws.stop();
    }
  }, 60_000);
});
