// A node's container runtime: a real containerd 1.6 process (not in a container) with its own
// root, state and socket in a temp dir, and a CRI client speaking runtime.v1.ImageService to it.
//
// What is simulated: on a real node the agent sees the host's / at --host-root and containerd
// reads the real paths. Here containerd runs on this machine, so its config_path points INTO the
// temp host root (<hostRoot>/etc/containerd/certs.d), while the host root's own
// /etc/containerd/config.toml (what the agent parses) says /etc/containerd/certs.d. Both name
// the same directory, exactly as on a node.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { REPO_ROOT } from './e2e-prereqs.ts';

const PROTO = join(REPO_ROOT, 'test', 'e2e', 'fixtures', 'cri-image-service.proto');

export interface PullResult {
  readonly ok: boolean;
  /** image_ref on success, the runtime's error message on failure. */
  readonly detail: string;
}

export interface Containerd {
  readonly socket: string;
  readonly logPath: string;
  /** CRI PullImage with NO credentials in the request, as the kubelet does for a pod without pull secrets. */
  pull(image: string): Promise<PullResult>;
  /** Removes the image so the next pull must go to the registry again. */
  remove(image: string): Promise<void>;
  stop(): Promise<void>;
}

interface ImageServiceClient extends grpc.Client {
  PullImage(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { image_ref: string }) => void): void;
  RemoveImage(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void;
  ImageStatus(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { image?: { id: string } | null }) => void): void;
}

function imageServiceClient(socket: string): ImageServiceClient {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { ImageService: new (addr: string, creds: grpc.ChannelCredentials) => ImageServiceClient } };
  };
  return new pkg.runtime.v1.ImageService(`unix://${socket}`, grpc.credentials.createInsecure());
}

const deadline = (ms: number): grpc.CallOptions => ({ deadline: new Date(Date.now() + ms) });

/** The containerd config.toml for this run (config version 2, CRI registry config_path). */
export function containerdConfig(dir: string, configPath: string): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    'version = 2',
    `root = ${q(join(dir, 'root'))}`,
    `state = ${q(join(dir, 'state'))}`,
    '[grpc]',
    `  address = ${q(join(dir, 'containerd.sock'))}`,
    '[ttrpc]',
    `  address = ${q(join(dir, 'containerd.sock.ttrpc'))}`,
    '[debug]',
    '  level = "debug"',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(join(dir, 'opt'))}`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    // native works on any filesystem (no overlay-on-overlay surprises); pulls unpack into it.
    '    snapshotter = "native"',
    '  [plugins."io.containerd.grpc.v1.cri".registry]',
    `    config_path = ${q(configPath)}`,
    '',
  ].join('\n');
}

export async function startContainerd(dir: string, configPath: string): Promise<Containerd> {
  await mkdir(dir, { recursive: true });
  const configFile = join(dir, 'config.toml');
  await writeFile(configFile, containerdConfig(dir, configPath));
  const socket = join(dir, 'containerd.sock');
  const logPath = join(dir, 'containerd.log');
  const logStream = createWriteStream(logPath);
  const proc: ChildProcess = spawn('containerd', ['--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.pipe(logStream);
  proc.stderr?.pipe(logStream);
  let exited = false;
  proc.once('exit', () => {
    exited = true;
  });

  const client = imageServiceClient(socket);
  const status = (image: string): Promise<void> =>
    new Promise((resolve, reject) => client.ImageStatus({ image: { image } }, deadline(2_000), (err) => (err ? reject(err) : resolve())));

  // Ready when the CRI ImageService answers (bounded: 60 tries).
  let lastError = '';
  for (let i = 0; i < 60; i++) {
    if (exited) break;
    try {
      await stat(socket);
      await status('probe.invalid/none:0');
      lastError = '';
      break;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  if (exited || lastError) {
    proc.kill('SIGKILL');
    const log = await readFile(logPath, 'utf8').catch(() => '');
    throw new Error(`containerd did not serve CRI on ${socket}: ${lastError}\n${log.split('\n').slice(-30).join('\n')}`);
  }

  return {
    socket,
    logPath,
    pull: (image) =>
      new Promise((resolve) => {
        client.PullImage({ image: { image } }, deadline(60_000), (err, res) => {
          resolve(err ? { ok: false, detail: err.details || err.message } : { ok: true, detail: res?.image_ref ?? '' });
        });
      }),
    remove: (image) =>
      new Promise((resolve, reject) => {
        client.RemoveImage({ image: { image } }, deadline(30_000), (err) => (err ? reject(err) : resolve()));
      }),
    stop: async () => {
      client.close();
      if (!exited) {
        const done = once(proc, 'exit');
        proc.kill('SIGTERM');
        await done;
      }
      logStream.end();
    },
  };
}
