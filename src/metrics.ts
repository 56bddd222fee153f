// Prometheus metrics in the text exposition format (version 0.0.4): gauges, counters and the
// process metrics, which is all the agent exports. prom-client did the same at ~14-19 MiB of RSS
// per process (docs/benchmarks.md); the agent runs on every node, so it carries this instead.
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export type Labels<L extends string> = Partial<Record<L, string | number>>;

export interface MetricOptions<L extends string, M> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  readonly registers?: readonly Registry[];
  /** Called at every scrape, before the values are read (`this` is the metric). */
  readonly collect?: (this: M) => void;
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

abstract class Metric<L extends string> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'gauge' | 'counter';
  private readonly labelNames: readonly L[];
  protected collectFn: (() => void) | undefined;
  /** By the label values in labelNames order: what one series is. */
  protected readonly series = new Map<string, { labels: string; value: number }>();

  constructor(o: MetricOptions<L, never>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    for (const r of o.registers ?? []) r.register(this);
  }

  protected add(labels: Labels<L>, delta: number, replace: boolean): void {
    const values = this.labelNames.map((n) => (labels[n] === undefined ? '' : String(labels[n])));
    const key = values.join('\u0000');
    const cur = this.series.get(key);
    const text = this.labelNames
      .map((n, i) => [n, values[i]!] as const)
      .filter(([, v]) => v !== '')
      .map(([n, v]) => `${n}="${escapeLabel(v)}"`)
      .join(',');
    this.series.set(key, { labels: text ? `{${text}}` : '', value: replace || !cur ? delta : cur.value + delta });
  }

  /** Forgets every series (a collect function then sets the current ones). */
  reset(): void {
    this.series.clear();
  }

  render(): string {
    this.collectFn?.();
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    // A metric without labels always has its one series (0 until set), as Prometheus clients do.
    if (this.labelNames.length === 0 && this.series.size === 0) lines.push(`${this.name} 0`);
    for (const s of this.series.values()) lines.push(`${this.name}${s.labels} ${formatValue(s.value)}`);
    return lines.join('\n');
  }
}

export class Gauge<L extends string = never> extends Metric<L> {
  readonly type = 'gauge';

  constructor(o: MetricOptions<L, Gauge<L>>) {
    super(o);
    this.collectFn = o.collect?.bind(this);
  }

  set(value: number): void;
  set(labels: Labels<L>, value: number): void;
  set(a: Labels<L> | number, b?: number): void {
    if (typeof a === 'number') this.add({}, a, true);
    else this.add(a, b ?? 0, true);
  }

  inc(by?: number): void;
  inc(labels: Labels<L>, by?: number): void;
  inc(a: Labels<L> | number = {}, b = 1): void {
    if (typeof a === 'number') this.add({}, a, false);
    else this.add(a, b, false);
  }
}

export class Counter<L extends string = never> extends Metric<L> {
  readonly type = 'counter';

  constructor(o: MetricOptions<L, Counter<L>>) {
    super(o);
    this.collectFn = o.collect?.bind(this);
  }

  // inc(5) as well as inc({labels}, 5), as prom-client takes it.
  inc(by?: number): void;
  inc(labels: Labels<L>, by?: number): void;
  inc(a: Labels<L> | number = {}, b = 1): void {
    const [labels, by] = typeof a === 'number' ? [{}, a] : [a, b];
    if (by < 0) throw new Error(`counter ${this.name} cannot decrease`);
    this.add(labels, by, false);
  }
}

/** The metrics one /metrics endpoint serves, in registration order. */
export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly metricsByName = new Map<string, Metric<string>>();

  register(m: Metric<string>): void {
    if (this.metricsByName.has(m.name)) throw new Error(`metric ${m.name} is already registered`);
    this.metricsByName.set(m.name, m);
  }

  /** The exposition text (a promise, as prom-client's, so callers need not change). */
  async metrics(): Promise<string> {
    return `${[...this.metricsByName.values()].map((m) => m.render()).join('\n\n')}\n`;
  }
}

function statusKiB(field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The process metrics prom-client's collectDefaultMetrics gave, under the same names: CPU, memory,
 * file descriptors, start time, heap, event-loop delay (sampled every `eventLoopResolutionMs`: a
 * finer resolution would wake an idle agent that often).
 */
export function registerProcessMetrics(registry: Registry, prefix: string, eventLoopResolutionMs = 5000): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number | undefined): void => {
    new Gauge({
      name: `${prefix}${name}`,
      help,
      registers,
      collect() {
        const v = read();
        if (v !== undefined) this.set(v);
      },
    });
  };
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name: `${prefix}${name}`,
      help,
      registers,
      collect() {
        this.reset();
        this.inc({}, read());
      },
    });
  };
  const cpu = (): NodeJS.CpuUsage => process.cpuUsage();
  counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => cpu().user / 1e6);
  counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => cpu().system / 1e6);
  counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
    const c = cpu();
    return (c.user + c.system) / 1e6;
  });
  const startSeconds = Math.round((Date.now() - process.uptime() * 1000) / 1000);
  gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => startSeconds);
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => statusKiB('VmRSS') ?? process.memoryUsage.rss());
  gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', () => statusKiB('VmSize'));
  gauge('process_heap_bytes', 'Process heap size in bytes.', () => statusKiB('VmData'));
  gauge('process_open_fds', 'Number of open file descriptors.', () => {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch {
      return undefined;
    }
  });
  const max = maxFds();
  gauge('process_max_fds', 'Maximum number of open file descriptors.', () => max);
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', () => process.memoryUsage().heapTotal);
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', () => process.memoryUsage().heapUsed);
  gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', () => process.memoryUsage().external);
  const delay = monitorEventLoopDelay({ resolution: eventLoopResolutionMs });
  delay.enable();
  const seconds = (ns: number): number | undefined => (Number.isFinite(ns) && delay.count > 0 ? ns / 1e9 : undefined);
  gauge('nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.', () => seconds(delay.mean));
  gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', () => seconds(delay.max));
  gauge('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', () => seconds(delay.percentile(99)));
  const [major, minor, patch] = process.versions.node.split('.');
  new Gauge<'version' | 'major' | 'minor' | 'patch'>({ name: `${prefix}nodejs_version_info`, help: 'Node.js version info.', labelNames: ['version', 'major', 'minor', 'patch'], registers }).set(
    { version: process.version, major: major ?? '', minor: minor ?? '', patch: patch ?? '' },
    1,
  );
}
