// A managed file's directory removed and made again (another tool, or the agent's own repair):
// a later rewrite of the file in the new directory is still drift. The watch must follow the new
// directory, which often reuses the old one's inode number.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostFs } from '../../src/host/host-fs.ts';
import { DriftWatch } from '../../src/reconcile/drift-watch.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('drift watch, directory removed', () => {
  let root = '';
  let watch: DriftWatch | undefined;
  afterEach(async () => {
    await watch?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('sees a rewrite in the directory made again after a removal', async () => {
    root = mkdtempSync(join(tmpdir(), 'nrc-drift-dir-'));
    const dir = join(root, 'etc/containerd/certs.d/reg.example.com');
    const managed = '/etc/containerd/certs.d/reg.example.com/hosts.toml';
    const good = Buffer.from('server = "https://reg.example.com"\n');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(root, managed), good);
    let drifts = 0;
    watch = new DriftWatch({ host: new HostFs(root), onDrift: () => drifts++, debounceMs: 20 });
    const expected = new Map([[managed, good]]);
    watch.update(expected);
    await sleep(100);

    rmSync(dir, { recursive: true });
    await expect.poll(() => drifts).toBe(1);
    // The repair: the directory and file made again, then the watch told what they hold.
    mkdirSync(dir);
    writeFileSync(join(root, managed), good);
    watch.update(expected);
    await sleep(100);

    writeFileSync(join(root, managed), 'server = "https://evil.example.com"\n');
    await expect.poll(() => drifts).toBe(2);
  });
});
