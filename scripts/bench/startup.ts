// Section 6: time from process start to the first apply (the kubelet's config.json written), for
// the agent with a mounted Secret and with the Secret watch, each on a fresh host root, run as the
// image runs it (its ENTRYPOINT's Node flags). Start-up matters on a node that boots or whose agent
// was rolled; the image's size and pull time are section 9 (image.ts).
import { join } from 'node:path';
import { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { type AgentBuild, dist, type Dist, dockerConfig, KubeletSecretVolume, makeHostRoot, now, spawnAgent, VersionWatcher } from './lib.ts';
import { NS, SECRET, startSecretAgent } from './secret-agent.ts';

const REGISTRIES = 10;

export interface StartupResult {
  readonly runs: number;
  readonly mountedMs: Dist;
  readonly watchMs: Dist;
  /** The mounted-Secret agent without the ENTRYPOINT's Node flags (what --no-node-snapshot costs at start). */
  readonly mountedPlainMs?: Dist;
  readonly notes: string[];
}

async function once(start: (root: string, work: string) => Promise<{ stop: () => Promise<void> }>, timeoutMs: number): Promise<number> {
  const host = await makeHostRoot('startup');
  const watch = new VersionWatcher(host.kubeletConfig);
  const t0 = now();
  const agent = await start(host.root, join(host.root, '..'));
  try {
    const t = await watch.waitFor(1, timeoutMs);
    if (t === undefined) throw new Error(`no first apply within ${timeoutMs} ms`);
    return t - t0;
  } finally {
    watch.close();
    await agent.stop();
    await host.cleanup();
  }
}

export async function startupSection(build: AgentBuild, runs: number, timeoutMs: number): Promise<StartupResult> {
  const notes: string[] = [];
  const mounted: number[] = [];
  const watched: number[] = [];
  const plain: number[] = [];
  const flags = build.argv.filter((a) => a.startsWith('--'));
  const plainBuild: AgentBuild = { ...build, argv: build.argv.filter((a) => !flags.includes(a)) };
  const mountedAgent = (b: AgentBuild) => async (root: string, work: string) => {
    const vol = new KubeletSecretVolume(join(work, 'secret'));
    vol.update(dockerConfig(REGISTRIES, 1));
    return spawnAgent(b, ['--host-root', root, '--dockerconfig', vol.dir, '--no-kubernetes']);
  };
  const api = new FakeApiServer();
  await api.start();
  api.putDockerConfigSecret(NS, SECRET, dockerConfig(REGISTRIES, 1));
  try {
    for (let i = 0; i < runs; i++) {
      mounted.push(await once(mountedAgent(build), timeoutMs));
      watched.push(await once((root, work) => startSecretAgent(build, api, root, work), timeoutMs));
      if (flags.length > 0) plain.push(await once(mountedAgent(plainBuild), timeoutMs));
    }
  } finally {
    await api.stop();
  }
  notes.push(`From spawning the process to the kubelet's config.json holding the first apply, ${REGISTRIES} registries, a fresh host root each run; the watch runs against the in-process fake API server.`);
  if (flags.length > 0) notes.push(`"without ${flags.join(' ')}": the mounted-Secret agent without the image's ENTRYPOINT flags, in the same runs.`);
  return { runs, mountedMs: dist(mounted), watchMs: dist(watched), ...(plain.length > 0 ? { mountedPlainMs: dist(plain) } : {}), notes };
}
