// The chart on a real one-node cluster (control plane, controllers, kubelet 1.34, containerd 2.2:
// test/support/node.ts), driven by the real helm CLI (testenv/helm) as an operator would:
//   helm install   the agent configures the node (kubelet config.json, containerd hosts.toml);
//   helm upgrade   a value change rolls the agent's pod, and the node keeps its configuration
//                  at every moment of the rollout (polled every 50 ms);
//   helm uninstall the post-delete hook cleans the node and waits for it: when helm returns,
//                  the node's files are byte for byte what they were before the install, and
//                  nothing of the release is left in the cluster.
// Only agent.hostRoot and agent.nodeSelector differ from an operator's values: this node's
// filesystem lives under a directory of this machine.
// NRC_HELM_MUTATE=no-cleanup installs with cleanupOnUninstall.enabled=false, to show that the
// uninstall step then fails (docs/e2e.md). Never set in CI.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHART } from '../../scripts/manifests.ts';
import { ControlPlane, kubectl as adminKubectl } from '../support/control-plane.ts';
import { AGENT_IMAGE } from '../support/e2e-images.ts';
import { diffSnapshots } from '../support/e2e-hostroot.ts';
import { goTool, skipWithout } from '../support/go-tools.ts';
import { agentHostFiles, Controllers, eventually, KubeNode, kubeletAuths, NODE_TOOLS, nodeSuiteWork, removeNodeSuiteWork, routeServiceVip, type NodeSuiteWork } from '../support/node.ts';

const execFileP = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const NS = 'okteto';
const RELEASE = 'node-registry-credentials';
const REGISTRY = 'registry.example.com:5000';
const INDEX = 3; // bridge nrc3, kubelet ports 10380/10381: apart from private-pull's nodes 1 and 2

let suite: NodeSuiteWork | undefined;

describe.skipIf(skipWithout(['etcd', 'kube-apiserver', 'helm', ...NODE_TOOLS]))('the Helm chart on a real node: install, upgrade, uninstall', () => {
  beforeAll(async () => {
    suite = await nodeSuiteWork('nrc-node-helm-');
  }, 1_200_000);
  afterAll(() => removeNodeSuiteWork(suite?.work), 120_000);

  it('installs, rolls on a value change with the node configured throughout, and uninstalls back to the files before install', async () => {
    const { work, pki, agentArchive, pauseArchive } = suite!;
    const dir = join(work, 'node');
    const log = (m: string): void => void process.stderr.write(`[helm node] ${m}\n`);
    const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false });
    const controllers = new Controllers();
    await cp.start();
    const kubectl = (args: readonly string[], input?: string): Promise<string> => adminKubectl(cp.info, args, input);
    const helm = async (args: readonly string[]): Promise<string> => {
      const { stdout, stderr } = await execFileP(goTool('helm'), [...args, '--kubeconfig', cp.info.adminKubeconfig, '--namespace', NS], { maxBuffer: 16 << 20 }).catch((e: Error & { stdout?: string; stderr?: string }) => {
        throw new Error(`helm ${args[0]}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      });
      return stdout + stderr;
    };
    const node = new KubeNode(cp.info, { name: `node-${INDEX}`, runtime: 'containerd-2.2', dir, images: [pauseArchive, agentArchive], podSubnet: `10.244.${INDEX}.0/24`, index: INDEX });
    let unroute: (() => Promise<void>) | undefined;
    try {
      // The platform owns the namespace and its Secret; the chart brings the CRD when missing.
      await kubectl(['apply', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n`);
      const credential = 'alice:first-password';
      const auth = Buffer.from(credential).toString('base64');
      await kubectl(['apply', '-f', '-'], JSON.stringify({
        apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson',
        metadata: { name: 'okteto-dockerconfig-static', namespace: NS },
        data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [REGISTRY]: { auth } } })).toString('base64') },
      }));
      await controllers.start(cp.info);
      unroute = await routeServiceVip(cp.info, INDEX);
      await node.start();
      const before = await agentHostFiles(node);
      const configured = async (): Promise<boolean> => {
        const kubelet = (await kubeletAuths(node))[REGISTRY] === credential;
        const hosts = await readFile(join(node.hostsDir, REGISTRY, 'hosts.toml'), 'utf8').catch(() => '');
        return kubelet && hosts.includes(`server = "https://${REGISTRY}"`);
      };

      const [repository, tag] = AGENT_IMAGE.split(':') as [string, string];
      const values = (extra: object = {}): string => JSON.stringify({
        image: { repository, tag },
        agent: { hostRoot: node.root, nodeSelector: { 'kubernetes.io/hostname': node.o.name }, ...extra },
        registries: { [REGISTRY]: { ca: pki.caPem } },
        ...(process.env.NRC_HELM_MUTATE === 'no-cleanup' ? { cleanupOnUninstall: { enabled: false } } : {}),
      });
      const valuesFile = join(dir, 'values.json');

      log('helm install');
      await writeFile(valuesFile, values());
      const installed = await helm(['install', RELEASE, CHART, '-f', valuesFile, '--wait', '--timeout', '5m']);
      expect(installed).toContain('STATUS: deployed');
      await eventually('the agent configures the node', async () => ((await configured()) ? true : undefined)).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await node.diagnostics()}`);
      });
      const agentPod = async (): Promise<string> =>
        kubectl(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/component=agent', '-o', 'jsonpath={range .items[*]}{.metadata.uid}{" "}{end}']).then((s) => s.trim());
      const firstPod = await agentPod();
      expect(firstPod.split(' ')).toHaveLength(1);

      log('helm upgrade: new agent resources roll the pod; the node stays configured');
      let polls = 0;
      const gaps: number[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          polls++;
          if (!(await configured())) gaps.push(Date.now());
          await sleep(50);
        }
      })();
      await writeFile(valuesFile, values({ resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '250m', memory: '224Mi' } } }));
      const upgraded = await helm(['upgrade', RELEASE, CHART, '-f', valuesFile, '--wait', '--timeout', '5m']);
      expect(upgraded).toContain('STATUS: deployed');
      await eventually('the new agent pod is ready', async () => {
        const uids = await agentPod();
        const ready = await kubectl(['-n', NS, 'get', 'ds', RELEASE, '-o', 'jsonpath={.status.updatedNumberScheduled}/{.status.numberReady}']);
        return uids !== firstPod && !uids.includes(' ') && ready === '1/1' ? uids : undefined;
      });
      await sleep(2000); // the new agent's first passes
      polling = false;
      await poller;
      const limits = await kubectl(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/component=agent', '-o', 'jsonpath={.items[0].spec.containers[0].resources.limits.memory}']);
      expect(limits).toBe('224Mi');
      expect(polls).toBeGreaterThan(20);
      expect(gaps, 'moments the node was not configured during the upgrade').toEqual([]);
      expect(await configured()).toBe(true);

      log('helm uninstall: the hook cleans the node before helm returns');
      await helm(['uninstall', RELEASE, '--wait', '--timeout', '6m']);
      expect(diffSnapshots(before, await agentHostFiles(node))).toEqual([]);
      // Nothing of the release is left: not its objects, not its hooks.
      const left = await kubectl(['get', 'all,serviceaccounts,roles,rolebindings,configmaps,clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings', '-A', '-l', 'app.kubernetes.io/part-of=node-registry-credentials', '-o', 'name']);
      expect(left.trim()).toBe('');
      // The platform's Secret and namespace stay.
      expect(await kubectl(['-n', NS, 'get', 'secret', 'okteto-dockerconfig-static', '-o', 'name'])).toContain('okteto-dockerconfig-static');
    } finally {
      await node.stop();
      await unroute?.();
      await controllers.stop();
      await cp.stop();
    }
  }, 1_500_000);
});
