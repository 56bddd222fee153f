// doctor's and the planner's containerd config_path against the real `containerd config dump`:
// Debian's containerd 1.6 and containerd 2.x built from testenv/containerd2, on a corpus of
// real-world layouts. The rule that 2.2 defaults an unset config_path (plugins/cri/images
// plugin.go, applied at plugin start, so not in the dump) is checked in test/unit.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { HostFs } from '../../src/host/host-fs.ts';
import { readContainerdConfig, type ContainerdFamily } from '../../src/runtime/containerd.ts';
import { goTool, skipWithout } from '../support/go-tools.ts';

const CONTAINERD_16 = '/usr/bin/containerd';
const GPU_V2 = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\nBinaryName = "/usr/bin/nvidia-container-runtime"\n';
const REGISTRY_V2 = (p: string) => `[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "${p}"\n`;
const REGISTRY_V3 = (p: string) => `[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "${p}"\n`;

interface Layout {
  readonly name: string;
  /** Path (under the layout's root) → content; @ROOT@ stands for the root's absolute path. */
  readonly files: Record<string, string>;
  /** Which containerd versions read this layout at all (1.6 refuses version 3). */
  readonly families: readonly ('1.6' | '2.x')[];
}

const MAIN = 'etc/containerd/config.toml';
const LAYOUTS: readonly Layout[] = [
  { name: 'version 2, config_path, no imports', families: ['1.6', '2.x'], files: { [MAIN]: `version = 2\n${REGISTRY_V2('/etc/containerd/certs.d')}` } },
  {
    name: 'version 2 with a GPU runtime drop-in (1.x: the drop-in replaces the whole CRI table)',
    families: ['1.6', '2.x'],
    files: { [MAIN]: `version = 2\nimports = ["@ROOT@/etc/containerd/config.d/*.toml"]\n${REGISTRY_V2('/etc/containerd/certs.d')}`, 'etc/containerd/config.d/10-nvidia.toml': `version = 2\n${GPU_V2}` },
  },
  {
    name: 'EKS-style drop-in that sets config_path',
    families: ['1.6', '2.x'],
    files: { [MAIN]: 'version = 2\nimports = ["@ROOT@/etc/containerd/config.d/*.toml"]\n', 'etc/containerd/config.d/00-registry.toml': `version = 2\n${REGISTRY_V2('/etc/containerd/certs.d')}` },
  },
  {
    name: 'config_path set by one drop-in, CRI table rewritten by a later one',
    families: ['1.6', '2.x'],
    files: {
      [MAIN]: 'version = 2\nimports = ["@ROOT@/etc/containerd/config.d/*.toml"]\n',
      'etc/containerd/config.d/00-registry.toml': `version = 2\n${REGISTRY_V2('/etc/containerd/certs.d')}`,
      'etc/containerd/config.d/50-gpu.toml': `version = 2\n${GPU_V2}`,
    },
  },
  {
    name: 'relative import, resolved against the importing file',
    families: ['1.6', '2.x'],
    files: { [MAIN]: 'version = 2\nimports = ["config.d/registry.toml"]\n', 'etc/containerd/config.d/registry.toml': `version = 2\n${REGISTRY_V2('/etc/containerd/certs.d')}` },
  },
  {
    name: 'an import of an import',
    families: ['1.6', '2.x'],
    files: {
      [MAIN]: 'version = 2\nimports = ["@ROOT@/etc/containerd/a.toml"]\n',
      'etc/containerd/a.toml': 'version = 2\nimports = ["b.toml"]\n',
      'etc/containerd/b.toml': `version = 2\n${REGISTRY_V2('/opt/certs.d')}`,
    },
  },
  { name: 'version 1 (plugins.cri)', families: ['1.6', '2.x'], files: { [MAIN]: '[plugins.cri.registry]\nconfig_path = "/etc/containerd/certs.d"\n' } },
  { name: 'colon-separated list', families: ['1.6', '2.x'], files: { [MAIN]: `version = 2\n${REGISTRY_V2('/etc/containerd/certs.d:/etc/docker/certs.d')}` } },
  { name: 'mirrors and no config_path', families: ['1.6', '2.x'], files: { [MAIN]: 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://mirror.example.com"]\n' } },
  { name: 'version 3, config_path (containerd 2.x layout)', families: ['2.x'], files: { [MAIN]: `version = 3\n${REGISTRY_V3('/etc/containerd/certs.d')}` } },
  {
    name: 'version 3 with an EKS AL2023-style drop-in directory',
    families: ['2.x'],
    files: {
      [MAIN]: `version = 3\nimports = ["@ROOT@/etc/containerd/config.d/*.toml"]\nroot = "/var/lib/containerd"\n${REGISTRY_V3('/etc/containerd/certs.d')}`,
      'etc/containerd/config.d/00-runtime.toml': 'version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n',
    },
  },
  { name: 'version 3 without config_path', families: ['2.x'], files: { [MAIN]: 'version = 3\n' } },
  {
    name: 'k3s-style generated config',
    families: ['1.6', '2.x'],
    files: { [MAIN]: `version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\nsnapshotter = "overlayfs"\n${REGISTRY_V2('/var/lib/rancher/k3s/agent/etc/containerd/certs.d')}` },
  },
];

/** config_path as the real containerd's `config dump` shows it ('' when unset). */
function dumpConfigPath(binary: string, config: string): string {
  const out = execFileSync(binary, ['--config', config, 'config', 'dump'], { cwd: '/', encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const doc = parseToml(out) as { version?: number; plugins?: Record<string, { registry?: { config_path?: string } }> };
  const plugin = (doc.version ?? 1) >= 3 ? 'io.containerd.cri.v1.images' : 'io.containerd.grpc.v1.cri';
  return doc.plugins?.[plugin]?.registry?.config_path ?? '';
}

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function lay(layout: Layout): string {
  const root = mkdtempSync(join(tmpdir(), 'nrc-ctrd-'));
  roots.push(root);
  for (const [rel, text] of Object.entries(layout.files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text.replaceAll('@ROOT@', root));
  }
  return root;
}

const BINARIES: Record<'1.6' | '2.x', { binary: () => string; family: ContainerdFamily }> = {
  '1.6': { binary: () => CONTAINERD_16, family: '1.x' },
  '2.x': { binary: () => goTool('containerd2/containerd'), family: '2.2' },
};

describe.skipIf(skipWithout(['containerd2/containerd']))('containerd config_path: the agent agrees with `containerd config dump`', () => {
  for (const layout of LAYOUTS) {
    for (const version of layout.families) {
      it(`${layout.name} (containerd ${version})`, () => {
        const root = lay(layout);
        const config = join(root, MAIN);
        const real = dumpConfigPath(BINARIES[version].binary(), config);
        // The agent reads the same files through a host reader rooted at the real /.
        const info = readContainerdConfig(new HostFs('/'), config, 'containerd', BINARIES[version].family);
        expect(info.configuredPath).toBe(real);
      });
    }
  }

  it('the GPU drop-in erases config_path on 1.6 and keeps it on 2.x (the suite can tell them apart)', () => {
    const root = lay(LAYOUTS[1]!);
    expect(dumpConfigPath(CONTAINERD_16, join(root, MAIN))).toBe('');
    expect(dumpConfigPath(goTool('containerd2/containerd'), join(root, MAIN))).toBe('/etc/containerd/certs.d');
  });
});
