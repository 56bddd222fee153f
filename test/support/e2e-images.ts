// The locally built images the suite needs (nothing can be pulled here). Each builder is a
// script under scripts/e2e/ that is a no-op when the image is already up to date.
import { join } from 'node:path';
import { runOk, step, note, tail } from './e2e-exec.ts';
import { REPO_ROOT, dockerBin } from './e2e-prereqs.ts';

export const REGISTRY_IMAGE = 'nrc-e2e/registry:local';
export const NODE_BASE_IMAGE = 'node:24-bookworm-slim';
// NRC_E2E_AGENT_IMAGE: another tag, so that two checkouts sharing one dockerd do not retag each other's image.
export const AGENT_IMAGE = process.env['NRC_E2E_AGENT_IMAGE'] || 'node-registry-credentials:e2e';
const AGENT_BUILD_STAGE_IMAGE = `${AGENT_IMAGE}-build`;

const script = (name: string): string => join(REPO_ROOT, 'scripts', 'e2e', name);

export async function ensureRegistryImage(): Promise<string> {
  const r = await runOk('bash', [script('build-registry-image.sh'), REGISTRY_IMAGE]);
  note(tail(r.stdout, 1));
  return REGISTRY_IMAGE;
}

/** Builds the project's Dockerfile (after providing its base image locally). `log`: where the steps go (the bench keeps stdout for its report). */
export async function buildAgentImage(log: { step: (m: string) => void; note: (m: string) => void } = { step, note }): Promise<string> {
  const { step, note } = log;
  step(`providing the Dockerfile's base image ${NODE_BASE_IMAGE} locally (debootstrap + pinned Node 24; skipped when present)`);
  const base = await runOk('bash', [script('build-node-base-image.sh'), NODE_BASE_IMAGE]);
  note(tail(base.stdout, 1));
  step(`docker build -t ${AGENT_IMAGE} . (the project's Dockerfile)`);
  const docker = await dockerBin();
  // The classic builder builds FROM the local base image without contacting any registry;
  // --force-rm: a failed build leaves no stopped container behind.
  const build = (args: string[]): ReturnType<typeof runOk> =>
    runOk(docker, ['build', '--pull=false', '--force-rm', '--network', 'none', ...args, '.'], {
      cwd: REPO_ROOT,
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
    });
  // Tagging the build stage keeps it as the layer cache of the next run; older builds' images
  // (now untagged) are pruned by the Dockerfile's labels, so repeated runs do not fill the disk.
  await build(['--target', 'build', '-t', AGENT_BUILD_STAGE_IMAGE]);
  const built = await build(['-t', AGENT_IMAGE]);
  note(tail(built.stdout, 2));
  for (const title of ['node-registry-credentials-build', 'node-registry-credentials']) {
    await runOk(docker, ['image', 'prune', '-f', '--filter', `label=org.opencontainers.image.title=${title}`]);
  }
  return AGENT_IMAGE;
}
