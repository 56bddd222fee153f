import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths pino blanks out even if a secret ever reaches a log call by mistake. */
const REDACT = ['password', 'auth', 'token', 'identityToken', 'identitytoken', 'secretAccessKey', '*.password', '*.auth', '*.token', '*.identityToken', '*.secretAccessKey', 'credentials', '*.credentials'];

/** JSON logs on stderr, so that stdout stays for command output. */
export function createLogger(level = process.env['NRC_LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ level, base: { app: 'node-registry-credentials' }, redact: { paths: REDACT, censor: '[redacted]' } }, pino.destination(2));
}
