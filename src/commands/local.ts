import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { secretsOf } from '../model/secret-forms.ts';
import { maskFile } from '../plan/mask.ts';
import { FileSource, readDockerConfigFile } from '../sources/file-source.ts';
import { describeChange, EXIT_FAILED, EXIT_OK, type Io } from './oneshot.ts';
import { agentConfig } from './config.ts';
import type { Flags } from './options.ts';
import { startAgent, untilSignal } from './run.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLES = path.join(REPO, 'examples', 'local');

/** A sample node: containerd with config_path, a kubelet dir, and a foreign entry the agent must keep. */
function createSampleHost(root: string): void {
  mkdirSync(path.join(root, 'etc/containerd'), { recursive: true });
  mkdirSync(path.join(root, 'var/lib/kubelet'), { recursive: true });
  mkdirSync(path.join(root, 'root/.docker'), { recursive: true });
  mkdirSync(path.join(root, 'etc/docker'), { recursive: true });
  writeFileSync(
    path.join(root, 'etc/containerd/config.toml'),
    'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n',
  );
  writeFileSync(
    path.join(root, 'root/.docker/config.json'),
    `${JSON.stringify({ auths: { 'someone-elses.example.org': { auth: Buffer.from('other:kept-as-is').toString('base64') } }, credsStore: 'secretservice' }, null, '\t')}\n`,
    { mode: 0o600 },
  );
}

/** `npm start` with no arguments: the agent on a sample node under .local/, watching a sample file. */
export async function localCommand(_f: Flags, io: Io): Promise<number> {
  const dir = path.join(REPO, '.local');
  const hostRoot = path.join(dir, 'host');
  const dockerconfig = path.join(dir, 'dockerconfig.json');
  const registryConfig = path.join(dir, 'registry.toml');
  if (!existsSync(hostRoot)) createSampleHost(hostRoot);
  for (const [from, to] of [['dockerconfig.json', dockerconfig], ['registry.toml', registryConfig], ['ca.pem', path.join(dir, 'ca.pem')]] as const) {
    if (!existsSync(to)) copyFileSync(path.join(EXAMPLES, from), to);
  }
  io.out(`Local mode: a sample node at ${hostRoot}\n  credentials: ${dockerconfig} (edit it and save: the agent re-applies)\n  host options: ${registryConfig}\n  Ctrl-C stops; \`npm start -- cleanup --host-root ${hostRoot}\` undoes everything.\n\n`);
  const config = agentConfig({ 'host-root': hostRoot, dockerconfig, 'registry-config': registryConfig, 'debounce-ms': '100', 'resync-seconds': '60' });
  if (config instanceof AgentError) {
    io.err(`${config.message}\n`);
    return EXIT_FAILED;
  }
  const logger = createLogger(process.env['NRC_LOG_LEVEL'] ?? 'warn');
  const agent = await startAgent(config, logger, [new FileSource(dockerconfig)], (report) => {
    const known = secretsOf(readDockerConfigFile(dockerconfig, 'local').credentials);
    io.out(`--- ${report.at.toISOString()} applied ${report.registries} registr${report.registries === 1 ? 'y' : 'ies'} (config ${report.hash}), ${report.bytesWritten} bytes written\n`);
    for (const c of report.changes) {
      io.out(`  ${describeChange(c)}\n`);
      if (c.change === 'delete' || c.path.endsWith('.crt')) continue;
      const file = path.join(hostRoot, c.path);
      if (existsSync(file)) io.out(`${maskFile(c.path, readFileSync(file), known).replace(/^/gm, '    | ')}\n`);
    }
    if (report.changes.length === 0) io.out('  nothing to write: the node is already up to date\n');
    for (const e of report.errors) io.out(`  ! ${e.message}\n`);
  });
  if (agent instanceof AgentError) {
    io.err(`${agent.message}\n`);
    return EXIT_FAILED;
  }
  await untilSignal();
  await agent.stop();
  io.out('\nStopped. The sample node keeps its configuration.\n');
  return EXIT_OK;
}
