// Issue 24's rate at fleet scale on the real API server: a real `broker` process counts 1,000
// Nodes (one metadata-only watch) while every one of them turns effective, one after the other;
// the Registry's status is applied a handful of times (at most once per 5 s), not 1,000, and ends
// at 1000/1000 with Effective=True.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_GENERATION_ANNOTATION } from '../../src/broker/secret-writer.ts';
import { ANNOTATION_BROKER_GENERATION, ANNOTATION_EFFECTIVE } from '../../src/report/node-annotations.ts';
import { KubeClient } from '../../src/sources/kube-client.ts';
import { ListWatch } from '../../src/sources/kubernetes/list-watch.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';
import { Admin, controlPlane, NS, waitFor } from './helpers.ts';

const info = controlPlane();
const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const BROKER = 'node-registry-credentials-broker';
const FLEET = 1000;
const HOST = 'fleet.example.com';
const name = (i: number): string => `fleet-${String(i).padStart(4, '0')}`;

/** Runs `fn` over `items`, `width` at a time. */
async function pool<T>(items: readonly T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

describe.skipIf(!info)('Registry status at fleet scale on the real API server (1,000 Nodes)', () => {
  let admin: Admin;
  let child: ChildProcess | undefined;
  let log = '';
  const indexes = Array.from({ length: FLEET }, (_, i) => i);
  let others: string[] = [];

  beforeAll(async () => {
    admin = new Admin(info!);
    await pool(indexes, 16, (i) => admin.putNode(name(i)));
    // Other suites' leftover Nodes count too: they join the fleet below (their annotations only).
    others = (await admin.core.listNode()).items.map((n) => n.metadata!.name!).filter((n) => !n.startsWith('fleet-'));
  }, 180_000);
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await admin.deleteLease(NS, BROKER);
    await admin.clean();
    await pool(indexes, 16, (i) => admin.deleteNode(name(i)));
  }, 180_000);

  it('1,000 Nodes turning effective one by one: a handful of status applies, ending at 1000/1000', async () => {
    await admin.putOpaqueSecret(NS, 'fleet-creds', { username: 'u', password: 'fleet-password-0123456789' });
    await admin.putRegistry(NS, HOST, { static: { userSecretRef: { name: 'fleet-creds', key: 'username' }, passwordSecretRef: { name: 'fleet-creds', key: 'password' } } });
    // Count every change of the Registry as a watch sees it (each status apply is one).
    const client = KubeClient.fromKubeConfig(admin.kc);
    const watch = new ListWatch({ client, path: `/apis/admin.okteto.com/v1/namespaces/${NS}/registries`, description: 'registries (test)', rbac: { apiGroup: 'admin.okteto.com', resource: 'registries', namespace: NS } });
    const versions = new Set<string>();
    let latest: { status?: { nodeCredentials?: { effective?: string }; conditions?: { type: string; status: string }[] } } | undefined;
    watch.on('sync', (items) => {
      const o = items.get(`${NS}/${HOST}`) as (typeof latest & { metadata?: { resourceVersion?: string } }) | undefined;
      if (o?.status?.nodeCredentials) versions.add(o.metadata?.resourceVersion ?? '');
      latest = o;
    });
    watch.start();
    const env: NodeJS.ProcessEnv = { ...process.env, NRC_LOG_LEVEL: 'info' };
    delete env['KUBERNETES_SERVICE_HOST'];
    const kubeconfig = (await admin.agent({ name: BROKER })).path;
    child = spawn(NODE, ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'broker', '--kubeconfig', kubeconfig, '--identity', 'broker-fleet', '--lease-duration-seconds', '3', '--renew-deadline-seconds', '2', '--retry-period-seconds', '0.5'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const total = FLEET + others.length;
      // 0 of them, but for a leftover Node that already reports a high counter.
      await waitFor(() => expect(latest?.status?.nodeCredentials?.effective).toMatch(new RegExp(`^\\d+/${total}$`)), { timeout: 40_000, interval: 200 });
      const generation = (await admin.core.readNamespacedSecret({ namespace: NS, name: BROKER })).metadata?.annotations?.[BROKER_GENERATION_ANNOTATION];
      const before = versions.size;
      const t0 = Date.now();
      await pool([...indexes.map(name), ...others], 16, async (n) => {
        const annotations = { [ANNOTATION_BROKER_GENERATION]: generation, [ANNOTATION_EFFECTIVE]: `effective ${new Date().toISOString()} config.json kubelet-read` };
        await client.request('PATCH', `/api/v1/nodes/${n}`, { body: { metadata: { annotations } }, contentType: 'application/merge-patch+json' });
      });
      const patchMs = Date.now() - t0;
      await waitFor(() => {
        expect(latest?.status?.nodeCredentials?.effective).toBe(`${total}/${total}`);
        expect(latest?.status?.conditions?.find((c) => c.type === 'Effective')?.status).toBe('True');
      }, { timeout: 30_000, interval: 200 });
      const applies = versions.size - before;
      console.log(`real API server: ${total} Nodes turned effective in ${patchMs} ms; ${applies} status applies until ${total}/${total}`);
      // At most one per 5 s, plus the first and the last.
      expect(applies).toBeGreaterThan(0);
      expect(applies).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 5_000) + 2);
      expect(log).not.toContain('NRC_E_REGISTRY_STATUS_FAILED');
      expect(log).not.toContain('fleet-password-0123456789');
    } finally {
      await watch.stop();
    }
  }, 240_000);
});
