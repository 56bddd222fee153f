import { afterEach, describe, expect, it } from 'vitest';
import { createAgentMetrics, createMetricsRegistry, recordApply, recordWatchState } from '../../src/report/metrics.ts';
import { type AgentServer, parseListenAddress, startAgentServer } from '../../src/server/server.ts';

describe('agent HTTP server', () => {
  let server: AgentServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('is live at once, ready only after setReady, and serves metrics that components registered', async () => {
    const registry = createMetricsRegistry();
    const metrics = createAgentMetrics(registry);
    server = await startAgentServer({ listenAddress: '127.0.0.1:0', registry });
    const get = (p: string): Promise<Response> => fetch(`http://${server!.address}${p}`);

    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(503);
    server.setReady(true);
    expect((await get('/readyz')).status).toBe(200);
    expect((await get('/nope')).status).toBe(404);

    recordApply(metrics, { at: new Date(1_700_000_000_000), errors: [{ code: 'NRC_E_WRITE_FAILED' }, { code: 'NRC_E_WRITE_FAILED' }], registries: 3, ok: true });
    recordWatchState(metrics, { state: 'connected', watch: 'secrets okteto/x', failures: 0 });
    recordWatchState(metrics, { state: 'stalled', watch: 'secrets okteto/x', failures: 0 });
    const res = await get('/metrics');
    expect(res.headers.get('content-type')).toContain('text/plain');
    const body = await res.text();
    expect(body).toContain('nrc_last_successful_apply_timestamp_seconds 1700000000');
    expect(body).toContain('nrc_apply_errors_total{code="NRC_E_WRITE_FAILED"} 2');
    expect(body).toContain('nrc_registries_managed 3');
    expect(body).toContain('nrc_watch_restarts_total{watch="secrets okteto/x"} 1');
    expect(body).toContain('nrc_watch_state{watch="secrets okteto/x",state="stalled"} 1');
    expect(body).toContain('nrc_watch_state{watch="secrets okteto/x",state="connected"} 0');
    expect(body).toContain('nrc_process_resident_memory_bytes');
  });

  it('closes promptly even with an idle keep-alive connection open', async () => {
    server = await startAgentServer({ listenAddress: '127.0.0.1:0', registry: createMetricsRegistry({ processMetrics: false }) });
    await fetch(`http://${server.address}/healthz`); // leaves a keep-alive socket in the pool
    const closing = server.close();
    server = undefined;
    await expect(closing).resolves.toBeUndefined();
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseListenAddress(':9090')).toEqual({ host: '0.0.0.0', port: 9090 });
    expect(parseListenAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(() => parseListenAddress('8080')).toThrow(/host:port/);
  });
});
