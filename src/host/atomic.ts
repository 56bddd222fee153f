import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const TMP_MARK = '.nrc-tmp-';

export interface WriteOptions {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes temp files a killed writer left next to `file` (they are never the real file). */
export function removeStaleTemps(file: string): void {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}${TMP_MARK}`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(prefix)) fs.rmSync(path.join(dir, n), { force: true });
}

/** Removes every temp file a killed writer left in `dir` (before removing the directory itself). */
export function removeStaleTempsIn(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith('.') && n.includes(TMP_MARK)) fs.rmSync(path.join(dir, n), { force: true });
}

/**
 * Replaces `file` atomically: a temp file in the same directory, fsync, rename, fsync of the
 * directory. Readers see the complete old or the complete new content, never a mix.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, opts: WriteOptions = {}): void {
  const dir = path.dirname(file);
  removeStaleTemps(file);
  const tmp = path.join(dir, `.${path.basename(file)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    try {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
      const uid = opts.uid ?? process.geteuid?.() ?? 0;
      const gid = opts.gid ?? process.getegid?.() ?? 0;
      if (uid !== process.geteuid?.() || gid !== process.getegid?.()) fs.fchownSync(fd, uid, gid);
      fs.fchmodSync(fd, opts.mode ?? 0o600);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: WriteOptions = {}): Promise<void> {
  writeFileAtomicSync(file, data, opts);
}

export function unlinkDurably(file: string): void {
  fs.unlinkSync(file);
  fsyncDir(path.dirname(file));
}
