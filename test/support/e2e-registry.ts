// A private registry: the distribution registry (Debian's binary in a locally built image) run by
// testcontainers on the host network, TLS from a private CA, htpasswd (bcrypt) auth, custom port.
import { createServer } from 'node:net';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { runOk } from './e2e-exec.ts';
import { ensureRegistryImage } from './e2e-images.ts';
import type { Pki } from './e2e-pki.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function htpasswdLine(user: string, password: string): Promise<string> {
  // -i reads the password from stdin so it never appears in a process list.
  const r = await runOk('htpasswd', ['-niB', user], { input: `${password}\n`, display: `htpasswd -niB ${user}` });
  return r.stdout.trim();
}

export interface Registry {
  /** host:port, as images and docker config keys name it. */
  readonly host: string;
  /** Directory holding ca.crt, for skopeo --cert-dir. */
  readonly caDir: string;
  /** Replaces the registry's users (the registry re-reads htpasswd when it changes). */
  setUsers(users: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

export async function startRegistry(dir: string, pki: Pki, users: Record<string, string>): Promise<Registry> {
  const image = await ensureRegistryImage();
  const certs = join(dir, 'certs');
  const auth = join(dir, 'auth');
  const caDir = join(dir, 'ca');
  await mkdir(certs, { recursive: true });
  await mkdir(auth, { recursive: true });
  await mkdir(caDir, { recursive: true });
  await runOk('cp', [pki.serverCertPath, join(certs, 'server.crt')]);
  await runOk('cp', [pki.serverKeyPath, join(certs, 'server.key')]);
  await writeFile(join(caDir, 'ca.crt'), pki.caPem);

  const setUsers = async (u: Record<string, string>): Promise<void> => {
    const lines = await Promise.all(Object.entries(u).map(([name, pw]) => htpasswdLine(name, pw)));
    // Replace atomically: the registry must never read a half-written file. The directory (not the
    // file) is bind-mounted, so the container sees the renamed file.
    await writeFile(join(auth, 'htpasswd.tmp'), lines.join('\n') + '\n');
    await rename(join(auth, 'htpasswd.tmp'), join(auth, 'htpasswd'));
  };
  await setUsers(users);

  const port = await freePort();
  const container: StartedTestContainer = await new GenericContainer(image)
    .withNetworkMode('host') // loopback only: nothing leaves the machine, no bridge addresses
    .withEnvironment({ REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` })
    .withBindMounts([
      { source: certs, target: '/certs', mode: 'ro' },
      { source: auth, target: '/auth', mode: 'ro' },
    ])
    .withWaitStrategy(Wait.forLogMessage(/listening on/))
    .withStartupTimeout(60_000)
    .start();
  return {
    host: `127.0.0.1:${port}`,
    caDir,
    setUsers,
    stop: async () => {
      await container.stop({ timeout: 5_000 });
    },
  };
}

/** Pushes an OCI layout image with skopeo (trusting the CA, with the given user). */
export async function pushImage(registry: Registry, ociRef: string, ref: string, user: string, password: string): Promise<void> {
  await runOk('skopeo', ['copy', '--insecure-policy', '--dest-cert-dir', registry.caDir, '--dest-creds', `${user}:${password}`,
    ociRef, `docker://${ref}`], { display: `skopeo copy ${ociRef} docker://${ref}` });
}
