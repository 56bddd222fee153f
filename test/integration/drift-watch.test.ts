// The drift watch on real files: another writer's change to a managed file is found, and events on
// the files beside them that the agent does not manage (the credential provider plugin touches one
// next to the agent's state at every pull) wake no comparison.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostFs } from '../../src/host/host-fs.ts';
import { DriftWatch } from '../../src/reconcile/drift-watch.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('drift watch', () => {
  let root = '';
  let watch: DriftWatch | undefined;
  afterEach(async () => {
    await watch?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('a pull touching the plugin\'s file beside the agent\'s state wakes no comparison; a change to a managed file is drift', async () => {
    root = mkdtempSync(join(tmpdir(), 'nrc-drift-'));
    mkdirSync(join(root, 'var/lib/node-registry-credentials/provider'), { recursive: true });
    const managed = '/var/lib/node-registry-credentials/provider/response.json';
    const bytes = Buffer.from('{"auth":{}}\n');
    writeFileSync(join(root, managed), bytes);
    const drifted: string[][] = [];
    watch = new DriftWatch({ host: new HostFs(root), onDrift: (p) => drifted.push([...p]), debounceMs: 50 });
    watch.update(new Map([[managed, bytes]]));
    await expect.poll(() => watch!.checks).toBe(1);
    await sleep(300); // chokidar's watch is ready

    const asked = join(root, 'var/lib/node-registry-credentials/provider-asked');
    for (let i = 0; i < 5; i++) {
      writeFileSync(asked, '');
      utimesSync(asked, new Date(), new Date(Date.now() + i * 1000));
      await sleep(100);
    }
    await sleep(300);
    expect(watch.checks).toBe(1);

    writeFileSync(join(root, managed), '{"auth":{"x":{}}}\n');
    await expect.poll(() => drifted).toEqual([[managed]]);
    expect(watch.checks).toBe(2);
  });
});
