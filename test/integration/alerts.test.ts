// The chart's alerts (charts/node-registry-credentials/files/alerts.yaml, as `helm template`
// renders them into the PrometheusRule) against the agent's REAL /metrics: real agent processes
// (`run`, bundled CLI) on sample hosts produce each condition (a target that cannot be written, a
// registry answering 401, an ECR token under an hour that AWS will not refresh, a file someone
// else keeps rewriting, one node of three with another configuration); the test scrapes each
// agent's /metrics once a second and hands the samples to Prometheus's own rule engine
// (`promtool test rules`, testenv/promtool). Time is compressed: scrape k is minute k of the
// promtool series, so a 10-minute `for:` needs a dozen scrapes. Each alert must fire where its
// condition is produced, and no alert, firing or pending, in the healthy fleet.
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHART } from '../../scripts/manifests.ts';
import { FakeAws, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../support/fake-aws.ts';
import { makePki, type Pki } from '../support/e2e-pki.ts';
import { goTool, skipWithout } from '../support/go-tools.ts';
import { makeSampleHost, spawnCli, type SampleHost } from '../support/reliability-host.ts';

const HELM = goTool('helm');
const PROMTOOL = goTool('promtool');
const SCRAPES = 14;
const ECR_HOST = '123456789012.dkr.ecr.us-east-2.amazonaws.com';
const USER = 'robot';
const RIGHT = 'right-Pa55word-xyz';

type Labels = Record<string, string>;
interface Sample { readonly name: string; readonly labels: Labels; readonly value: string }

/** One agent of the fleet: its labels as Prometheus's scrape would add them, its samples per scrape. */
interface Agent {
  readonly pod: string;
  readonly host: SampleHost;
  readonly port: number;
  readonly child: ChildProcess;
  readonly scrapes: Sample[][];
}

let work: string;
let pki: Pki;
let registry: Server;
let registryHost: string;
const fakes: FakeAws[] = [];
const agents: Agent[] = [];
let rulesFile: string;
let metricNames: Set<string>;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Parses the Prometheus text format (the agent's own output) into samples. */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable /metrics line: ${line}`);
    const labels: Labels = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    out.push({ name: m[1]!, labels, value: m[3]! });
  }
  return out;
}

const dockerconfig = (auths: Record<string, string>): string =>
  JSON.stringify({ auths: Object.fromEntries(Object.entries(auths).map(([k, pw]) => [k, { auth: Buffer.from(`${USER}:${pw}`).toString('base64') }])) });

async function startAgent(pod: string, o: { auths: Record<string, string>; registryToml?: string; args?: string[]; env?: NodeJS.ProcessEnv; prepare?: (h: SampleHost) => void }): Promise<Agent> {
  const host = makeSampleHost({ base: work });
  o.prepare?.(host);
  const input = join(host.inputs, 'dockerconfig.json');
  writeFileSync(input, dockerconfig(o.auths));
  const toml = join(host.inputs, 'registry.toml');
  writeFileSync(toml, o.registryToml ?? '');
  const port = await freePort();
  const child = spawnCli(['run', '--host-root', host.root, '--dockerconfig', input, '--registry-config', toml, '--listen-address', `127.0.0.1:${port}`, '--resync-seconds', '1', '--debounce-ms', '0', ...(o.args ?? [])], { env: { NRC_LOG_LEVEL: 'warn', ...o.env } });
  child.stdout!.resume();
  child.stderr!.resume();
  const agent: Agent = { pod, host, port, child, scrapes: [] };
  agents.push(agent);
  return agent;
}

async function metrics(a: Agent): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${a.port}/metrics`);
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const target = (a: Agent): Labels => ({ job: 'node-registry-credentials', namespace: 'okteto', pod: a.pod, node: `node-${a.pod}`, instance: `10.0.0.1:${a.port}` });
const series = (name: string, labels: Labels): string =>
  `${name}{${Object.entries(labels).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;

/** `promtool test rules` over the scrapes of `fleet`: at the last minute exactly `firing` fire; `quiet`: nothing even pending at any minute. */
function promtool(name: string, fleet: Agent[], firing: { alert: string; labels: Labels }[], quiet = false): { ok: boolean; out: string } {
  const input = new Map<string, string[]>();
  fleet.forEach((a) => {
    a.scrapes.forEach((samples, k) => {
      for (const s of samples) {
        if (!metricNames.has(s.name)) continue;
        const key = series(s.name, { ...s.labels, ...target(a) });
        const values = input.get(key) ?? Array<string>(SCRAPES).fill('_');
        values[k] = s.value;
        input.set(key, values);
      }
    });
  });
  const severity = new Map<string, string>();
  for (const g of rules().groups) for (const r of g.rules) severity.set(r.alert, r.labels['severity'] ?? '');
  const last = SCRAPES - 1;
  const expr_tests = [
    {
      expr: 'ALERTS{alertstate="firing"}',
      eval_time: `${last}m`,
      exp_samples: firing.map((f) => ({ labels: series('ALERTS', { alertname: f.alert, alertstate: 'firing', severity: severity.get(f.alert)!, ...f.labels }), value: 1 })),
    },
    ...(quiet ? Array.from({ length: SCRAPES }, (_, m) => ({ expr: 'ALERTS', eval_time: `${m}m`, exp_samples: [] })) : []),
  ];
  const file = join(work, `${name}.test.json`);
  writeFileSync(file, JSON.stringify({
    rule_files: [rulesFile],
    evaluation_interval: '1m',
    tests: [{ name, interval: '1m', input_series: [...input].map(([s, v]) => ({ series: s, values: v.join(' ') })), promql_expr_test: expr_tests }],
  }, null, 1));
  const r = spawnSync(PROMTOOL, ['test', 'rules', file], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

interface Rule { alert: string; expr: string; labels: Labels }
let rulesCache: { groups: { rules: Rule[] }[] } | undefined;
function rules(): { groups: { rules: Rule[] }[] } {
  return (rulesCache ??= (() => {
    const out = execFileSync(HELM, ['template', 'x', CHART, '--namespace', 'okteto', '--set', 'metrics.prometheusRule.enabled=true', '--show-only', 'templates/prometheusrule.yaml'], { encoding: 'utf8' });
    return (loadAllYaml(out)[0] as { spec: { groups: { rules: Rule[] }[] } }).spec;
  })());
}

const agentNamed = (pod: string): Agent => agents.find((a) => a.pod === pod)!;
const fleet = (...pods: string[]): Agent[] => pods.map(agentNamed);

describe.skipIf(skipWithout(['helm', 'promtool']))('the chart\'s alerts on the agent\'s real /metrics (promtool)', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nrc-alerts-'));
    chmodSync(work, 0o755);
    rulesFile = join(work, 'rules.json');
    writeFileSync(rulesFile, JSON.stringify(rules()));
    metricNames = new Set(rules().groups.flatMap((g) => g.rules.flatMap((r) => [...r.expr.matchAll(/\bnrc_[a-z_]+/g)].map((m) => m[0]))));

    // A registry over HTTPS (private CA) that accepts only RIGHT.
    pki = await makePki(work);
    registry = createHttpsServer({ key: readFileSync(pki.serverKeyPath), cert: readFileSync(pki.serverCertPath) }, (req, res) => {
      const ok = req.headers.authorization === `Basic ${Buffer.from(`${USER}:${RIGHT}`).toString('base64')}`;
      res.writeHead(ok ? 200 : 401, ok ? {} : { 'www-authenticate': 'Basic realm="registry"' }).end();
    });
    await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
    registryHost = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
    const registryToml = `[registry.${JSON.stringify(registryHost)}]\nca = ${JSON.stringify(pki.caPem)}\n`;

    // ECR through the AWS SDK's default chain (the node's identity) against the local fake AWS.
    const ecr = async (lifetimeMs: number): Promise<{ fake: FakeAws; args: string[]; env: NodeJS.ProcessEnv }> => {
      const fake = new FakeAws({ region: 'us-east-2', tokenLifetimeMs: lifetimeMs });
      fakes.push(fake);
      const url = await fake.start();
      return {
        fake,
        args: ['--ecr-default-chain', ECR_HOST, '--ecr-fleet-size', '1'],
        env: { AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY, AWS_REGION: 'us-east-2', AWS_ENDPOINT_URL_ECR: url, AWS_EC2_METADATA_DISABLED: 'true' },
      };
    };
    const healthyEcr = await ecr(12 * 3600_000);
    const expiringEcr = await ecr(50 * 60_000);

    const healthy = { auths: { [registryHost]: RIGHT, 'registry.example.com': 'p1' }, registryToml, args: ['--check-credentials'] };
    // The healthy fleet: three nodes with one configuration, the credential valid, a fresh ECR token.
    await startAgent('healthy-a', healthy);
    await startAgent('healthy-b', healthy);
    await startAgent('healthy-c', healthy);
    // A fresh ECR token (per node: its own token, so its own configuration hash).
    await startAgent('healthy-ecr', { ...healthy, args: [...healthy.args, ...healthyEcr.args], env: healthyEcr.env });
    // Its kubelet config.json is a directory: every apply fails (NRC_E_TARGET_NOT_FILE).
    await startAgent('apply-failing', {
      auths: { 'registry.example.com': 'p1' },
      prepare: (h) => {
        rmSync(h.real('var/lib/kubelet/config.json'));
        mkdirSync(h.real('var/lib/kubelet/config.json'));
      },
    });
    await startAgent('rejected', { ...healthy, auths: { [registryHost]: 'wrong-password' } });
    await startAgent('ecr-expiring', { auths: {}, args: expiringEcr.args, env: expiringEcr.env });
    await startAgent('drift', { auths: { 'registry.example.com': 'p1' } });
    // Two nodes agree, the third applied another configuration.
    await startAgent('fleet-a', { auths: { 'registry.example.com': 'p1' } });
    await startAgent('fleet-b', { auths: { 'registry.example.com': 'p1' } });
    await startAgent('fleet-odd', { auths: { 'registry.example.com': 'p2' } });

    await until(async () => (await Promise.all(agents.map(metrics))).every((m) => m !== undefined), 'every agent to serve /metrics', 60_000);
    await until(async () => (await metrics(agentNamed('healthy-ecr')))!.includes('nrc_ecr_token_expiry_seconds{'), 'the healthy ECR token', 60_000);
    await until(async () => (await metrics(agentNamed('ecr-expiring')))!.includes('nrc_ecr_token_expiry_seconds{'), 'the short ECR token', 60_000);
    // From now on AWS refuses every refresh of the short token.
    expiringEcr.fake.failEcr(...Array<'5xx'>(1000).fill('5xx'));
    await until(async () => /nrc_credential_check_status\{[^}]*status="rejected"\} 1/.test((await metrics(agentNamed('rejected')))!), 'the rejected check', 60_000);
    await until(async () => /nrc_credential_check_status\{[^}]*status="valid"\} 1/.test((await metrics(agentNamed('healthy-b')))!), 'the valid check', 60_000);
    await until(async () => (await metrics(agentNamed('fleet-odd')))!.includes('nrc_applied_configuration_info{'), 'the odd node to apply', 60_000);

    // The kubelet's lookups read each node's config.json (a plain read, which moves its access
    // time): from then on the written configuration is effective, not pending behind the
    // kubelet's 5-minute cache. They go on at every scrape, as pulls do.
    const kubeletReads = (): void => {
      for (const a of agents) {
        try {
          readFileSync(a.host.real('var/lib/kubelet/config.json'));
        } catch {
          // apply-failing: a directory there.
        }
      }
    };
    await until(async () => {
      kubeletReads();
      return (await Promise.all(agents.filter((a) => a.pod !== 'apply-failing').map(metrics))).every((m) => /nrc_configuration_effective\{[^}]*\} 1/.test(m ?? ''));
    }, 'the written configurations to be effective', 60_000);
    // Someone else rewrites the drift node's kubelet config.json every other scrape.
    const drifted = agentNamed('drift').host.real('var/lib/kubelet/config.json');
    for (let k = 0; k < SCRAPES; k++) {
      if (k % 2 === 1) writeFileSync(drifted, JSON.stringify({ auths: { 'other.example.com': { auth: Buffer.from('a:b').toString('base64') } } }));
      kubeletReads();
      const texts = await Promise.all(agents.map(metrics));
      agents.forEach((a, i) => a.scrapes.push(parseExposition(texts[i] ?? '')));
      await new Promise((r) => setTimeout(r, 1000));
    }
  }, 240_000);

  afterAll(async () => {
    for (const a of agents) a.child.kill('SIGTERM');
    await Promise.all(fakes.map((f) => f.stop()));
    registry?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the rules pass promtool check rules', () => {
    const r = spawnSync(PROMTOOL, ['check', 'rules', rulesFile], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('SUCCESS: 6 rules found');
    expect(r.status).toBe(0);
  });

  it('the agent exports every metric the alerts use', () => {
    const seen = new Set(agents.flatMap((a) => a.scrapes.flat().map((s) => s.name)));
    expect([...metricNames].filter((n) => !seen.has(n))).toEqual([]);
  });

  it('a healthy fleet (one configuration, credentials accepted) raises no alert, not even pending', () => {
    const r = promtool('healthy', fleet('healthy-a', 'healthy-b', 'healthy-c'), [], true);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok, r.out).toBe(true);
  });

  it('a healthy node with a fresh ECR token raises no alert, not even pending', () => {
    const r = promtool('healthy-ecr', fleet('healthy-ecr'), [], true);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok, r.out).toBe(true);
  });

  const node = (pod: string): Labels => ({ namespace: 'okteto', pod, node: `node-${pod}` });
  it('NodeRegistryCredentialsApplyFailing and NodeRegistryCredentialsNotEffective fire for the node whose writes fail, and no other alert does', () => {
    const r = promtool('apply-failing', [agentNamed('apply-failing')], [
      { alert: 'NodeRegistryCredentialsApplyFailing', labels: node('apply-failing') },
      { alert: 'NodeRegistryCredentialsNotEffective', labels: node('apply-failing') },
    ]);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok, r.out).toBe(true);
  });

  it.each([
    ['NodeRegistryCredentialsCredentialRejected', 'rejected', (): Labels => ({ ...node('rejected'), registry: registryHost })],
    ['NodeRegistryCredentialsEcrTokenExpiring', 'ecr-expiring', (): Labels => ({ ...node('ecr-expiring'), registry: ECR_HOST })],
    ['NodeRegistryCredentialsDriftRepairs', 'drift', (): Labels => ({ ...target(agentNamed('drift')) })],
  ] as const)('%s fires for the node that has the condition, and no other alert does', (alert, pod, labels) => {
    // Alone: beside the healthy fleet its other configuration would (rightly) differ too.
    const r = promtool(pod, [agentNamed(pod)], [{ alert, labels: labels() }]);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok, r.out).toBe(true);
  });

  it('NodeRegistryCredentialsConfigurationDiffers fires for the one node of three whose applied hash differs', () => {
    const odd = agentNamed('fleet-odd').scrapes.at(-1)!.find((s) => s.name === 'nrc_applied_configuration_info')!.labels['hash']!;
    const r = promtool('fleet', fleet('fleet-a', 'fleet-b', 'fleet-odd'), [{ alert: 'NodeRegistryCredentialsConfigurationDiffers', labels: { ...node('fleet-odd'), hash: odd } }]);
    expect(r.out).toContain('SUCCESS');
    expect(r.ok, r.out).toBe(true);
  });
});
