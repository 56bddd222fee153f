// Section 9: the image every new node pulls before its first private pull can work. Builds the
// project's Dockerfile as the e2e suite does, then: its size (`docker image inspect`), what goes
// over the wire (the manifest's layers), and the time for containerd to pull it (CRI PullImage,
// download and unpack) from a registry on this machine. Images named in NRC_BENCH_IMAGE_COMPARE
// (comma-separated, already in dockerd) are measured the same way in the same run.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startContainerd } from '../../test/support/e2e-containerd.ts';
import { runOk, tail } from '../../test/support/e2e-exec.ts';
import { AGENT_IMAGE, buildAgentImage } from '../../test/support/e2e-images.ts';
import { makePki } from '../../test/support/e2e-pki.ts';
import { dockerBin } from '../../test/support/e2e-prereqs.ts';
import { pushImage, startRegistry } from '../../test/support/e2e-registry.ts';
import { dist, type Dist, now, round } from './lib.ts';

const USER = 'bench';
const PASSWORD = 'bench-image-pull';

export interface ImageRow {
  readonly image: string;
  /** `docker image inspect` .Size: the unpacked layers. */
  readonly sizeMiB: number;
  /** Config and layers as the registry serves them (compressed). */
  readonly compressedMiB: number;
  readonly layers: number;
  /** CRI PullImage from the local registry to the image ready (download, verify, unpack), ms. */
  readonly pullMs: Dist;
}

export interface ImageResult {
  readonly rows: ImageRow[];
  readonly targetMiB: number;
  readonly buildSeconds: number;
  readonly notes: string[];
}

export async function imageSection(pulls: number, log: (s: string) => void): Promise<ImageResult> {
  const notes: string[] = [];
  // No Ryuk reaper (its image would be pulled from Docker Hub); the registry is stopped below.
  process.env['TESTCONTAINERS_RYUK_DISABLED'] ??= 'true';
  const t0 = now();
  const built = await buildAgentImage({ step: (m) => log(`image: ${m}`), note: (m) => log(`image:   ${m}`) });
  const buildSeconds = round((now() - t0) / 1000, 1);
  const images = [built, ...(process.env['NRC_BENCH_IMAGE_COMPARE'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)];
  const docker = await dockerBin();
  const dir = await mkdtemp(join(tmpdir(), 'nrc-bench-image-'));
  const pki = await makePki(dir);
  const registry = await startRegistry(join(dir, 'registry'), pki, { [USER]: PASSWORD });
  // containerd reaches the registry as a node would with the agent's hosts.toml (CA, Basic header).
  const certsD = join(dir, 'certs.d');
  await mkdir(join(certsD, registry.host), { recursive: true });
  const url = `https://${registry.host}`;
  await writeFile(
    join(certsD, registry.host, 'hosts.toml'),
    `server = "${url}"\n[host."${url}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${pki.caCertPath}"\n  [host."${url}".header]\n    Authorization = "Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}"\n`,
  );
  const containerd = await startContainerd(join(dir, 'containerd'), certsD);
  const rows: ImageRow[] = [];
  try {
    for (const [i, image] of images.entries()) {
      const size = Number((await runOk(docker, ['image', 'inspect', '-f', '{{.Size}}', image])).stdout.trim());
      const ref = `${registry.host}/bench/image-${i}:latest`;
      log(`image: pushing ${image} to ${ref}`);
      await pushImage(registry, `docker-daemon:${image}`, ref, USER, PASSWORD);
      const manifest = JSON.parse((await runOk('skopeo', ['inspect', '--raw', '--cert-dir', registry.caDir, '--creds', `${USER}:${PASSWORD}`, `docker://${ref}`])).stdout) as {
        config?: { size?: number };
        layers?: { size?: number }[];
      };
      const layers = manifest.layers ?? [];
      const compressed = (manifest.config?.size ?? 0) + layers.reduce((n, l) => n + (l.size ?? 0), 0);
      const times: number[] = [];
      for (let p = 0; p < pulls; p++) {
        const s = now();
        const r = await containerd.pull(ref);
        if (!r.ok) throw new Error(`containerd could not pull ${ref}: ${tail(r.detail, 2)}`);
        times.push(now() - s);
        // CRI's RemoveImage deletes synchronously (content garbage-collected): the next pull downloads again.
        await containerd.remove(ref);
      }
      rows.push({ image, sizeMiB: round(size / 2 ** 20, 1), compressedMiB: round(compressed / 2 ** 20, 1), layers: layers.length, pullMs: dist(times) });
    }
  } finally {
    await containerd.stop();
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
  notes.push(`${AGENT_IMAGE} built from the working tree's Dockerfile in ${buildSeconds} s (base image and layer cache as the e2e suite leaves them). Pulls: containerd 1.6 (native snapshotter) through CRI, from a registry container on loopback (TLS, Basic auth), ${pulls} each, the image removed between pulls.`);
  return { rows, targetMiB: 160, buildSeconds, notes };
}
