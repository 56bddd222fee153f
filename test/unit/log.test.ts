// The agent's log lines (src/log.ts): pino's JSON format, and no secret ever written, whatever a
// log call passes by mistake.
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';

function capture(level = 'debug'): { lines: () => Record<string, unknown>[]; raw: () => string; log: ReturnType<typeof createLogger> } {
  let raw = '';
  const log = createLogger(level, { write: (s: string) => void (raw += s) });
  return { log, raw: () => raw, lines: () => raw.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('log lines', () => {
  it('are pino JSON lines: numeric level, time, app, bindings, fields, msg; below the level nothing', () => {
    const { log, lines } = capture('info');
    log.child({ component: 'ecr' }).warn({ registry: 'r.example.com' }, 'refresh failed');
    log.debug('not written');
    log.info('plain');
    const [first, second] = lines();
    expect(Object.keys(first!)).toEqual(['level', 'time', 'app', 'component', 'registry', 'msg']);
    expect(first).toMatchObject({ level: 40, app: 'node-registry-credentials', component: 'ecr', registry: 'r.example.com', msg: 'refresh failed' });
    expect(typeof first!['time']).toBe('number');
    expect(second).toMatchObject({ level: 30, msg: 'plain' });
    expect(lines()).toHaveLength(2);
    expect(() => createLogger('loud')).toThrow();
  });

  it('never writes a secret passed in a field, one level down, or in a child binding', () => {
    const { log, raw, lines } = capture();
    log.info({ password: 'pw-SECRET-1', auth: 'YXV0aC1TRUNSRVQtMg==', nested: { token: 'tok-SECRET-3', identityToken: 'id-SECRET-4', keep: 1 }, credentials: [{ password: 'pw-SECRET-5' }] }, 'oops');
    log.child({ aws: { secretAccessKey: 'aws-SECRET-6' } }).error({ err: Object.assign(new Error('failed'), { token: 'tok-SECRET-7' }) }, 'child');
    expect(raw()).not.toMatch(/SECRET|YXV0aC1TRUNSRVQtMg/);
    expect(lines()[0]).toMatchObject({ password: '[redacted]', auth: '[redacted]', nested: { token: '[redacted]', identityToken: '[redacted]', keep: 1 }, credentials: '[redacted]' });
    expect(lines()[1]).toMatchObject({ aws: { secretAccessKey: '[redacted]' }, err: { token: '[redacted]', message: 'failed' } });
  });

  it('serializes errors as pino did: type, message and stack with the cause, the error\'s own fields', () => {
    const { log, lines } = capture();
    const cause = new Error('ECONNREFUSED');
    log.warn({ err: new AgentError('NRC_E_K8S_UNAVAILABLE', { subject: 'secrets okteto/x', cause }) }, 'watch failed');
    log.error(new Error('direct'));
    const [a, b] = lines();
    const err = a!['err'] as Record<string, string>;
    expect(err).toMatchObject({ type: 'AgentError', code: 'NRC_E_K8S_UNAVAILABLE', subject: 'secrets okteto/x', name: 'AgentError' });
    expect(err['message']).toMatch(/^NRC_E_K8S_UNAVAILABLE .*: ECONNREFUSED$/);
    expect(err['stack']).toContain('caused by: Error: ECONNREFUSED');
    expect(b).toMatchObject({ level: 50, msg: 'direct', err: { type: 'Error', message: 'direct' } });
  });
});
