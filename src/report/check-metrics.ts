// Prometheus metrics of the credential check, registered on the agent's registry.
import { Counter, Gauge, type Registry } from '../metrics.ts';
import type { CheckResult, CheckStatus } from '../check/credential-check.ts';

const STATUSES: readonly CheckStatus[] = ['valid', 'rejected', 'unreachable', 'not-checked'];

export interface CheckMetrics {
  /** 1 for the current status of each registry key, 0 for the others. */
  readonly status: Gauge<'registry' | 'status'>;
  /** Checks made (cached answers are not counted), by outcome. */
  readonly checks: Counter<'status'>;
}

export function createCheckMetrics(registry: Registry): CheckMetrics {
  const registers = [registry];
  return {
    status: new Gauge({ name: 'nrc_credential_check_status', help: 'Result of the last credential check per registry (1 = that status).', labelNames: ['registry', 'status'], registers }),
    checks: new Counter({ name: 'nrc_credential_checks_total', help: 'Credential checks made, by result.', labelNames: ['status'], registers }),
  };
}

export function recordCheckResults(m: CheckMetrics, results: readonly CheckResult[]): void {
  for (const r of results) {
    for (const s of STATUSES) m.status.set({ registry: r.key, status: s }, s === r.status ? 1 : 0);
    if (!r.cached) m.checks.inc({ status: r.status });
  }
}
