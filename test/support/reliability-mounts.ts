// Small tmpfs mounts for the disk-fault tests (ENOSPC, EROFS). Needs root with CAP_SYS_ADMIN,
// which CI has (it runs as root on the session's machine). Without it the tests fail in CI
// (CI=true) with the reason, and are skipped with the reason elsewhere.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface MountSupport {
  readonly ok: boolean;
  readonly why: string;
}

let probed: MountSupport | undefined;

/** Tries a 64 KiB tmpfs mount, a read-only remount and an unmount on a scratch directory. */
export function probeMounts(): MountSupport {
  if (probed) return probed;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nrc-rel-mountprobe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    try {
      execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' });
    } finally {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    }
    probed = { ok: true, why: '' };
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err);
    probed = {
      ok: false,
      why: `cannot mount a tmpfs here (${stderr}); the ENOSPC/EROFS tests need root with CAP_SYS_ADMIN (run CI as root, or the container with --privileged / --cap-add SYS_ADMIN)`,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return probed;
}

/** Mounts made by a test, unmounted (lazily, deepest first) by `unmountAll`. */
const mounted: string[] = [];

export function mountTmpfs(dir: string, size = '64k'): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  mounted.push(dir);
}

export function remount(dir: string, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,${mode}`, dir], { stdio: 'pipe' });
}

export function unmountAll(): void {
  while (mounted.length > 0) {
    const dir = mounted.pop()!;
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    } catch {
      // already gone
    }
  }
}

/** Fills a filesystem to the last byte with a file named `name`; returns its path. */
export function fillUp(dir: string, name = 'filler'): string {
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1024, 0x61);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  // Down to the last byte, so that even a tiny file does not fit.
  const fd2 = fs.openSync(file, 'a');
  try {
    for (;;) fs.writeSync(fd2, Buffer.from('b'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd2);
  }
  return file;
}
