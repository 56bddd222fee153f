// Prometheus metrics. A registry per agent (no global one) so tests and several components can
// each register their metrics on the one the server exposes.
import { Counter, Gauge, Registry, registerProcessMetrics } from '../metrics.ts';
import type { WatchState, WatchStateEvent } from '../sources/kubernetes/list-watch.ts';

export const METRIC_PREFIX = 'nrc_';

/** A fresh registry, with the process metrics (memory, CPU, event loop lag) unless disabled. */
export function createMetricsRegistry(opts: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  // Event-loop delay is sampled with a timer: a 10 ms resolution would wake an idle agent ~100
  // times a second (issue 7). Every 15 s keeps the metric (its histogram accumulates) and wakes an
  // idle agent 4 times a minute, not 12 (issue 23).
  if (opts.processMetrics ?? true) registerProcessMetrics(registry, METRIC_PREFIX, 15_000);
  return registry;
}

const WATCH_STATES: readonly WatchState[] = ['connected', 'relisting', 'stalled', 'disconnected', 'forbidden', 'gave-up', 'stopped'];

export interface AgentMetrics {
  readonly registry: Registry;
  /** Unix time of the last apply that succeeded. */
  readonly lastSuccessfulApply: Gauge;
  /** Apply errors by NRC_E_ code. */
  readonly applyErrors: Counter<'code'>;
  /** Registries currently configured on the node. */
  readonly registriesManaged: Gauge;
  /** Watch restarts (reconnects, relists) by watch. */
  readonly watchRestarts: Counter<'watch'>;
  /** 1 for the current state of each watch, 0 for the others. */
  readonly watchState: Gauge<'watch' | 'state'>;
  /** 1, labelled with the configuration hash of the last successful apply (as on the Node). */
  readonly appliedConfiguration: Gauge<'hash'>;
  /** 1 when the current configuration is effective (a pull uses it), 0 while pending or not written; by mechanism. */
  readonly effective: Gauge<'via'>;
  /** When it became effective, or (pending) when it will at the latest; Unix time. */
  readonly effectiveAt: Gauge;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  return {
    registry,
    lastSuccessfulApply: new Gauge({ name: `${METRIC_PREFIX}last_successful_apply_timestamp_seconds`, help: 'Unix time of the last successful apply.', registers }),
    applyErrors: new Counter({ name: `${METRIC_PREFIX}apply_errors_total`, help: 'Errors reported by applies, by error code.', labelNames: ['code'], registers }),
    registriesManaged: new Gauge({ name: `${METRIC_PREFIX}registries_managed`, help: 'Registries configured on this node by the agent.', registers }),
    watchRestarts: new Counter({ name: `${METRIC_PREFIX}watch_restarts_total`, help: 'Kubernetes watch restarts (reconnects and relists), by watch.', labelNames: ['watch'], registers }),
    watchState: new Gauge({ name: `${METRIC_PREFIX}watch_state`, help: 'Current state of each Kubernetes watch (1 = in that state).', labelNames: ['watch', 'state'], registers }),
    appliedConfiguration: new Gauge({ name: `${METRIC_PREFIX}applied_configuration_info`, help: 'The configuration hash of the last successful apply (the one on the Node); nodes of one fleet agree.', labelNames: ['hash'], registers }),
    effective: new Gauge({ name: `${METRIC_PREFIX}configuration_effective`, help: "1 when the node's current configuration is effective (the next pull uses it), 0 while it is pending (the kubelet's config.json cache) or not written; by mechanism (provider, config.json).", labelNames: ['via'], registers }),
    effectiveAt: new Gauge({ name: `${METRIC_PREFIX}configuration_effective_timestamp_seconds`, help: 'Unix time the current configuration became effective, or, while pending, when it will be at the latest.', registers }),
  };
}

/** Feeds a watch state event into the metrics (pass as a source's onState). */
export function recordWatchState(metrics: AgentMetrics, e: WatchStateEvent): void {
  for (const s of WATCH_STATES) metrics.watchState.set({ watch: e.watch, state: s }, s === e.state ? 1 : 0);
  if (e.state === 'relisting' || e.state === 'disconnected' || e.state === 'stalled' || e.state === 'forbidden') {
    metrics.watchRestarts.inc({ watch: e.watch });
  }
}

/** Records one apply's outcome. */
export function recordApply(metrics: AgentMetrics, result: { at: Date; errors: readonly { code: string }[]; registries?: number; ok: boolean; hash?: string }): void {
  if (result.ok) metrics.lastSuccessfulApply.set(result.at.getTime() / 1000);
  if (result.ok && result.hash !== undefined) {
    metrics.appliedConfiguration.reset();
    metrics.appliedConfiguration.set({ hash: result.hash }, 1);
  }
  for (const e of result.errors) metrics.applyErrors.inc({ code: e.code });
  if (result.registries !== undefined) metrics.registriesManaged.set(result.registries);
}

/** Records the effective state (report/effective.ts). */
export function recordEffective(metrics: AgentMetrics, e: { state: string; at: Date; via: readonly string[] }): void {
  metrics.effective.reset();
  metrics.effective.set({ via: e.via[0] ?? 'config.json' }, e.state === 'effective' ? 1 : 0);
  metrics.effectiveAt.set(e.at.getTime() / 1000);
}

/** Exposes the reconciler's drift repair count (passes started because someone else changed a managed file). */
export function registerDriftRepairs(metrics: AgentMetrics, count: () => number): void {
  new Counter({
    name: `${METRIC_PREFIX}drift_repairs_total`,
    help: 'Repairs of managed host files that someone else changed.',
    registers: [metrics.registry],
    collect() {
      this.reset();
      this.inc(count());
    },
  });
}

/**
 * Provider mode only: Unix time of the kubelet's last request to the credential provider plugin
 * (the mtime of the file it touches), 0 when there is none on record. Registered on first use, so
 * that an agent in config-json mode does not export it.
 */
export function createProviderMetrics(registry: Registry): Gauge {
  return new Gauge({ name: `${METRIC_PREFIX}provider_last_request_timestamp_seconds`, help: "Unix time of the kubelet's last request to the credential provider plugin (0: none on record).", registers: [registry] });
}

export function recordProviderAsked(gauge: Gauge, lastRequestAt: Date | undefined): void {
  gauge.set(lastRequestAt === undefined ? 0 : lastRequestAt.getTime() / 1000);
}
