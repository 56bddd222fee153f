// The Helm chart (charts/node-registry-credentials) through the real helm CLI (testenv/helm):
// lint, the schema refusing bad values at install, `helm template` for the main value
// combinations held to the same safety rules as daemonset/, and daemonset/ being exactly what
// the chart renders at its defaults (scripts/manifests.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRegistryConfig } from '../../src/sources/registry-config.ts';
import { CHART, REPO, generate, helmTemplate, stale } from '../../scripts/manifests.ts';
import { goTool, skipWithout } from '../support/go-tools.ts';
import { expectSafeDaemonSet, expectValidObjects, ofKind, type Obj } from '../support/manifest-safety.ts';

const HELM = goTool('helm');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `node-registry-credentials:${VERSION}`;

/** `--set`-style values as one JSON values file on stdin (`-f -`). */
function render(values: Obj = {}, args: string[] = []): Obj[] {
  const out = execFileSync(HELM, ['template', 'node-registry-credentials', CHART, '--namespace', 'okteto', '-f', '-', ...args], { input: JSON.stringify(values), encoding: 'utf8' });
  return (loadAllYaml(out) as Obj[]).filter(Boolean);
}
function refused(values: Obj): string {
  const r = spawnSync(HELM, ['template', 'node-registry-credentials', CHART, '--namespace', 'okteto', '-f', '-'], { input: JSON.stringify(values), encoding: 'utf8' });
  expect(r.status, 'helm template should refuse these values').not.toBe(0);
  return r.stderr;
}
const named = (objs: Obj[], kind: string, name: string): Obj | undefined => ofKind(objs, kind).find((o) => o['metadata'].name === name);
const hooks = (objs: Obj[]): Obj[] => objs.filter((o) => o['metadata'].annotations?.['helm.sh/hook']);
const agentPod = (objs: Obj[]): Obj => named(objs, 'DaemonSet', 'node-registry-credentials')!['spec'].template.spec;
const env = (c: Obj): Record<string, unknown> => Object.fromEntries(c['env'].map((e: Obj) => [e['name'], e['value'] ?? e['valueFrom']]));

const COMBINATIONS: [string, Obj][] = [
  ['defaults', {}],
  ['no broker', { broker: { enabled: false } }],
  ['agent off (the platform key false)', { daemonset: { configurePrivateRegistriesInNodes: { enabled: false } } }],
  ['monitoring (PodMonitor, rules, dashboard)', { metrics: { podMonitor: { enabled: true }, prometheusRule: { enabled: true }, dashboard: { enabled: true } } }],
  ['ServiceMonitor', { metrics: { serviceMonitor: { enabled: true } } }],
  ['registries', { registries: { 'registry.example.com:5000': { ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', authHeader: true }, 'mirror.local': { skipVerify: true } } }],
  ['no uninstall cleanup', { cleanupOnUninstall: { enabled: false } }],
];

describe.skipIf(skipWithout(['helm']))('the Helm chart', () => {
  it('passes helm lint --strict, at its defaults and with every optional part on', () => {
    for (const set of [[], ['--set', 'metrics.podMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true,agent.kubeletCredentials=provider,agent.namespaceScoping.enabled=true']]) {
      const r = spawnSync(HELM, ['lint', '--strict', CHART, '--namespace', 'okteto', ...set], { encoding: 'utf8' });
      expect(r.stdout + r.stderr).toContain('0 chart(s) failed');
      expect(r.status).toBe(0);
    }
  });

  it('is versioned with the app (package.json)', () => {
    const chart = readFileSync(join(CHART, 'Chart.yaml'), 'utf8');
    expect(chart).toMatch(new RegExp(`^version: ${VERSION.replaceAll('.', '\\.')}$`, 'm'));
    expect(chart).toMatch(new RegExp(`^appVersion: "${VERSION.replaceAll('.', '\\.')}"$`, 'm'));
  });

  it('daemonset/ is what the chart renders at its defaults (npm run manifests)', () => {
    const files = generate(helmTemplate(HELM));
    expect(stale(files), 'run `npm run manifests`').toEqual([]);
    // The kustomization lists exactly the generated objects.
    const kustomization = readFileSync(join(REPO, 'daemonset/base/kustomization.yaml'), 'utf8');
    const listed = [...kustomization.matchAll(/^ {2}- (\S+\.yaml)$/gm)].map((m) => `daemonset/base/${m[1]}`).sort();
    expect(listed).toEqual([...files.keys()].filter((p) => p.startsWith('daemonset/base/') && p.endsWith('.yaml')).sort());
  });

  describe.each(COMBINATIONS)('helm template: %s', (_name, values) => {
    // Rendered in beforeAll: a describe body runs even when the suite is skipped (no helm built).
    let objs: Obj[] = [];
    beforeAll(() => {
      objs = render(values);
    });
    it('renders objects that are valid against the Kubernetes schemas, all in the release namespace', () => {
      expectValidObjects(objs, 'okteto');
    });
    it('keeps every DaemonSet (agent, uninstall cleanup) within the safety rules', () => {
      for (const ds of ofKind(objs, 'DaemonSet')) expectSafeDaemonSet(ds, { image: IMAGE });
    });
    it('grants the agent exactly docs/agent-rights.json-level rights: two Secrets by name, patch Nodes, create Events', () => {
      const role = named(objs, 'Role', 'node-registry-credentials');
      if (!named(objs, 'DaemonSet', 'node-registry-credentials')) return expect(role).toBeUndefined();
      expect(role!['rules']).toEqual([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['okteto-dockerconfig-static', 'node-registry-credentials-broker'], verbs: ['get', 'list', 'watch'] }]);
      expect(named(objs, 'ClusterRole', 'node-registry-credentials')!['rules']).toEqual([
        { apiGroups: [''], resources: ['nodes'], verbs: ['patch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      ]);
    });
  });

  it('the node agent: image, resources, tolerations, nodeSelector and priority from values', () => {
    const objs = render({
      image: { repository: 'registry.example.com/mirror/nrc', tag: '9.9.9', pullPolicy: 'Always' },
      agent: { resources: { requests: { cpu: '20m', memory: '80Mi' }, limits: { memory: '300Mi' } }, tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }], nodeSelector: { 'kubernetes.io/os': 'linux' }, priorityClassName: 'node-agents' },
    });
    for (const ds of ofKind(objs, 'DaemonSet')) {
      expectSafeDaemonSet(ds, { image: 'registry.example.com/mirror/nrc:9.9.9', tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }], priorityClassName: 'node-agents' });
      expect(ds['spec'].template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    }
    const c = agentPod(objs).containers[0];
    expect(c.imagePullPolicy).toBe('Always');
    // Helm merges maps into the defaults: limits.cpu stays 200m.
    expect(c.resources).toEqual({ requests: { cpu: '20m', memory: '80Mi' }, limits: { cpu: '200m', memory: '300Mi' } });
    expect(named(objs, 'Deployment', 'node-registry-credentials-broker')!['spec'].template.spec.containers[0].image).toBe('registry.example.com/mirror/nrc:9.9.9');
  });

  it('agent.hostRoot (a node simulated under a directory) moves every host directory of agent and cleanup under it, mounted where the agent expects the node\'s', () => {
    const objs = render({ agent: { hostRoot: '/srv/node-1/root/' } });
    for (const ds of ofKind(objs, 'DaemonSet')) {
      const pod = ds['spec'].template.spec;
      const host = new Map<string, string>((pod.volumes as Obj[]).filter((v) => v['hostPath']).map((v) => [v['name'], v['hostPath'].path]));
      expect([...host.values()].sort()).toEqual(['/srv/node-1/root/etc', '/srv/node-1/root/root', '/srv/node-1/root/var/lib/kubelet', '/srv/node-1/root/var/lib/node-registry-credentials']);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        for (const m of c.volumeMounts ?? []) if (host.has(m.name)) expect(m.mountPath).toBe(`/host${host.get(m.name)!.slice('/srv/node-1/root'.length)}`);
      }
    }
    expect(refused({ agent: { hostRoot: 'relative/dir' } })).toMatch(/\/agent\/hostRoot/);
  });

  it('credential Secret names reach the agent, its Role and the broker', () => {
    const objs = render({ credentials: { secretName: 'my-dockerconfig', brokerSecretName: 'my-broker' } });
    expect(env(agentPod(objs).containers[0])).toMatchObject({ NRC_SECRET_NAME: 'my-dockerconfig', NRC_BROKER_SECRET_NAME: 'my-broker' });
    expect(named(objs, 'Role', 'node-registry-credentials')!['rules'][0].resourceNames).toEqual(['my-dockerconfig', 'my-broker']);
    const broker = named(objs, 'Deployment', 'node-registry-credentials-broker')!;
    expect(env(broker['spec'].template.spec.containers[0])).toMatchObject({ NRC_BROKER_SECRET_NAME: 'my-broker' });
    const update = (named(objs, 'Role', 'node-registry-credentials-broker')!['rules'] as Obj[]).find((r) => r['verbs'].includes('update') && r['resources'][0] === 'secrets');
    expect(update!['resourceNames']).toEqual(['my-broker']);
    // Only the platform's Secret: the Role names only it.
    const platformOnly = render({ credentials: { brokerSecretName: '' }, broker: { enabled: false } });
    expect(named(platformOnly, 'Role', 'node-registry-credentials')!['rules'][0].resourceNames).toEqual(['okteto-dockerconfig-static']);
  });

  it('broker: on with its replicas, or off with nothing of it left', () => {
    expect(named(render({ broker: { replicas: 3 } }), 'Deployment', 'node-registry-credentials-broker')!['spec'].replicas).toBe(3);
    const off = render({ broker: { enabled: false } });
    expect(off.filter((o) => o['metadata'].name === 'node-registry-credentials-broker')).toEqual([]);
    expect(named(off, 'DaemonSet', 'node-registry-credentials')).toBeDefined();
  });

  it('per-registry host options become a registry config the agent parses, and a change rolls the agents', () => {
    const ca = readFileSync(join(REPO, 'examples/local/ca.pem'), 'utf8');
    const objs = render({ registries: { 'registry.example.com:5000': { ca, authHeader: true }, 'mirror.local': { skipVerify: true } } });
    const toml = named(objs, 'ConfigMap', 'node-registry-credentials-registries')!['data']['registry.toml'];
    const parsed = parseRegistryConfig(toml);
    expect(parsed.errors).toEqual([]);
    const hosts = Object.fromEntries([...parsed.hosts.values()].map((h) => [h.host, h]));
    expect(hosts['registry.example.com:5000']).toMatchObject({ authHeader: true, skipVerify: false });
    expect(hosts['registry.example.com:5000']!.ca).toBe(ca);
    expect(hosts['mirror.local']).toMatchObject({ skipVerify: true, authHeader: false });
    const checksum = (o: Obj[]): string => named(o, 'DaemonSet', 'node-registry-credentials')!['spec'].template.metadata.annotations['checksum/registry-config'];
    expect(checksum(objs)).not.toBe(checksum(render()));
  });

  it('the platform key false installs no node agent; the broker stays; uninstall still cleans the nodes', () => {
    const objs = render({ daemonset: { configurePrivateRegistriesInNodes: { enabled: false } } });
    expect(named(objs, 'DaemonSet', 'node-registry-credentials')).toBeUndefined();
    expect(objs.filter((o) => o['metadata'].name === 'node-registry-credentials' || o['metadata'].name === 'node-registry-credentials-own-node')).toEqual([]);
    expect(named(objs, 'Deployment', 'node-registry-credentials-broker')).toBeDefined();
    // Turning it off in an upgrade removes the agent: the cleanup runs then too.
    expect(named(objs, 'DaemonSet', 'node-registry-credentials-cleanup')!['metadata'].annotations['helm.sh/hook']).toBe('post-delete,post-upgrade');
    expect(named(render(), 'DaemonSet', 'node-registry-credentials-cleanup')!['metadata'].annotations['helm.sh/hook']).toBe('post-delete');
  });

  it('uninstall hook: waits for the agents to go, cleans every node, waits for each; its account may only read', () => {
    const objs = render();
    const h = hooks(objs).map((o) => `${o['metadata'].annotations['helm.sh/hook-weight']} ${o['kind']}/${o['metadata'].name}`).sort();
    expect(h).toEqual([
      '0 ConfigMap/node-registry-credentials-uninstall',
      '0 Role/node-registry-credentials-uninstall',
      '0 RoleBinding/node-registry-credentials-uninstall',
      '0 ServiceAccount/node-registry-credentials-uninstall',
      '1 Job/node-registry-credentials-uninstall-agents-gone',
      '2 DaemonSet/node-registry-credentials-cleanup',
      '3 Job/node-registry-credentials-uninstall-wait',
    ]);
    expect(named(objs, 'Role', 'node-registry-credentials-uninstall')!['rules']).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      { apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['node-registry-credentials-cleanup'], verbs: ['get'] },
    ]);
    const cleanup = named(objs, 'DaemonSet', 'node-registry-credentials-cleanup')!['spec'].template.spec;
    expect(cleanup.initContainers[0].args).toEqual(['cleanup']);
    expect(cleanup.automountServiceAccountToken).toBe(false);
    for (const job of ofKind(objs, 'Job')) {
      const pod = job['spec'].template.spec;
      expect(pod.serviceAccountName).toBe('node-registry-credentials-uninstall');
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.containers[0].securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      expect((pod.volumes as Obj[]).some((v) => v['hostPath'])).toBe(false);
    }
    // Cluster components: the Jobs are placed like the broker.
    const placed = render({ broker: { tolerations: [{ key: 'dedicated', operator: 'Exists' }], nodeSelector: { pool: 'system' } } });
    for (const job of ofKind(placed, 'Job')) expect(job['spec'].template.spec).toMatchObject({ tolerations: [{ key: 'dedicated', operator: 'Exists' }], nodeSelector: { pool: 'system' } });
    // The same script the chart ships, unmodified.
    expect(named(objs, 'ConfigMap', 'node-registry-credentials-uninstall')!['data']['wait.mjs']).toBe(readFileSync(join(CHART, 'files/uninstall-wait.mjs'), 'utf8'));
  });

  it('monitoring: a PodMonitor or ServiceMonitor on both components naming the node, the alerts and the dashboard', () => {
    const objs = render({ metrics: { podMonitor: { enabled: true }, prometheusRule: { enabled: true, additionalAlertLabels: { team: 'infra' } }, dashboard: { enabled: true } } });
    const pm = named(objs, 'PodMonitor', 'node-registry-credentials')!;
    expect(pm['spec'].selector.matchExpressions).toContainEqual({ key: 'app.kubernetes.io/component', operator: 'In', values: ['agent', 'broker'] });
    expect(pm['spec'].podMetricsEndpoints[0]).toMatchObject({ port: 'http-metrics', path: '/metrics', relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' }] });
    const rules = named(objs, 'PrometheusRule', 'node-registry-credentials')!['spec'].groups[0].rules as Obj[];
    expect(rules.map((r) => r['alert'])).toEqual([
      'NodeRegistryCredentialsApplyFailing',
      'NodeRegistryCredentialsCredentialRejected',
      'NodeRegistryCredentialsEcrTokenExpiring',
      'NodeRegistryCredentialsDriftRepairs',
      'NodeRegistryCredentialsConfigurationDiffers',
      'NodeRegistryCredentialsNotEffective',
    ]);
    for (const r of rules) expect(r['labels']).toMatchObject({ team: 'infra', severity: expect.any(String) });
    const dashboard = JSON.parse(named(objs, 'ConfigMap', 'node-registry-credentials-dashboard')!['data']['node-registry-credentials.json']);
    expect(dashboard.uid).toBe('node-registry-credentials');
    expect(named(objs, 'ConfigMap', 'node-registry-credentials-dashboard')!['metadata'].labels).toMatchObject({ grafana_dashboard: '1' });
    const sm = render({ metrics: { serviceMonitor: { enabled: true } } });
    expect(ofKind(sm, 'Service').map((s) => s['metadata'].name).sort()).toEqual(['node-registry-credentials-agent-metrics', 'node-registry-credentials-broker-metrics']);
    expect(named(sm, 'ServiceMonitor', 'node-registry-credentials')!['spec'].endpoints[0].relabelings[0].targetLabel).toBe('node');
    // Nothing of it by default (the operator's CRDs may be missing).
    expect(render().filter((o) => o['apiVersion'].startsWith('monitoring.coreos.com'))).toEqual([]);
  });

  it('refuses bad values at install with a message naming the value', () => {
    expect(refused({ broker: { replicas: 0 } })).toMatch(/\/broker\/replicas.*minimum/);
    expect(refused({ daemonset: { configurePrivateRegistriesInNodes: { enabled: 'yes' } } })).toMatch(/\/daemonset\/configurePrivateRegistriesInNodes\/enabled.*boolean/);
    expect(refused({ registries: { 'https://registry.example.com': { skipVerify: true } } })).toMatch(/https:\/\/registry\.example\.com.*does not match pattern/);
    expect(refused({ registries: { 'registry.example.com': { ca: 'not a PEM' } } })).toMatch(/\/registries\/registry\.example\.com\/ca.*BEGIN CERTIFICATE/);
    expect(refused({ registries: { 'registry.example.com': { ca_file: 'x.pem' } } })).toMatch(/additional propert.*ca_file/i);
    expect(refused({ agent: { resources: { requests: { memory: 'lots' } } } })).toMatch(/\/agent\/resources\/requests\/memory/);
    expect(refused({ agent: { tolerations: [{ operator: 'exists' }] } })).toMatch(/\/agent\/tolerations\/0\/operator/);
    expect(refused({ credentials: { secretName: 'Bad_Name' } })).toMatch(/\/credentials\/secretName/);
    expect(refused({ imageTag: '1.0' })).toMatch(/additional propert.*imageTag/i);
    expect(refused({ credentials: { brokerSecretName: '' } })).toMatch(/broker\.enabled needs credentials\.brokerSecretName/);
    expect(refused({ metrics: { podMonitor: { enabled: true }, serviceMonitor: { enabled: true } } })).toMatch(/not both/);
  });
});
