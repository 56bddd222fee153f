import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths pino blanks out even if a secret ever reaches a log call by mistake. */
const REDACT = ['password', 'auth', 'token', 'identityToken', 'identitytoken', 'secretAccessKey', '*.password', '*.auth', '*.token', '*.identityToken', '*.secretAccessKey', 'credentials', '*.credentials'];

/**
 * JSON logs on stderr, so that stdout stays for command output. `destination` is for tests,
 * which scan what this very logger (with this redaction) writes.
 */
export function createLogger(level = process.env['NRC_LOG_LEVEL'] ?? 'info', destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ level, base: { app: 'node-registry-credentials' }, redact: { paths: REDACT, censor: '[redacted]' } }, destination);
}
