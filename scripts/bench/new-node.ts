// Section 9 (optional: `npm run bench -- --only newnode`): a brand-new node's first private pull
// (issue 22, item 4). Three real one-node clusters side by side, each a node boot as
// test/support/new-node.ts runs it (kubelet 1.34 + containerd 2.2; the agent's image pulled from
// the cluster's mirror before the agent writes, a private-image pod created through the scheduler
// the moment the node is Ready): today's behaviour (no taint, config.json), the startup taint with
// config.json, and provider mode (with the taint). Each row: from Ready to the first successful
// pull and to Running, the failed pulls, when the taint went. Repetitions: NRC_BENCH_NEWNODE_REPS
// (default 1 full, 1 quick: each is a node boot of up to 10 minutes).
import { loadavg } from 'node:os';
import { missingGoTools } from '../../test/support/go-tools.ts';
import { bootNewNode, type NewNodeMode, type NewNodeOutcome } from '../../test/support/new-node.ts';
import { NODE_TOOLS, nodeSuiteWork, removeNodeSuiteWork } from '../../test/support/node.ts';
import { round } from './lib.ts';

export interface NewNodeRow {
  readonly name: string;
  readonly mode: NewNodeMode;
  readonly taint: boolean;
  readonly runs: NewNodeOutcome[];
  readonly error?: string;
}

export interface NewNodeResult {
  readonly repetitions: number;
  readonly rows: NewNodeRow[];
  readonly loadAverageAtStart: readonly number[];
  readonly loadAverageAtEnd: readonly number[];
  readonly notes: string[];
}

/** Indexes 9–11: apart from the node suite's and section 8's clusters, which may run on the same machine. */
const ROWS: { name: string; mode: NewNodeMode; taint: boolean; index: number }[] = [
  { name: "today's behaviour: no taint, config.json", mode: 'config.json', taint: false, index: 9 },
  { name: 'startup taint, config.json', mode: 'config.json', taint: true, index: 10 },
  { name: 'provider mode (startup taint)', mode: 'provider', taint: true, index: 11 },
];

export async function newNodeSection(repetitions: number, log: (s: string) => void): Promise<NewNodeResult> {
  const loadAverageAtStart = loadavg().map((l) => round(l, 2));
  const missing = missingGoTools(['etcd', 'kube-apiserver', ...NODE_TOOLS]);
  if (missing.length > 0) {
    return { repetitions, rows: [], loadAverageAtStart, loadAverageAtEnd: loadAverageAtStart, notes: [`skipped: Go tools not built (${missing.join(', ')}; run \`bash scripts/build-go-tools.sh\`)`] };
  }
  process.env['TESTCONTAINERS_RYUK_DISABLED'] ??= 'true';
  const w = await nodeSuiteWork('nrc-bench-newnode-');
  try {
    const rows = await Promise.all(
      ROWS.map(async (r): Promise<NewNodeRow> => {
        const runs: NewNodeOutcome[] = [];
        try {
          for (let i = 0; i < repetitions; i++) {
            runs.push(await bootNewNode({ work: w.work, pki: w.pki, agentArchive: w.agentArchive, pauseArchive: w.pauseArchive, runtime: 'containerd-2.2', index: r.index, mode: r.mode, taint: r.taint, log: (m) => log(`newnode [${r.name}] ${m}`) }));
          }
          return { name: r.name, mode: r.mode, taint: r.taint, runs };
        } catch (e) {
          return { name: r.name, mode: r.mode, taint: r.taint, runs, error: (e instanceof Error ? e.message : String(e)).slice(0, 2000) };
        }
      }),
    );
    return {
      repetitions,
      rows,
      loadAverageAtStart,
      loadAverageAtEnd: loadavg().map((l) => round(l, 2)),
      notes: [
        "each row boots its own node (kubelet 1.34 + containerd 2.2), the three side by side; the agent's image is pulled from the cluster's private mirror with the DaemonSet's imagePullSecret, so the kubelet looks up its docker config (and caches the empty result for 5 minutes) before the agent's first write, as on a real new node",
        'the time starts when the node is Ready, when the workload pod is created (through the scheduler); "pulled" is containerd\'s first successful pull of its image (its log), "Running" the pod seen Running (polled every second); failed pulls are the kubelet\'s "Failed to pull image" events for that pod',
        "the taint goes in config.json mode when the kubelet has read the agent's file, or the kubelet's 5-minute cache has run out since the agent's write (docs/kubernetes.md#effective); in provider mode at the agent's first write",
      ],
    };
  } finally {
    await removeNodeSuiteWork(w.work);
  }
}
