// The Prometheus text that /metrics serves (src/metrics.ts): what a scraper reads.
import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Registry, registerProcessMetrics } from '../../src/metrics.ts';

describe('Prometheus exposition', () => {
  it('writes HELP and TYPE, escapes label values, counts up and sets gauges', async () => {
    const registry = new Registry();
    const registers = [registry];
    const c = new Counter({ name: 'x_total', help: 'Things.\nMore.', labelNames: ['code', 'where'], registers });
    const g = new Gauge({ name: 'x_level', help: 'Level.', registers });
    new Gauge({ name: 'x_unset', help: 'Never set.', registers });
    c.inc({ code: 'A', where: 'q"uote\\back\nline' });
    c.inc({ code: 'A', where: 'q"uote\\back\nline' }, 2);
    c.inc({ code: 'B' });
    g.set(1.5);
    g.set(3);
    expect(registry.contentType).toContain('text/plain; version=0.0.4');
    const text = await registry.metrics();
    expect(text).toContain('# HELP x_total Things.\\nMore.\n# TYPE x_total counter\n');
    expect(text).toContain('x_total{code="A",where="q\\"uote\\\\back\\nline"} 3\n');
    expect(text).toContain('x_total{code="B"} 1\n');
    expect(text).toContain('# TYPE x_level gauge\nx_level 3\n');
    expect(text).toContain('x_unset 0\n');
    expect(() => c.inc({}, -1)).toThrow();
    // A number alone is the amount (prom-client's inc(5)), as a collect function that mirrors a count uses it.
    const mirrored = new Counter({ name: 'y_total', help: 'Mirrored.', registers, collect() { this.reset(); this.inc(7); } });
    expect(await registry.metrics()).toContain('y_total 7\n');
    expect(() => mirrored.inc(-1)).toThrow();
  });

  it('reads a collected gauge at every scrape, and exports the process metrics under the prefix', async () => {
    const registry = new Registry();
    let seconds = 10;
    new Gauge({
      name: 'left_seconds',
      help: 'Seconds left.',
      labelNames: ['registry'],
      registers: [registry],
      collect() {
        this.reset();
        if (seconds > 0) this.set({ registry: 'r.example.com' }, seconds);
      },
    });
    registerProcessMetrics(registry, 'p_');
    expect(await registry.metrics()).toContain('left_seconds{registry="r.example.com"} 10\n');
    seconds = 0;
    const text = await registry.metrics();
    expect(text).not.toContain('left_seconds{');
    for (const name of ['p_process_cpu_seconds_total', 'p_process_resident_memory_bytes', 'p_process_start_time_seconds', 'p_process_open_fds', 'p_nodejs_heap_size_used_bytes']) {
      expect(text).toMatch(new RegExp(`^${name} \\d`, 'm'));
    }
  });
});
