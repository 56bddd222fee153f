// `status` reading Nodes from the real API server: one line per node from the annotations the
// agents write (src/report/node-status.ts). The operator runs it with their own credential
// (here the admin's); the agent's identity may not list Nodes.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ANNOTATION_TOKEN_EXPIRIES, statusCommand, type FleetStatus } from '../../src/commands/status.ts';
import { ANNOTATION_AT, ANNOTATION_ERRORS, ANNOTATION_HASH } from '../../src/report/node-status.ts';
import { tokenKubeconfigYaml } from '../support/control-plane.ts';
import { Admin, controlPlane } from './helpers.ts';

const NOW = new Date('2030-01-01T12:00:00Z');
const minutesAgo = (m: number): string => new Date(NOW.getTime() - m * 60_000).toISOString();
const inMinutes = (m: number): string => new Date(NOW.getTime() + m * 60_000).toISOString();
const info = controlPlane();

describe.skipIf(!info)('status: the fleet view from the real API server', () => {
  let admin: Admin;

  async function status(...extra: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const flags: Record<string, string> = { kubeconfig: info!.adminKubeconfig, 'behind-after': '10m', 'expiry-warning': '1h', output: 'text' };
    for (let i = 0; i < extra.length; i += 2) flags[extra[i]!.replace(/^--/, '')] = extra[i + 1]!;
    const code = await statusCommand(flags, { out: (t) => (out += t), err: (t) => (err += t) }, () => NOW);
    return { code, out, err };
  }

  beforeAll(async () => {
    admin = new Admin(info!);
    // Only this suite's nodes (the files of this project run one at a time and remove theirs).
    for (const n of (await admin.core.listNode()).items) await admin.deleteNode(n.metadata!.name!);
  });
  beforeEach(async () => {
    await admin.deleteNode('node-c');
    await admin.deleteNode('node-d');
    await admin.putNode('node-a', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(3) });
    await admin.putNode('node-b', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(2) });
  });
  afterAll(async () => {
    for (const n of ['node-a', 'node-b', 'node-c', 'node-d']) await admin.deleteNode(n);
  });

  test('every node on the newest configuration: one line each, exit 0, nothing marked', async () => {
    await admin.putNode('node-c', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(1), [ANNOTATION_TOKEN_EXPIRIES]: `123456789012.dkr.ecr.us-east-1.amazonaws.com=${inMinutes(600)}` });
    const r = await status();
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n')[0]).toMatch(/NODE\s+STATE\s+HASH\s+APPLIED\s+LAST ERRORS\s+TOKENS/);
    expect(r.out.split('\n').filter((l) => /node-[abc]/.test(l))).toHaveLength(3);
    expect(r.out).not.toMatch(/^!/m);
    expect(r.out).toMatch(/node-c\s+ok\s+aaaa1111aaaa1111\s+1m ago\s+-\s+1 \(next 10h\)/);
    expect(r.out).toContain('3 node(s): 3 in step (newest configuration aaaa1111aaaa1111)');
  });

  test('marks a node behind, a failing node and one not reporting; exit 2', async () => {
    await admin.putNode('node-c', { [ANNOTATION_HASH]: 'bbbb2222bbbb2222', [ANNOTATION_AT]: minutesAgo(30) });
    await admin.putNode('node-a', { [ANNOTATION_HASH]: 'cccc3333cccc3333', [ANNOTATION_AT]: minutesAgo(20) });
    await admin.putNode('node-b', { [ANNOTATION_HASH]: 'cccc3333cccc3333', [ANNOTATION_AT]: minutesAgo(15), [ANNOTATION_ERRORS]: 'NRC_E_CREDENTIAL_REJECTED,NRC_E_WRITE_FAILED' });
    await admin.putNode('node-d', {});
    const r = await status();
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^ {2}node-a\s+ok\s+cccc3333cccc3333/m);
    expect(r.out).toMatch(/^! node-b\s+failing\s+cccc3333cccc3333\s+15m ago\s+NRC_E_CREDENTIAL_REJECTED,NRC_E_WRITE_FAILED/m);
    expect(r.out).toMatch(/^! node-c\s+behind\s+bbbb2222bbbb2222\s+30m ago/m);
    expect(r.out).toMatch(/^! node-d\s+unreported\s+-/m);
  });

  test('--output json reports token expiries, expiring and expired tokens', async () => {
    const ecr = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
    await admin.putNode('node-c', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(1), [ANNOTATION_TOKEN_EXPIRIES]: `${ecr}=${inMinutes(20)}` });
    await admin.putNode('node-d', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(1), [ANNOTATION_TOKEN_EXPIRIES]: `${ecr}=${minutesAgo(5)}` });
    const r = await status('--output', 'json');
    expect(r.code).toBe(2);
    const fleet = JSON.parse(r.out) as FleetStatus;
    const byName = Object.fromEntries(fleet.nodes.map((n) => [n.name, n]));
    expect(byName['node-c']).toMatchObject({ state: 'expiring', attention: true, tokenExpiries: [{ registry: ecr, expiresAt: inMinutes(20) }] });
    expect(byName['node-d']).toMatchObject({ state: 'failing', notes: [`token for ${ecr} expired 5m ago`] });
    expect(fleet.counts).toMatchObject({ ok: 2, expiring: 1, failing: 1 });
  });

  test('the agent\'s own identity may not list Nodes: a coded 403 error and exit 1', async () => {
    const { path } = await admin.agent();
    const r = await status('--kubeconfig', path);
    expect(r.code).toBe(1);
    expect(r.err).toContain('NRC_E_K8S_FORBIDDEN');
    expect(r.err).toContain('list nodes');
  });

  test('an unreachable API server gives NRC_E_K8S_UNAVAILABLE and exit 1', async () => {
    const file = join(info!.dir, 'kubeconfig-down');
    await writeFile(file, tokenKubeconfigYaml('https://127.0.0.1:1', info!.caFile, 'x'));
    const r = await status('--kubeconfig', file);
    expect(r.code).toBe(1);
    expect(r.err).toContain('NRC_E_K8S_UNAVAILABLE');
  });
});
