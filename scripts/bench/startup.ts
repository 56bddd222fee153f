// Section 6: time from process start to the first apply (the kubelet's config.json written), for
// the agent with a mounted Secret and with the Secret watch, each on a fresh host root; and the
// size of the agent's image. Start-up matters on a node that boots or whose agent was rolled.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { FakeApiServer } from '../../test/support/fake-apiserver.ts';
import { type AgentBuild, dist, type Dist, dockerConfig, KubeletSecretVolume, makeHostRoot, now, round, spawnAgent, VersionWatcher } from './lib.ts';
import { NS, SECRET, startSecretAgent } from './secret-agent.ts';

const REGISTRIES = 10;
const IMAGE = 'node-registry-credentials:e2e';

export interface StartupResult {
  readonly runs: number;
  readonly mountedMs: Dist;
  readonly watchMs: Dist;
  /** The image's size as `docker image inspect` reports it, when the image is there. */
  readonly imageMiB?: number;
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
  const api = new FakeApiServer();
  await api.start();
  api.putDockerConfigSecret(NS, SECRET, dockerConfig(REGISTRIES, 1));
  try {
    for (let i = 0; i < runs; i++) {
      mounted.push(
        await once(async (root, work) => {
          const vol = new KubeletSecretVolume(join(work, 'secret'));
          vol.update(dockerConfig(REGISTRIES, 1));
          return spawnAgent(build, ['--host-root', root, '--dockerconfig', vol.dir, '--no-kubernetes']);
        }, timeoutMs),
      );
      watched.push(await once((root, work) => startSecretAgent(build, api, root, work), timeoutMs));
    }
  } finally {
    await api.stop();
  }
  let imageMiB: number | undefined;
  try {
    imageMiB = round(Number(execFileSync('docker', ['image', 'inspect', IMAGE, '--format', '{{.Size}}'], { encoding: 'utf8' }).trim()) / 2 ** 20, 1);
  } catch {
    notes.push(`image size: ${IMAGE} is not on this machine (the e2e suite builds it: npm run test:e2e)`);
  }
  notes.push(`From spawning the process to the kubelet's config.json holding the first apply, ${REGISTRIES} registries, a fresh host root each run; the watch runs against the in-process fake API server.`);
  return { runs, mountedMs: dist(mounted), watchMs: dist(watched), ...(imageMiB === undefined ? {} : { imageMiB }), notes };
}
