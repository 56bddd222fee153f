// The agent's logger: pino's JSON lines (same fields, levels, error serializer and redaction),
// written by this file. pino and the modules it loads (sonic-boom, thread-stream, ...) cost about
// 1 MiB of RSS at rest on every node (docs/benchmarks.md); the agent uses none of the rest.
import { writeSync } from 'node:fs';

/** Where the lines go: stderr by default; tests pass a stream and scan what this very logger writes. */
export interface DestinationStream {
  write(line: string): unknown;
}

export interface LogFn {
  (msg: string): void;
  (obj: object, msg?: string): void;
}

export interface Logger {
  /** The level name this logger writes from (`trace` … `fatal`, or `silent`). */
  readonly level: string;
  readonly trace: LogFn;
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
  readonly fatal: LogFn;
  /** A logger whose lines also carry `bindings` (redacted like the rest). */
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled(level: string): boolean;
}

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY } as const;
type LevelName = keyof typeof LEVELS;
const isLevel = (name: string): name is LevelName => Object.hasOwn(LEVELS, name);

/** Keys blanked out even if a secret ever reaches a log call by mistake: at the top, and one level down. */
const REDACT_TOP = new Set(['password', 'auth', 'token', 'identityToken', 'identitytoken', 'secretAccessKey', 'credentials']);
const REDACT_NESTED = new Set(['password', 'auth', 'token', 'identityToken', 'secretAccessKey', 'credentials']);
const CENSOR = '[redacted]';

type Fields = Record<string, unknown>;

const isErrorLike = (v: unknown): v is Error => typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string';

/** pino's `err` serializer (pino-std-serializers): type, message and stack with their causes, and the error's own fields. */
function serializeError(err: Error, seen = new Set<Error>()): Fields {
  seen.add(err);
  const out: Fields = { type: err.constructor?.name ?? 'Error', message: err.message, stack: err.stack ?? '' };
  let cause: unknown = err.cause;
  while (isErrorLike(cause) && !seen.has(cause)) {
    seen.add(cause);
    out['message'] = `${String(out['message'])}: ${cause.message}`;
    out['stack'] = `${String(out['stack'])}\ncaused by: ${cause.stack ?? ''}`;
    cause = cause.cause;
  }
  for (const key of Object.keys(err)) {
    if (key in out || key === 'cause') continue;
    const v = (err as unknown as Fields)[key];
    out[key] = isErrorLike(v) && !seen.has(v) ? serializeError(v, seen) : v;
  }
  return out;
}

function redact(fields: Fields): Fields {
  const out: Fields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && REDACT_TOP.has(key)) out[key] = CENSOR;
    else if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).some((k) => REDACT_NESTED.has(k))) {
      const copy: Fields = { ...(value as Fields) };
      for (const k of Object.keys(copy)) if (copy[k] !== undefined && REDACT_NESTED.has(k)) copy[k] = CENSOR;
      out[key] = copy;
    } else out[key] = value;
  }
  return out;
}

function stringify(fields: Fields): string {
  const replacer = (_key: string, v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);
  try {
    return JSON.stringify(fields, replacer);
  } catch {
    // A circular structure: each object already on the path is written as "[Circular]".
    const path: object[] = [];
    return JSON.stringify(fields, function (this: unknown, _key: string, v: unknown): unknown {
      while (path.length > 0 && path.at(-1) !== this) path.pop();
      if (typeof v === 'object' && v !== null) {
        if (path.includes(v)) return '[Circular]';
        path.push(v);
      }
      return replacer(_key, v);
    });
  }
}

/** fd 2, synchronously as pino.destination(2) writes: a line is out before the process can exit. */
const stderr: DestinationStream = {
  write(line: string): void {
    let buf = Buffer.from(line);
    while (buf.length > 0) {
      try {
        buf = buf.subarray(writeSync(2, buf));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  },
};

function makeLogger(level: LevelName, bindings: Fields, destination: DestinationStream): Logger {
  const threshold = LEVELS[level];
  const write = (value: number, objOrMsg: object | string | undefined | null, msg?: string): void => {
    if (value < threshold) return;
    let fields: Fields = {};
    let message = msg;
    if (typeof objOrMsg === 'string') message = objOrMsg;
    else if (isErrorLike(objOrMsg) && objOrMsg instanceof Error) {
      fields = { err: objOrMsg };
      message ??= objOrMsg.message;
    } else if (objOrMsg) fields = { ...(objOrMsg as Fields) };
    if (isErrorLike(fields['err'])) fields['err'] = serializeError(fields['err']);
    if (message !== undefined) fields['msg'] = message;
    destination.write(`${stringify({ level: value, time: Date.now(), ...bindings, ...redact(fields) })}\n`);
  };
  const at =
    (value: number): LogFn =>
    (objOrMsg: object | string, msg?: string): void =>
      write(value, objOrMsg, msg);
  return {
    level,
    trace: at(LEVELS.trace),
    debug: at(LEVELS.debug),
    info: at(LEVELS.info),
    warn: at(LEVELS.warn),
    error: at(LEVELS.error),
    fatal: at(LEVELS.fatal),
    child: (more) => makeLogger(level, { ...bindings, ...redact(more) }, destination),
    isLevelEnabled: (name) => isLevel(name) && name !== 'silent' && LEVELS[name] >= threshold,
  };
}

/**
 * JSON logs on stderr, so that stdout stays for command output. `destination` is for tests,
 * which scan what this very logger (with this redaction) writes.
 */
export function createLogger(level = process.env['NRC_LOG_LEVEL'] ?? 'info', destination: DestinationStream = stderr): Logger {
  if (!isLevel(level)) throw new Error(`unknown level ${level}`);
  return makeLogger(level, { app: 'node-registry-credentials' }, destination);
}
