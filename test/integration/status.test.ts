// `status` against the in-process API server: one line per node from the annotations the
// agents write (src/report/node-status.ts), with the nodes that need attention marked.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ANNOTATION_TOKEN_EXPIRIES, statusCommand, type FleetStatus } from '../../src/commands/status.ts';
import { ANNOTATION_AT, ANNOTATION_ERRORS, ANNOTATION_HASH } from '../../src/report/node-status.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';

const NOW = new Date('2030-01-01T12:00:00Z');
const minutesAgo = (m: number): string => new Date(NOW.getTime() - m * 60_000).toISOString();
const inMinutes = (m: number): string => new Date(NOW.getTime() + m * 60_000).toISOString();

let api: FakeApiServer;
let dir: string;
let kubeconfig: string;

beforeAll(async () => {
  api = new FakeApiServer();
  await api.start();
  dir = await mkdtemp(join(tmpdir(), 'nrc-status-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfigYaml());
});

afterAll(async () => {
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

async function status(...extra: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const flags: Record<string, string> = { kubeconfig, 'behind-after': '10m', 'expiry-warning': '1h', output: 'text' };
  for (let i = 0; i < extra.length; i += 2) flags[extra[i]!.replace(/^--/, '')] = extra[i + 1]!;
  const code = await statusCommand(flags, { out: (t) => (out += t), err: (t) => (err += t) }, () => NOW);
  return { code, out, err };
}

describe('status: the fleet view', () => {
  beforeEach(() => {
    api.delete('nodes', undefined, 'node-c');
    api.delete('nodes', undefined, 'node-d');
    api.putNode('node-a', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(3) });
    api.putNode('node-b', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(2) });
  });

  test('every node on the newest configuration: one line each, exit 0, nothing marked', async () => {
    api.putNode('node-c', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(1), [ANNOTATION_TOKEN_EXPIRIES]: `123456789012.dkr.ecr.us-east-1.amazonaws.com=${inMinutes(600)}` });
    const r = await status();
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/NODE\s+STATE\s+HASH\s+APPLIED\s+LAST ERRORS\s+TOKENS/);
    expect(lines.filter((l) => /node-[abc]/.test(l))).toHaveLength(3);
    expect(r.out).not.toMatch(/^!/m);
    expect(r.out).toMatch(/node-c\s+ok\s+aaaa1111aaaa1111\s+1m ago\s+-\s+1 \(next 10h\)/);
    expect(r.out).toContain('3 node(s): 3 in step (newest configuration aaaa1111aaaa1111)');
  });

  test('marks a node behind the newest configuration past --behind-after, a failing node, and one not reporting; exit 2', async () => {
    api.putNode('node-c', { [ANNOTATION_HASH]: 'bbbb2222bbbb2222', [ANNOTATION_AT]: minutesAgo(30) });
    api.putNode('node-a', { [ANNOTATION_HASH]: 'cccc3333cccc3333', [ANNOTATION_AT]: minutesAgo(20) });
    api.putNode('node-b', { [ANNOTATION_HASH]: 'cccc3333cccc3333', [ANNOTATION_AT]: minutesAgo(15), [ANNOTATION_ERRORS]: 'NRC_E_CREDENTIAL_REJECTED,NRC_E_WRITE_FAILED' });
    api.putNode('node-d', {});
    const r = await status();
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^ {2}node-a\s+ok\s+cccc3333cccc3333/m);
    expect(r.out).toMatch(/^! node-b\s+failing\s+cccc3333cccc3333\s+15m ago\s+NRC_E_CREDENTIAL_REJECTED,NRC_E_WRITE_FAILED/m);
    expect(r.out).toMatch(/^! node-c\s+behind\s+bbbb2222bbbb2222\s+30m ago/m);
    expect(r.out).toMatch(/^! node-d\s+unreported\s+-/m);
    expect(r.out).toContain('! node-c: configuration bbbb2222bbbb2222 differs from the newest cccc3333cccc3333, applied 15m ago');
    expect(r.out).toContain('! node-b: NRC_E_CREDENTIAL_REJECTED (see docs/errors.md)');
  });

  test('a node still on the old configuration shortly after a change is "updating", not marked', async () => {
    api.putNode('node-c', { [ANNOTATION_HASH]: 'dddd4444dddd4444', [ANNOTATION_AT]: minutesAgo(1) });
    const r = await status('--output', 'json');
    const fleet = JSON.parse(r.out) as FleetStatus;
    expect(fleet.newestHash).toBe('dddd4444dddd4444');
    const byName = Object.fromEntries(fleet.nodes.map((n) => [n.name, n]));
    expect(byName['node-a']).toMatchObject({ state: 'updating', attention: false, hash: 'aaaa1111aaaa1111' });
    expect(byName['node-c']).toMatchObject({ state: 'ok', attention: false });
    // Ten minutes later the same picture is a problem.
    const later = await statusCommand({ kubeconfig, 'behind-after': '10m', 'expiry-warning': '1h', output: 'json' }, { out: () => undefined, err: () => undefined }, () => new Date(NOW.getTime() + 11 * 60_000));
    expect(later).toBe(2);
  });

  test('--output json reports token expiries, expiring and expired tokens', async () => {
    const ecr = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
    api.putNode('node-c', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(1), [ANNOTATION_TOKEN_EXPIRIES]: `${ecr}=${inMinutes(20)}` });
    api.putNode('node-d', { [ANNOTATION_HASH]: 'aaaa1111aaaa1111', [ANNOTATION_AT]: minutesAgo(1), [ANNOTATION_TOKEN_EXPIRIES]: `${ecr}=${minutesAgo(5)}` });
    const r = await status('--output', 'json');
    expect(r.code).toBe(2);
    const fleet = JSON.parse(r.out) as FleetStatus;
    const byName = Object.fromEntries(fleet.nodes.map((n) => [n.name, n]));
    expect(byName['node-c']).toMatchObject({ state: 'expiring', attention: true, tokenExpiries: [{ registry: ecr, expiresAt: inMinutes(20) }] });
    expect(byName['node-c']!.notes).toEqual([`token for ${ecr} expires in 20m`]);
    expect(byName['node-d']).toMatchObject({ state: 'failing', notes: [`token for ${ecr} expired 5m ago`] });
    expect(fleet.counts).toMatchObject({ ok: 2, expiring: 1, failing: 1 });
  });

  test('an API server that refuses to list nodes gives a coded error and exit 1', async () => {
    api.deny({ verb: 'list', resource: 'nodes' });
    try {
      const r = await status();
      expect(r.code).toBe(1);
      expect(r.err).toContain('NRC_E_K8S_FORBIDDEN');
      expect(r.err).toContain('list nodes');
    } finally {
      api.allowAll();
    }
  });

  test('an unreachable API server gives NRC_E_K8S_UNAVAILABLE and exit 1', async () => {
    const other = new FakeApiServer();
    await other.start();
    const file = join(dir, 'kubeconfig-down');
    await writeFile(file, other.kubeconfigYaml());
    await other.stop();
    const r = await status('--kubeconfig', file);
    expect(r.code).toBe(1);
    expect(r.err).toContain('NRC_E_K8S_UNAVAILABLE');
  });
});
