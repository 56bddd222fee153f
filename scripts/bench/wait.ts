// Section 8 (optional: `npm run bench -- --only wait`): the user's wait (issue 21, item 2). Two
// real one-node clusters side by side (test/support/node.ts, as the node suite runs them): kubelet
// 1.34 + containerd 2.2, one in config.json mode (daemonset/), one in provider mode
// (daemonset/variants/provider, the node booted with the shipped plugin and config). No kubelet is
// ever restarted. Each cluster has three private registries (the node suite's registry image, the
// same image pushed to each): ROT (its password rotates), and A and B, which swap roles each
// repetition: one is added to the Secret, the other removed. The time is from t0 (the registry
// already switched, just before the admin's `kubectl apply` of the Secret) until a NEW pod pulls
// (containerd's log) and until it is seen Running (its status read every 250 ms in provider mode,
// 1 s in config.json mode): a new pod is created after each outcome (one at a time per probe, at
// most one per PROBE_GAP_MS) until one has the wanted outcome.
// - provider mode: rotation, addition, removal each get their own t0, one after the other;
// - config.json mode: the kubelet's docker config cache is one per kubelet (CachingDockerConfigProvider,
//   5 minutes), so one Secret change carries all three at one t0 and they share one window.
// Repetitions: NRC_BENCH_WAIT_REPS, or 5 (full) / 1 (--quick); NRC_BENCH_WAIT_MODES=provider runs one mode alone.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ControlPlane, kubectl as adminKubectl, kustomize } from '../../test/support/control-plane.ts';
import { startRegistry, type Registry } from '../../test/support/e2e-registry.ts';
import { missingGoTools } from '../../test/support/go-tools.ts';
import {
  agentOverlay,
  Controllers,
  dockerConfigSecret,
  containerdPulls,
  eventually,
  KubeNode,
  kubeletAuths,
  type Kubectl,
  NODE_TOOLS,
  nodeSuiteWork,
  type NodeSuiteWork,
  providerAuths,
  pullWithPod,
  removeNodeSuiteWork,
  routeServiceVip,
} from '../../test/support/node.ts';
import { dist, type Dist, round, sleep } from './lib.ts';

const execFileP = promisify(execFile);

export type WaitMode = 'config.json' | 'provider';
const PROVIDER_VARIANT = 'daemonset/variants/provider';
/**
 * A new pod at most this often per probe (the next one starts when the previous one's outcome is
 * known), and how often its status is read. Provider mode: fine, for seconds. config.json mode:
 * coarser (its three probes run for 5 minutes; each status read is a kubectl process, and at 250 ms
 * they loaded the 2-core machine to 6 and slowed the provider cluster beside it).
 */
const PROBE_GAP_MS: Record<WaitMode, number> = { 'config.json': 3000, provider: 1000 };
const POLL_MS: Record<WaitMode, number> = { 'config.json': 1000, provider: 250 };
/** How long a probe may try: the kubelet's 5-minute cache plus a margin, or a minute in provider mode. */
const PROBE_DEADLINE_MS: Record<WaitMode, number> = { 'config.json': 7 * 60_000, provider: 90_000 };
const STATIC = { username: 'carol', password: 'static-password' };

/** One probe: new pods until one has the wanted outcome. */
export interface Probe {
  /** Seconds from t0 to the wanted outcome (undefined: not within the deadline). */
  readonly seconds: number | undefined;
  /** Pods created. */
  readonly pods: number;
  /** Pods with the other outcome (failed pulls; for a removal: pods that still pulled). */
  readonly other: number;
  /** Seconds from t0 to the last pod with the other outcome (for a removal: the last pull that still worked). */
  readonly lastOtherSeconds: number | undefined;
  /**
   * Seconds from t0 to the pull itself with the wanted outcome, from containerd's log: its CRI
   * PullImage returned the image (or failed, for a removal). The pod's Running comes later by the
   * container start and the kubelet's PLEG relist (genericPlegRelistPeriod, 1 s: kubelet.go:206 in 1.34.4).
   */
  readonly pulledSeconds: number | undefined;
}

export interface Repetition {
  readonly rotation: Probe;
  readonly added: Probe;
  readonly removal: Probe;
  /** Seconds from t0 until the agent's output (config.json, or the provider state) held the change. */
  readonly agentWrote: { readonly rotation?: number; readonly added?: number; readonly removal?: number };
  /** config.json mode: seconds from the kubelet's last read of its docker config (its log) to t0. */
  readonly sinceKubeletReadSeconds?: number;
  /** config.json mode: seconds from t0 to the kubelet's first read of its docker config after it (its log). */
  readonly kubeletReadAfterSeconds?: number;
  /** Seconds from creating a pod to seeing it Running, with nothing changed (just before t0). */
  readonly unchangedPullSeconds: number;
}

export interface WaitModeResult {
  readonly mode: WaitMode;
  readonly repetitions: Repetition[];
  /** The Dist is to the new pod's Running; `pulled`, to its pull (containerd's log). */
  readonly rotation: Dist & { readonly pulled: Dist; readonly failedPulls: number; readonly timeouts: number };
  readonly added: Dist & { readonly pulled: Dist; readonly failedPulls: number; readonly timeouts: number };
  /** `keptPulling`: seconds from t0 to the last pod that still pulled (0 if none); the Dist is to the first refused pod, `pulled` to its refused pull. */
  readonly removal: Dist & { readonly pulled: Dist; readonly keptPulling: Dist; readonly podsStillPulling: number; readonly timeouts: number };
  readonly agentWrote: Dist;
  readonly unchangedPull: Dist;
  readonly kubeletRestarted: boolean;
  readonly error?: string;
}

export interface WaitResult {
  readonly repetitions: number;
  readonly probeGapMs: Readonly<Record<WaitMode, number>>;
  readonly pollMs: Readonly<Record<WaitMode, number>>;
  readonly loadAverageAtStart: readonly number[];
  readonly loadAverageAtEnd: readonly number[];
  readonly uptimeAtStart: string;
  readonly uptimeAtEnd: string;
  readonly modes: WaitModeResult[];
  readonly notes: string[];
}

async function probe(mode: WaitMode, kubectl: Kubectl, node: KubeNode, image: string, want: 'Running' | 'Failed', t0: number, deadlineMs: number): Promise<Probe> {
  let pods = 0;
  let other = 0;
  let lastOtherSeconds: number | undefined;
  for (;;) {
    const started = Date.now();
    if (started - t0 > deadlineMs) return { seconds: undefined, pods, other, lastOtherSeconds, pulledSeconds: undefined };
    pods++;
    const phase = await pullWithPod(kubectl, node, image, 30_000, POLL_MS[mode]).then(
      (o) => o.phase,
      () => 'Timeout' as const,
    );
    const at = (Date.now() - t0) / 1000;
    if (phase === want) {
      const pulled = (await containerdPulls(node, image)).find((p) => p.at >= t0 && p.ok === (want === 'Running'));
      return { seconds: at, pods, other, lastOtherSeconds, pulledSeconds: pulled === undefined ? undefined : (pulled.at - t0) / 1000 };
    }
    other++;
    if (phase !== 'Timeout') lastOtherSeconds = at;
    await sleep(Math.max(0, PROBE_GAP_MS[mode] - (Date.now() - started)));
  }
}

/** Seconds from t0 until `holds` is true of the agent's output, polled every 50 ms (undefined: not within 3 minutes). */
async function agentWrote(read: () => Promise<Record<string, string>>, holds: (a: Record<string, string>) => boolean, t0: number): Promise<number | undefined> {
  while (Date.now() - t0 < 180_000) {
    if (holds(await read().catch(() => ({})))) return (Date.now() - t0) / 1000;
    await sleep(50);
  }
  return undefined;
}

/**
 * When the kubelet re-read its docker config: CachingDockerConfigProvider.Provide logs "Refreshing
 * cache for provider" at -v=2 (pkg/credentialprovider/provider.go:93 in 1.34.4) each time its
 * 5-minute cache has run out at a lookup. Epoch ms (klog's local time, this machine's).
 */
async function kubeletReads(node: KubeNode): Promise<number[]> {
  const text = await readFile(join(node.o.dir, 'logs', 'kubelet.log'), 'utf8').catch(() => '');
  const year = new Date().getFullYear();
  const out: number[] = [];
  for (const m of text.matchAll(/^I(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) .*Refreshing cache for provider: \*credentialprovider\.defaultDockerConfigProvider/gm)) {
    const [mo, d, h, mi, se, us] = m.slice(1).map(Number) as [number, number, number, number, number, number];
    out.push(new Date(year, mo - 1, d, h, mi, se, Math.floor(us / 1000)).getTime());
  }
  return out;
}

/** "pull 0.81 s, Running 1.93 s" for a log line. */
const pullAndRunning = (p: Probe): string => `${p.pulledSeconds?.toFixed(2) ?? '?'} s, Running ${p.seconds?.toFixed(2) ?? '?'} s`;

const defined = (xs: readonly (number | undefined)[]): number[] => xs.filter((x): x is number => x !== undefined);

function summarize(mode: WaitMode, reps: Repetition[], restarted: boolean, error?: string): WaitModeResult {
  const of = (k: 'rotation' | 'added') => ({
    ...dist(defined(reps.map((r) => r[k].seconds))),
    pulled: dist(defined(reps.map((r) => r[k].pulledSeconds))),
    failedPulls: reps.reduce((n, r) => n + r[k].other, 0),
    timeouts: reps.filter((r) => r[k].seconds === undefined).length,
  });
  return {
    mode,
    repetitions: reps,
    rotation: of('rotation'),
    added: of('added'),
    removal: {
      ...dist(defined(reps.map((r) => r.removal.seconds))),
      pulled: dist(defined(reps.map((r) => r.removal.pulledSeconds))),
      keptPulling: dist(reps.map((r) => r.removal.lastOtherSeconds ?? 0)),
      podsStillPulling: reps.reduce((n, r) => n + r.removal.other, 0),
      timeouts: reps.filter((r) => r.removal.seconds === undefined).length,
    },
    agentWrote: dist(defined(reps.flatMap((r) => [r.agentWrote.rotation, r.agentWrote.added, r.agentWrote.removal]))),
    unchangedPull: dist(reps.map((r) => r.unchangedPullSeconds)),
    kubeletRestarted: restarted,
    ...(error === undefined ? {} : { error }),
  };
}

async function runMode(mode: WaitMode, index: number, w: NodeSuiteWork, repetitions: number, log: (s: string) => void): Promise<WaitModeResult> {
  const say = (s: string): void => log(`wait [${mode}] ${s}`);
  const dir = join(w.work, `wait-${index}`);
  const cp = new ControlPlane({ dir: join(dir, 'control-plane'), install: false });
  const controllers = new Controllers();
  const registries: Registry[] = [];
  let node: KubeNode | undefined;
  let unroute: (() => Promise<void>) | undefined;
  const reps: Repetition[] = [];
  let bootPid: number | undefined;
  try {
    for (const n of ['rot', 'a', 'b']) registries.push(await startRegistry(join(dir, `registry-${n}`), w.pki, n === 'rot' ? { user0: 'password-0' } : { [STATIC.username]: STATIC.password }));
    const [rot, a, b] = registries as [Registry, Registry, Registry];
    await cp.start();
    const kubectl: Kubectl = (args, input) => adminKubectl(cp.info, args, input);
    const ports = registries.map((r) => Number(r.host.split(':')[1]));
    const n = new KubeNode(cp.info, {
      name: `node-${index}`, runtime: 'containerd-2.2', dir, images: [w.pauseArchive, w.agentArchive], podSubnet: `10.244.${index}.0/24`, index,
      ...(mode === 'provider' ? { credentialProvider: { ports } } : {}),
    });
    node = n;
    await kubectl(['apply', '-f', '-'], ['apiVersion: v1\nkind: Namespace\nmetadata: {name: okteto}\n', await kustomize('daemonset/crd')].join('\n---\n'));
    await controllers.start(cp.info);
    unroute = await routeServiceVip(cp.info, index);
    for (const r of registries) {
      const creds = r === rot ? 'user0:password-0' : `${STATIC.username}:${STATIC.password}`;
      await execFileP('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', r.caDir, '--dest-creds', creds, `docker-archive:${w.pauseArchive}`, `docker://${r.host}/private/app:v1`]);
    }
    const image = (r: Registry): string => `${r.host}/private/app:v1`;
    await n.start();
    bootPid = n.kubeletPid;
    const read = mode === 'provider' ? async () => (await providerAuths(n)) ?? {} : () => kubeletAuths(n);
    const toml = registries.map((r) => `[registry."${r.host}"]\nca = """${w.pki.caPem}"""\n`).join('');
    await kubectl(['apply', '-f', '-'], await agentOverlay(n, toml, mode === 'provider' ? PROVIDER_VARIANT : 'daemonset'));
    let rotUser = { username: 'user0', password: 'password-0' };
    let present = a;
    let absent = b;
    const secret = (entries: readonly Registry[]): string => dockerConfigSecret(Object.fromEntries(entries.map((r) => [r.host, r === rot ? rotUser : STATIC])));
    await kubectl(['apply', '-f', '-'], secret([rot, present]));
    await eventually('the agent writes the first credentials', async () => ((await read())[present.host] !== undefined && (await read())[rot.host] === 'user0:password-0' ? true : undefined), 240_000);
    // The state before the first t0, as the kubelet sees it (in config.json mode this first pull is its first read).
    const pre: [Registry, 'Running' | 'Failed'][] = [[rot, 'Running'], [present, 'Running'], [absent, 'Failed']];
    for (const [r, want] of pre) {
      const o = await pullWithPod(kubectl, n, image(r), 60_000, POLL_MS[mode]);
      if (o.phase !== want) throw new Error(`before the first change, ${image(r)}: ${o.phase}, not ${want}: ${o.events}`);
    }
    say(`cluster up, agent installed, state before the first change checked (kubelet pid ${bootPid})`);
    const deadline = PROBE_DEADLINE_MS[mode];
    for (let i = 1; i <= repetitions; i++) {
      const next = { username: `user${i}`, password: `password-${i}` };
      const u0 = Date.now();
      const unchanged = await pullWithPod(kubectl, n, image(rot), 60_000, POLL_MS[mode]);
      const unchangedPullSeconds = (Date.now() - u0) / 1000;
      if (unchanged.phase !== 'Running') throw new Error(`repetition ${i}: with nothing changed, ${image(rot)} did not pull: ${unchanged.events}`);
      const rotated = (x: Record<string, string>): boolean => x[rot.host] === `${next.username}:${next.password}`;
      if (mode === 'config.json') {
        await rot.setUsers({ [next.username]: next.password });
        rotUser = next;
        const t0 = Date.now();
        const since = (t0 - Math.max(0, ...(await kubeletReads(n)).filter((t) => t <= t0))) / 1000;
        await kubectl(['apply', '-f', '-'], secret([rot, absent]));
        const [wrote, rotation, added, removal] = await Promise.all([
          agentWrote(read, (x) => rotated(x) && x[absent.host] !== undefined && x[present.host] === undefined, t0),
          probe(mode, kubectl, n, image(rot), 'Running', t0, deadline),
          probe(mode, kubectl, n, image(absent), 'Running', t0, deadline),
          probe(mode, kubectl, n, image(present), 'Failed', t0, deadline),
        ]);
        const readAfter = (await kubeletReads(n)).find((t) => t > t0);
        const kubeletReadAfterSeconds = readAfter === undefined ? undefined : round((readAfter - t0) / 1000, 2);
        reps.push({ rotation, added, removal, agentWrote: wrote === undefined ? {} : { rotation: wrote } /* one write carries all three */, sinceKubeletReadSeconds: round(since, 1), ...(kubeletReadAfterSeconds === undefined ? {} : { kubeletReadAfterSeconds }), unchangedPullSeconds });
        say(`repetition ${i}: t0 ${since.toFixed(0)} s after the kubelet's last read, which re-read at +${kubeletReadAfterSeconds ?? '?'} s; a pod with nothing changed ${unchangedPullSeconds.toFixed(2)} s; agent wrote ${wrote?.toFixed(2)} s; rotation ${rotation.seconds?.toFixed(1)} s (${rotation.other} failed), added ${added.seconds?.toFixed(1)} s (${added.other} failed), removal refused at ${removal.seconds?.toFixed(1)} s (${removal.other} still pulled, last at ${removal.lastOtherSeconds?.toFixed(1) ?? '—'} s)`);
      } else {
        await rot.setUsers({ [next.username]: next.password });
        rotUser = next;
        let t0 = Date.now();
        await kubectl(['apply', '-f', '-'], secret([rot, present]));
        const [wroteRot, rotation] = await Promise.all([agentWrote(read, rotated, t0), probe(mode, kubectl, n, image(rot), 'Running', t0, deadline)]);
        t0 = Date.now();
        await kubectl(['apply', '-f', '-'], secret([rot, present, absent]));
        const [wroteAdded, added] = await Promise.all([agentWrote(read, (x) => x[absent.host] !== undefined, t0), probe(mode, kubectl, n, image(absent), 'Running', t0, deadline)]);
        t0 = Date.now();
        await kubectl(['apply', '-f', '-'], secret([rot, absent]));
        const [wroteRemoval, removal] = await Promise.all([agentWrote(read, (x) => x[present.host] === undefined, t0), probe(mode, kubectl, n, image(present), 'Failed', t0, deadline)]);
        reps.push({ rotation, added, removal, agentWrote: { rotation: wroteRot, added: wroteAdded, removal: wroteRemoval }, unchangedPullSeconds });
        say(`repetition ${i}: a pod with nothing changed ${unchangedPullSeconds.toFixed(2)} s; rotation pulled ${pullAndRunning(rotation)} (${rotation.other} failed; agent ${wroteRot?.toFixed(2)} s), added pulled ${pullAndRunning(added)} (${added.other} failed; agent ${wroteAdded?.toFixed(2)} s), removal refused ${pullAndRunning(removal)} (${removal.other} still pulled; agent ${wroteRemoval?.toFixed(2)} s)`);
      }
      [present, absent] = [absent, present];
    }
    return summarize(mode, reps, n.kubeletPid !== bootPid);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    say(`failed: ${msg}`);
    if (node) log((await node.diagnostics().catch(() => '')).slice(-4000));
    return summarize(mode, reps, node?.kubeletPid !== bootPid, msg.slice(0, 2000));
  } finally {
    await node?.stop().catch(() => undefined);
    await unroute?.();
    await controllers.stop();
    await cp.stop().catch(() => undefined);
    for (const r of registries) await r.stop().catch(() => undefined);
  }
}

const uptime = async (): Promise<string> => (await execFileP('uptime').catch(() => ({ stdout: '' }))).stdout.trim();

export async function waitSection(repetitions: number, log: (s: string) => void): Promise<WaitResult> {
  const notes: string[] = [];
  const loadAverageAtStart = loadavg().map((l) => round(l, 2));
  const uptimeAtStart = await uptime();
  const missing = missingGoTools(['etcd', 'kube-apiserver', ...NODE_TOOLS]);
  const base = { repetitions, probeGapMs: PROBE_GAP_MS, pollMs: POLL_MS, loadAverageAtStart, uptimeAtStart };
  if (missing.length > 0) {
    return { ...base, loadAverageAtEnd: loadAverageAtStart, uptimeAtEnd: uptimeAtStart, modes: [], notes: [`skipped: Go tools not built (${missing.join(', ')}; run \`bash scripts/build-go-tools.sh\`)`] };
  }
  // As the node suite's vitest config: no Ryuk reaper (its image would be pulled from outside); each registry is stopped in a finally.
  process.env['TESTCONTAINERS_RYUK_DISABLED'] ??= 'true';
  log('wait: building the agent image and the pause image (the node suite\'s nodeSuiteWork)');
  const w = await nodeSuiteWork('nrc-bench-wait-');
  try {
    // Side by side, as the node suite runs its two runtimes: bridges nrc1 and nrc2, kubelet ports per index.
    // NRC_BENCH_WAIT_MODES=provider (or config.json): one mode alone, e.g. provider mode without the other cluster's load beside it.
    const only = (process.env['NRC_BENCH_WAIT_MODES'] ?? 'config.json,provider').split(',');
    const modes = await Promise.all([
      ...(only.includes('config.json') ? [runMode('config.json', 1, w, repetitions, log)] : []),
      ...(only.includes('provider') ? [runMode('provider', 2, w, repetitions, log)] : []),
    ]);
    notes.push(
      "t0: the registry already accepts only the new password (rotation), just before the admin's `kubectl apply` of the Secret; \"pulled\" ends at the new pod's pull (containerd's CRI PullImage returned the image, or failed for a removal, from its log): it includes the apply, the agent's write, pod creation, the sandbox and the pull; \"Running\" ends when the pod's status is seen Running (ErrImagePull for a removal), which adds the container start, the kubelet's PLEG relist (1 s, genericPlegRelistPeriod) and one status poll (250 ms in provider mode, 1 s in config.json mode)",
      `a probe creates one pod at a time (the next as soon as the previous one's outcome is known, at most one per ${PROBE_GAP_MS.provider / 1000} s in provider mode, ${PROBE_GAP_MS['config.json'] / 1000} s in config.json mode); "failed pulls" are the pods before the first that pulled; for a removal, "still pulling" counts pods that pulled after t0`,
      "config.json mode: the kubelet caches its docker config (config.json) for 5 minutes, one cache per kubelet, so one Secret change carries the rotation, the added and the removed registry at the same t0 and the three share one window; the kubelet's reads are taken from its log (provider.go:93, “Refreshing cache for provider” at -v=2); t0 comes soon after the kubelet's last read (the state before t0 is checked with pulls, and each repetition starts right after the previous window), so each figure is close to the 5-minute worst case; at a random moment a user waits 0–5 minutes",
      'provider mode: the three changes one after the other, each with its own t0; the plugin answers with cacheDuration 0s, so the kubelet asks it at every pull',
      'both clusters: kubelet 1.34 + containerd 2.2, one node, started once; the kubelet is never restarted (its pid is checked)',
    );
    return { ...base, loadAverageAtEnd: loadavg().map((l) => round(l, 2)), uptimeAtEnd: await uptime(), modes, notes };
  } finally {
    await removeNodeSuiteWork(w.work);
  }
}
