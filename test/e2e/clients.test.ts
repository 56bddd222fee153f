// Issue 5, part 3: the files the agent writes are accepted by real clients of their formats.
// skopeo reads the kubelet's config.json (--authfile) and the agent's CA (--cert-dir); the docker
// CLI reads the agent's config.json through DOCKER_CONFIG. Each also fails without it.
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { cli, dockerConfigJson, registryConfigToml } from '../support/e2e-agent.ts';
import { note, run, runOk, step, tail } from '../support/e2e-exec.ts';
import { makeHostRoot } from '../support/e2e-hostroot.ts';
import { makeOciImage, type OciImage } from '../support/e2e-oci.ts';
import { makePki } from '../support/e2e-pki.ts';
import { dockerBin } from '../support/e2e-prereqs.ts';
import { pushImage, startRegistry, type Registry } from '../support/e2e-registry.ts';

const skipReason = inject('e2eSkipReason');
const USER = 'e2e-client';
const PASSWORD = 'client-Pa55word';

describe.skipIf(skipReason !== '')('real clients accept the credential files the agent writes', () => {
  let work: string;
  let hostRoot: string;
  let registry: Registry;
  let oci: OciImage;
  let image: string;
  let clientEnv: NodeJS.ProcessEnv;
  let emptyDir: string;
  let realCertsDir = '';

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nrc-e2e-clients-'));
    hostRoot = join(work, 'host');
    const pki = await makePki(work);
    registry = await startRegistry(join(work, 'registry'), pki, { [USER]: PASSWORD });
    image = `${registry.host}/private/client:v1`;
    oci = await makeOciImage(join(work, 'oci'), 'v1', 'hello, clients\n');
    await pushImage(registry, `oci:${oci.dir}:v1`, image, USER, PASSWORD);
    await makeHostRoot(hostRoot);
    const secret = join(work, 'dockerconfig.json');
    const regConfig = join(work, 'registries.toml');
    await writeFile(secret, dockerConfigJson({ [registry.host]: { username: USER, password: PASSWORD } }));
    await writeFile(regConfig, registryConfigToml({ [registry.host]: { caPem: pki.caPem } })); // inline PEM this time
    step(`agent apply for ${registry.host} (Secret + inline CA)`);
    const r = await cli(['apply', '--host-root', hostRoot, '--dockerconfig', secret, '--registry-config', regConfig]);
    expect(r.code, `apply failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    // Clients must see only what we hand them: no login state of this machine's user.
    const home = join(work, 'home');
    emptyDir = join(work, 'empty');
    await mkdir(home, { recursive: true });
    await mkdir(emptyDir, { recursive: true });
    await writeFile(join(emptyDir, 'config.json'), '{"auths":{}}\n');
    clientEnv = { ...process.env, HOME: home, XDG_RUNTIME_DIR: join(work, 'xdg'), REGISTRY_AUTH_FILE: '' };
  });

  afterAll(async () => {
    if (realCertsDir) await rm(realCertsDir, { recursive: true, force: true });
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const skopeo = (args: string[]): ReturnType<typeof run> =>
    run('skopeo', ['--insecure-policy', ...args], { env: clientEnv });

  test('skopeo copies the image with --authfile <host>/var/lib/kubelet/config.json and the agent\'s CA, and fails without either', async () => {
    const authfile = join(hostRoot, 'var/lib/kubelet/config.json');
    const certDir = join(hostRoot, 'etc/containers/certs.d', registry.host);
    await access(join(certDir, 'ca.crt'));
    step('CLIENTS: skopeo with the kubelet config.json and /etc/containers/certs.d/<host>/ca.crt written by the agent');
    const dest = join(work, 'pulled');
    const ok = await skopeo(['copy', '--authfile', authfile, '--src-cert-dir', certDir, `docker://${image}`, `oci:${dest}:v1`]);
    note(`skopeo copy with the agent's files → exit ${ok.code}`);
    expect(ok.code, ok.stderr).toBe(0);
    const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]?.digest).toBe(oci.manifestDigest);

    const noAuth = await skopeo(['inspect', '--authfile', join(emptyDir, 'config.json'), '--cert-dir', certDir, `docker://${image}`]);
    note(`skopeo inspect without the credential → exit ${noAuth.code}: ${tail(noAuth.stderr, 1)}`);
    expect(noAuth.code).not.toBe(0);
    expect(noAuth.stderr).toMatch(/unauthorized|authentication required|401/i);

    const noCa = await skopeo(['inspect', '--authfile', authfile, '--cert-dir', emptyDir, `docker://${image}`]);
    note(`skopeo inspect without the CA → exit ${noCa.code}: ${tail(noCa.stderr, 1)}`);
    expect(noCa.code).not.toBe(0);
    expect(noCa.stderr).toMatch(/x509|certificate/i);
  });

  test('the docker CLI pulls with DOCKER_CONFIG at the agent\'s config.json, and fails without it', async () => {
    const docker = await dockerBin();
    // dockerd reads CAs from the REAL /etc/docker/certs.d; copy the agent's file there for this test.
    // Note: dockerd treats 127.0.0.0/8 registries as insecure (no TLS verification), so here docker
    // proves the credential file; the CA is proven by skopeo above and containerd in node-pull.
    const agentCa = join(hostRoot, 'etc/docker/certs.d', registry.host, 'ca.crt');
    const target = join('/etc/docker/certs.d', registry.host);
    try {
      await access(target);
    } catch {
      // Ours to remove afterwards (the topmost directory we create); never touch one that existed.
      realCertsDir = (await mkdir(target, { recursive: true })) ?? target;
      await writeFile(join(target, 'ca.crt'), await readFile(agentCa));
    }
    const pull = (configDir: string): ReturnType<typeof run> =>
      run(docker, ['pull', image], { env: { ...clientEnv, DOCKER_CONFIG: configDir } });

    step('CLIENTS: docker pull with DOCKER_CONFIG=<empty config>');
    const without = await pull(emptyDir);
    note(`docker pull without the agent's config.json → exit ${without.code}: ${tail(without.stderr, 1)}`);
    // dockerd reports the error of its last endpoint (the plain-HTTP fallback it uses for loopback
    // registries), not the 401; the run with the agent's file below differs only in DOCKER_CONFIG.
    expect(without.code).not.toBe(0);

    for (const dir of ['var/lib/kubelet', 'root/.docker']) {
      step(`CLIENTS: docker pull with DOCKER_CONFIG=<host>/${dir} (written by the agent)`);
      const withIt = await pull(join(hostRoot, dir));
      note(`docker pull → exit ${withIt.code}: ${tail(withIt.stdout, 1)}`);
      expect(withIt.code, withIt.stderr).toBe(0);
      await runOk(docker, ['image', 'rm', image]);
    }
  });
});
