import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
// chokidar is loaded only by start(): the Secret-watch agent never needs it (0.6 MiB at rest).
import type { FSWatcher } from 'chokidar';
import { AgentError } from '../errors.ts';
import type { Source, SourceSnapshot } from '../model/credential.ts';
import { parseDockerConfig } from './dockerconfig.ts';

const SECRET_KEYS = ['.dockerconfigjson', '.dockercfg'];
/** chokidar's per-file throttle of 'change' events (index.js, _throttle(EV.CHANGE, path, 50)). */
const CHOKIDAR_CHANGE_THROTTLE_MS = 50;

/** The file to read: the path itself, or the Secret key inside a mounted Secret volume. */
export function resolveDockerConfigFile(input: string): string {
  try {
    if (statSync(input).isDirectory()) {
      for (const key of SECRET_KEYS) {
        const candidate = path.join(input, key);
        try {
          statSync(candidate);
          return candidate;
        } catch {
          // next key
        }
      }
      return path.join(input, SECRET_KEYS[0]!);
    }
  } catch {
    // missing: reported when read
  }
  return input;
}

export function readDockerConfigFile(input: string, source: string): SourceSnapshot {
  const file = resolveDockerConfigFile(input);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    return { source, credentials: [], errors: [new AgentError('NRC_E_INPUT_UNREADABLE', { subject: file, detail: `(${(err as NodeJS.ErrnoException).code ?? 'error'})`, cause: err })], ok: false };
  }
  // A Secret's key says which format it is; any other file may be either.
  const base = path.basename(file);
  return parseDockerConfig(bytes, source, base === '.dockerconfigjson' ? 'config.json' : base === '.dockercfg' ? 'dockercfg' : 'auto');
}

/**
 * A docker config file, or a Secret mounted as a volume. The watch is on the directory, so it
 * sees editors' rename-into-place and the kubelet's `..data` symlink swap alike.
 */
export class FileSource implements Source {
  readonly name: string;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private last: string | undefined;
  private firstEventAt: number | undefined;

  constructor(private readonly input: string, private readonly debounceMs = 50) {
    this.name = `file:${input}`;
  }

  async start(emit: (s: SourceSnapshot) => void): Promise<void> {
    const read = (): void => {
      const snap = readDockerConfigFile(this.input, this.name);
      // Re-emitting the same content would only cost a planning pass; skip it.
      const fingerprint = JSON.stringify([snap.ok, snap.credentials, snap.errors.map((e) => e.message)]);
      if (fingerprint === this.last) return;
      this.last = fingerprint;
      emit(snap);
    };
    let isDir = false;
    try {
      isDir = statSync(this.input).isDirectory();
    } catch {
      isDir = false;
    }
    const dir = isDir ? this.input : path.dirname(this.input);
    const { watch } = await import('chokidar');
    this.watcher = watch(dir, { ignoreInitial: true, depth: 0, followSymlinks: false, atomic: false });
    // Read debounceMs after the last event, but no later than 10 x debounceMs after the first:
    // a file rewritten without pause is still read (a half-written file reads as not ok and the
    // last good snapshot stays until the next read).
    this.watcher.on('all', () => {
      const now = Date.now();
      this.firstEventAt ??= now;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.firstEventAt = undefined;
        read();
      }, Math.max(0, Math.min(this.debounceMs, this.firstEventAt + 10 * this.debounceMs - now)));
      // chokidar drops a file's 'change' events for 50 ms after the one it reports: a rewrite
      // inside that window would go unseen, so read once more after it (unchanged content is skipped).
      clearTimeout(this.recheck);
      this.recheck = setTimeout(read, CHOKIDAR_CHANGE_THROTTLE_MS + 10);
    });
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    read();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    clearTimeout(this.recheck);
    await this.watcher?.close();
  }
}
