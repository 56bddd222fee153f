import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSettings, inputConfig } from '../../src/commands/config.ts';
import { credentialFindings, diagnose, ecrFindings } from '../../src/commands/doctor.ts';
import { AgentError } from '../../src/errors.ts';
import { ecrStateFile, saveTokens } from '../../src/host/ecr-token-cache.ts';
import { HostFs, type HostReader } from '../../src/host/host-fs.ts';
import { detectContainerd } from '../../src/runtime/containerd.ts';
import { detectTargets, DEFAULT_TARGET_OPTIONS, kubeletSearchPath } from '../../src/runtime/targets.ts';

/** A read-only host made of path → text; directories are implied. */
function reader(files: Record<string, string>): HostReader {
  return {
    readText: (p) => files[p],
    listDir: (p) => {
      const names = Object.keys(files).filter((f) => f.startsWith(`${p}/`)).map((f) => f.slice(p.length + 1).split('/')[0]!);
      return names.length ? [...new Set(names)] : undefined;
    },
  };
}

describe('containerd config_path detection', () => {
  it.each([
    ['version 3', 'version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "/etc/containerd/certs.d"\n', '/etc/containerd/certs.d'],
    ['version 2', 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/ctd/hosts"\n', '/etc/ctd/hosts'],
    ['version 1', '[plugins.cri.registry]\nconfig_path = "/etc/v1/certs.d"\n', '/etc/v1/certs.d'],
    ['version 3 default', 'version = 3\n', '/etc/containerd/certs.d'],
  ])('%s', (_name, toml, dir) => {
    expect(detectContainerd(reader({ '/etc/containerd/config.toml': toml }))?.hostsDir).toBe(dir);
  });

  it('reads imports (globbed, later files win), as EKS AL2023 configures it', () => {
    const info = detectContainerd(
      reader({
        '/etc/containerd/config.toml': 'version = 2\nimports = ["/etc/containerd/config.d/*.toml"]\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/first"\n',
        '/etc/containerd/config.d/00-base.toml': 'version = 2\n',
        '/etc/containerd/config.d/99-registry.toml': 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n',
      }),
    );
    expect(info?.hostsDir).toBe('/etc/containerd/certs.d');
    expect(info?.filesRead).toEqual(['/etc/containerd/config.toml', '/etc/containerd/config.d/00-base.toml', '/etc/containerd/config.d/99-registry.toml']);
  });

  it('writes to the first directory of a colon list and warns on containerd 2 (config version 3)', () => {
    const info = detectContainerd(reader({ '/etc/containerd/config.toml': 'version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "/a:/b"\n' }));
    expect(info?.hostsDir).toBe('/a');
    expect(info?.problems.map((p) => p.code)).toEqual(['NRC_E_CONTAINERD_COLON_LIST']);
  });

  it('reports a version 2 config without config_path: hosts.toml would be ignored', () => {
    const info = detectContainerd(reader({ '/etc/containerd/config.toml': 'version = 2\n' }));
    expect(info?.hostsDir).toBeUndefined();
    expect(info?.problems.map((p) => p.code)).toEqual(['NRC_E_CONTAINERD_NO_CONFIG_PATH']);
  });

  it('on containerd 2.2 defaults an unset config_path, unless mirrors are set (plugins/cri/images, at plugin start)', () => {
    const bare = detectContainerd(reader({ '/etc/containerd/config.toml': 'version = 3\n' }));
    expect(bare).toMatchObject({ family: '2.2', configuredPath: '', configPaths: ['/etc/containerd/certs.d', '/etc/docker/certs.d'], hostsDir: '/etc/containerd/certs.d' });
    const mirrored = detectContainerd(reader({ '/etc/containerd/config.toml': 'version = 3\n[plugins."io.containerd.cri.v1.images".registry.mirrors."docker.io"]\nendpoint = ["https://m.example.com"]\n' }));
    expect(mirrored?.hostsDir).toBeUndefined();
    expect(mirrored?.problems.map((p) => p.code)).toEqual(['NRC_E_CONTAINERD_NO_CONFIG_PATH']);
  });

  it('follows --containerd-version: containerd 2.0 has no default, and a version 2 config on 2.x is merged, not replaced', () => {
    expect(detectContainerd(reader({ '/etc/containerd/config.toml': 'version = 3\n' }), '2.0')?.hostsDir).toBeUndefined();
    const files = {
      '/etc/containerd/config.toml': 'version = 2\nimports = ["/etc/containerd/config.d/*.toml"]\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n',
      '/etc/containerd/config.d/gpu.toml': 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n',
    };
    expect(detectContainerd(reader(files))?.hostsDir).toBeUndefined();
    expect(detectContainerd(reader(files), '2.2')?.hostsDir).toBe('/etc/containerd/certs.d');
  });

  it('reports a broken config and writes no hosts.toml', () => {
    const info = detectContainerd(reader({ '/etc/containerd/config.toml': 'version = [' }));
    expect(info?.hostsDir).toBeUndefined();
    expect(info?.problems.map((p) => p.code)).toContain('NRC_E_CONTAINERD_CONFIG_INVALID');
  });

  it('finds k3s and RKE2 certs.d', () => {
    expect(detectContainerd(reader({ '/var/lib/rancher/k3s/agent/etc/containerd/config.toml': 'version = 2\n' }))).toMatchObject({
      flavor: 'k3s',
      hostsDir: '/var/lib/rancher/k3s/agent/etc/containerd/certs.d',
      problems: [],
    });
    expect(detectContainerd(reader({ '/var/lib/rancher/rke2/agent/etc/containerd/config.toml': 'version = 3\n' }))?.flavor).toBe('rke2');
  });

  it('finds no containerd on a node without its config', () => {
    expect(detectContainerd(reader({}))).toBeUndefined();
  });
});

describe('targets', () => {
  it('follows the kubelet search order: config.json files first, then .dockercfg', () => {
    expect(kubeletSearchPath(DEFAULT_TARGET_OPTIONS)).toEqual([
      '/var/lib/kubelet/config.json',
      '/config.json',
      '/root/.docker/config.json',
      '/.docker/config.json',
      '/var/lib/kubelet/.dockercfg',
      '/.dockercfg',
      '/root/.dockercfg',
    ]);
  });

  it('writes CAs for Docker and CRI-O/podman only where they are installed', () => {
    const t = detectTargets(reader({ '/etc/containers/registries.conf': '' }), DEFAULT_TARGET_OPTIONS);
    expect(t.targets.certsDirs).toEqual(['/etc/containers/certs.d']);
  });
});

describe('doctor', () => {
  function host(files: Record<string, string>): HostFs {
    const root = mkdtempSync(join(tmpdir(), 'nrc-doctor-'));
    for (const [p, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, p)), { recursive: true });
      writeFileSync(join(root, p), text);
    }
    return new HostFs(root);
  }

  it('names the runtime, config_path, the file the kubelet reads today and writable targets', () => {
    const findings = diagnose(
      host({
        '/etc/containerd/config.toml': 'version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "/etc/containerd/certs.d:/etc/docker/certs.d"\n',
        '/root/.docker/config.json': '{"auths": {}}',
        '/var/lib/kubelet/pods/.keep': '',
      }),
      DEFAULT_TARGET_OPTIONS,
    );
    const text = findings.map((f) => `${f.level} ${f.what}`).join('\n');
    expect(text).toContain('container runtime: containerd');
    expect(text).toContain('hosts.toml files go to /etc/containerd/certs.d');
    expect(findings.find((f) => f.code === 'NRC_E_CONTAINERD_COLON_LIST')?.level).toBe('warn');
    expect(text).toContain('the kubelet reads /root/.docker/config.json today');
    expect(text).toContain('ok writable: /var/lib/kubelet/config.json');
  });

  it('flags a kubelet config.json that group or others can read', () => {
    const h = host({ '/var/lib/kubelet/config.json': '{"auths": {}}' });
    const findings = diagnose(h, DEFAULT_TARGET_OPTIONS);
    expect(findings.some((f) => f.level === 'ok' && f.what.includes('the kubelet reads /var/lib/kubelet/config.json'))).toBe(true);
    expect(findings.some((f) => f.level === 'warn' && f.what.includes('readable by group/others'))).toBe(true);
  });
});

describe('doctor: tokens and credentials', () => {
  it('reports cached ECR tokens: expired as an error, late refresh as a warning, the rest with their expiry', async () => {
    const root = mkdtempSync(join(tmpdir(), 'nrc-doctor-ecr-'));
    const now = Date.UTC(2026, 10, 27, 12);
    const token = (expiresAt: number) => ({ username: 'AWS', password: 'not-shown-token', expiresAt, fingerprint: 'f' });
    await saveTokens(
      ecrStateFile(root),
      new Map([
        ['111111111111.dkr.ecr.us-east-1.amazonaws.com', token(now - 1000)],
        ['222222222222.dkr.ecr.us-east-1.amazonaws.com', token(now + 30 * 60_000)],
        ['333333333333.dkr.ecr.us-east-1.amazonaws.com', token(now + 6 * 3_600_000)],
      ]),
    );
    const findings = await ecrFindings(root, now);
    expect(findings.map((f) => [f.level, f.code])).toEqual([
      ['error', 'NRC_E_ECR_TOKEN_EXPIRED'],
      ['warn', undefined],
      ['ok', undefined],
    ]);
    expect(JSON.stringify(findings)).not.toContain('not-shown-token');
  });

  it('with --check-credentials, reports a registry that cannot be reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nrc-doctor-check-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { '127.0.0.1:9': { auth: Buffer.from('u:doctor-secret').toString('base64') } } }));
    const flags = { 'host-root': dir, dockerconfig: join(dir, 'config.json'), 'check-timeout-ms': '2000' };
    const check = checkSettings(flags);
    if (check instanceof AgentError) throw check;
    const findings = await credentialFindings(inputConfig(flags), check);
    expect(findings).toMatchObject([{ level: 'warn', code: 'NRC_E_CREDENTIAL_CHECK_FAILED' }]);
    expect(JSON.stringify(findings)).not.toContain('doctor-secret');
  });
});
