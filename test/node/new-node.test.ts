// A brand-new node, as it really joins a cluster where the agent is installed (issue 22;
// test/support/new-node.ts): its kubelet pulls the agent's own image from the cluster's private
// mirror before the agent has written anything, and caches the empty lookup for 5 minutes; a
// private-image pod is created through the scheduler the moment the node is Ready. The node pool
// registers its nodes with the startup taint, which the agent lifts once its credentials are
// effective: in provider mode at its first write; in config.json mode when the kubelet has read the
// file since, or its 5-minute cache has run out. Either way the pod pulls on its first try.
// NRC_NODE_MUTATE=no-startup-taint registers the nodes without the taint, to show today's failure
// (the pod fails and backs off until the kubelet's cache runs out). Never set in CI.
// Each scenario is a node boot: kubelet and containerd are started once, never restarted.
// Clusters: kubelet 1.34 on containerd 2.2 and 1.6, and the newest minor (1.37, its own control
// plane) on containerd 2.2 (NRC_NODE_CLUSTERS / NRC_NODE_RUNTIMES as in private-pull.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEffective } from '../../src/report/node-annotations.ts';
import type { Pki } from '../support/e2e-pki.ts';
import { skipWithout } from '../support/go-tools.ts';
import { bootNewNode } from '../support/new-node.ts';
import { type KubeMinor, NEWEST_KUBE } from '../support/control-plane.ts';
import { checkKubeletRuntime, clusterTools, nodeSuiteWork, removeNodeSuiteWork, type Runtime } from '../support/node.ts';

const CLUSTERS = (
  process.env.NRC_NODE_CLUSTERS ?? (process.env.NRC_NODE_RUNTIMES ? process.env.NRC_NODE_RUNTIMES.split(',').map((r) => `1.34/${r}`).join(',') : `1.34/containerd-2.2,1.34/containerd-1.6,${NEWEST_KUBE}/containerd-2.2`)
).split(',').map((spec) => {
  const [kube, runtime] = spec.split('/') as [KubeMinor, Runtime];
  checkKubeletRuntime(kube, runtime);
  return { kube, runtime };
});
/** Two indexes per cluster (provider, config.json): 5–8 for 1.34 as before, 14–15 for 1.37 (9–11: bench section 9; 12: scoped.test.ts). */
const firstIndex = (kube: KubeMinor, runtime: Runtime): number => (kube === '1.34' ? (runtime === 'containerd-2.2' ? 5 : 7) : 14);
const WITH_TAINT = process.env.NRC_NODE_MUTATE !== 'no-startup-taint';

let work: string;
let pki: Pki;
let agentArchive: string;
let pauseArchive: string;

describe.skipIf(skipWithout([...new Set(CLUSTERS.flatMap((c) => clusterTools(c.kube)))]))('a pod on a brand-new node pulls its private image on the first try', () => {
  beforeAll(async () => {
    ({ work, pki, agentArchive, pauseArchive } = await nodeSuiteWork('nrc-node-new-'));
  }, 1_200_000);

  afterAll(() => removeNodeSuiteWork(work), 120_000);

  // Indexes (kubelet ports, pod bridges, subnets) apart from private-pull's 1, 2 and 4, helm's 3 and the bench's
  // 1–2 and 9–11, which may run on the same machine.
  it(`provider mode and config.json mode, each with the startup taint: the first pull works, with no kubelet restart (${CLUSTERS.map((c) => `${c.kube} ${c.runtime}`).join(', ')})`, async () => {
    const runs = CLUSTERS.flatMap(({ kube, runtime }) => (['provider', 'config.json'] as const).map((mode, j) => ({ kube, runtime, mode, index: firstIndex(kube, runtime) + j })));
    const results = await Promise.allSettled(
      runs.map(({ kube, runtime, mode, index }) =>
        bootNewNode({ work, pki, agentArchive, pauseArchive, runtime, kube, index, mode, taint: WITH_TAINT, log: (m) => void process.stderr.write(`[new node ${kube} ${runtime} ${mode}${WITH_TAINT ? ' + startup taint' : ', no taint'}] ${m}\n`) }),
      ),
    );
    for (const [i, res] of results.entries()) {
      const { kube, runtime, mode } = runs[i]!;
      const what = `${kube} ${runtime} ${mode}`;
      if (res.status === 'rejected') throw res.reason;
      const o = res.value;
      expect(o.readyToRunningS, `${what}: the pod ran${o.diagnostics ? `\n${o.diagnostics}` : ''}`).toBeDefined();
      expect(o.failedPulls, `${what}: failed pulls before the first that worked`).toBe(0);
      expect(o.kubeletRestarted, `${what}: the kubelet ran from boot to the end`).toBe(false);
      expect(o.taintLiftedS, `${what}: the startup taint was lifted`).toBeDefined();
      const e = parseEffective(o.effective);
      expect(e?.state, `${what}: effective annotation ${o.effective}`).toBe('effective');
      if (mode === 'provider') {
        expect(e?.via).toContain('provider');
        // The agent's image pull, its start and first write: far below the kubelet's cache.
        expect(o.taintLiftedS!, `${what}: lifted at the first write`).toBeLessThan(120);
      } else {
        expect(e?.via).toContain('config.json');
        // The kubelet cached an empty lookup at the agent's image pull, before the agent's first
        // write: the new file could not be in effect before that ran out.
        expect(['cache-lifetime', 'kubelet-read']).toContain(e?.how);
        expect(o.taintLiftedS!, `${what}: not before the kubelet's cache could have run out`).toBeGreaterThan(240);
      }
    }
  }, 1_200_000);
});
