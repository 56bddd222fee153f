// Latency from a Secret change in the API server to the kubelet's config.json on disk, through
// the real `run` process and the real client against the in-process fake API server.
//   npx tsx scripts/bench-kubernetes-latency.ts [edits=20]
// It includes run's debounce (default 200 ms, as deployed).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeApiServer } from '../test/support/fake-apiserver.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const edits = Number(process.argv[2] ?? 20);
const api = new FakeApiServer();
await api.start();
const dir = await mkdtemp(join(tmpdir(), 'nrc-bench-k8s-'));
await mkdir(join(dir, 'host/var/lib/kubelet'), { recursive: true });
await writeFile(join(dir, 'kubeconfig'), api.kubeconfigYaml());
const configFile = join(dir, 'host/var/lib/kubelet/config.json');
const put = (i: number): void => {
  api.putDockerConfigSecret('okteto', 'okteto-dockerconfig-static', { auths: { 'reg.example.com': { username: 'u', password: `p${i}` } } });
};
const current = async (): Promise<string> => readFile(configFile, 'utf8').catch(() => '');
const waitFor = async (marker: string): Promise<void> => {
  const want = Buffer.from(`u:${marker}`).toString('base64');
  for (;;) {
    if ((await current()).includes(want)) return;
    await new Promise((r) => setTimeout(r, 2));
  }
};

put(0);
const bin = join(REPO, 'node_modules/.bin');
const child = spawn(join(bin, 'node'), ['--import', 'tsx', join(REPO, 'src/cli.ts'), 'run', '--host-root', join(dir, 'host'), '--kubeconfig', join(dir, 'kubeconfig'), '--log-level', 'warn'], {
  cwd: REPO,
  env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, KUBERNETES_SERVICE_HOST: '' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
await waitFor('p0');
const samples: number[] = [];
for (let i = 1; i <= edits; i++) {
  const t0 = performance.now();
  put(i);
  await waitFor(`p${i}`);
  samples.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 50));
}
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await api.stop();
await rm(dir, { recursive: true, force: true });
samples.sort((a, b) => a - b);
const pct = (p: number): number => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
console.log(JSON.stringify({ edits, debounceMs: 200, medianMs: Math.round(pct(50)), p95Ms: Math.round(pct(95)), maxMs: Math.round(samples.at(-1)!) }));
