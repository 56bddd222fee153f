// What a node logs while its watch keeps failing: an API server that is down for an hour must not
// make every node of a fleet write a line per retry (issue 25); the metrics still count each one.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { WATCH_FAILURE_LOG_INTERVAL_MS, watchStateLogger } from '../../src/commands/run-kubernetes.ts';
import type { WatchStateEvent } from '../../src/sources/kubernetes/list-watch.ts';

function capture(): { lines: { level: number; msg: string; failures?: number; code?: string }[]; stream: Writable } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { lines, stream };
}

const WARN = 40;
const down = (failures: number, code: 'NRC_E_K8S_UNAVAILABLE' | 'NRC_E_K8S_BAD_RESPONSE' = 'NRC_E_K8S_UNAVAILABLE'): WatchStateEvent => ({
  state: 'disconnected',
  watch: 'secrets okteto/x',
  failures,
  retryInMs: 30_000,
  error: new AgentError(code, { subject: 'secrets okteto/x' }),
});

describe('watch state logging', () => {
  it('an outage is one warning, then one line every few minutes while it lasts, and one when it ends', async () => {
    const { lines, stream } = capture();
    let now = 0;
    const log = watchStateLogger(createLogger('info', stream), () => now);
    // 60 retries over 30 minutes (one every 30 s, the backoff cap).
    for (let i = 1; i <= 60; i++) {
      log(down(i));
      now += 30_000;
    }
    log({ state: 'connected', watch: 'secrets okteto/x', failures: 60 });
    await new Promise((r) => setImmediate(r));
    const warnings = lines.filter((l) => l.level === WARN);
    expect(warnings.length).toBe(Math.ceil((60 * 30_000) / WATCH_FAILURE_LOG_INTERVAL_MS));
    expect(warnings[0]).toMatchObject({ failures: 1, code: 'NRC_E_K8S_UNAVAILABLE' });
    expect(lines.at(-1)).toMatchObject({ msg: 'watch recovered', failedForS: 1800 });
  });

  it('a different error inside a streak is logged at once', async () => {
    const { lines, stream } = capture();
    const log = watchStateLogger(createLogger('info', stream), () => 0);
    log(down(1));
    log(down(2));
    log(down(3, 'NRC_E_K8S_BAD_RESPONSE'));
    await new Promise((r) => setImmediate(r));
    expect(lines.filter((l) => l.level === WARN).map((l) => l.code)).toEqual(['NRC_E_K8S_UNAVAILABLE', 'NRC_E_K8S_BAD_RESPONSE']);
  });
});
