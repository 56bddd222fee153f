import type { AgentError } from '../errors.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { credentialFingerprint } from '../model/fingerprint.ts';
import type { HostOptions } from '../model/host-options.ts';
import type { CheckResult, CredentialChecker } from './credential-check.ts';
import { checkErrors, dropRejected, type CheckPolicy } from './policy.ts';

export interface CredentialGateOptions {
  readonly checker: CredentialChecker;
  readonly policy: CheckPolicy;
  readonly hostOptions: ReadonlyMap<string, HostOptions>;
  /** New results arrived (for metrics); the caller re-plans so that they take effect. */
  readonly onResults: (results: readonly CheckResult[]) => void;
  /** An unreachable registry is asked again after this long (default 5 minutes). */
  readonly recheckUnreachableMs?: number;
  readonly now?: () => number;
}

/**
 * Between the merged credentials and the planner: applies the check policy with the results
 * known so far (a result counts only for the exact credential it was made for) and checks, in
 * the background, every credential that is new, rotated, or was unreachable a while ago.
 * Planning never waits for the network.
 */
export class CredentialGate {
  private readonly known = new Map<string, { fp: string; result: CheckResult }>();
  private running = false;
  private pending: readonly RegistryCredential[] | undefined;

  constructor(private readonly o: CredentialGateOptions) {}

  filter(credentials: readonly RegistryCredential[]): { credentials: RegistryCredential[]; errors: AgentError[] } {
    const now = (this.o.now ?? Date.now)();
    const current: CheckResult[] = [];
    const stale: RegistryCredential[] = [];
    for (const c of credentials) {
      const k = this.known.get(c.key);
      if (k && k.fp === credentialFingerprint(c)) {
        current.push(k.result);
        const age = now - k.result.checkedAt.getTime();
        if (k.result.status === 'unreachable' && age > (this.o.recheckUnreachableMs ?? 300_000)) stale.push(c);
      } else stale.push(c);
    }
    if (stale.length > 0) this.schedule(stale);
    const { credentials: kept, dropped } = dropRejected(credentials, current, this.o.policy);
    return { credentials: kept, errors: [...dropped, ...checkErrors(current)] };
  }

  private schedule(creds: readonly RegistryCredential[]): void {
    this.pending = creds;
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.pending) {
        const batch = this.pending;
        this.pending = undefined;
        const fresh: CheckResult[] = [];
        for (const c of batch) {
          const result = await this.o.checker.check(c, this.o.hostOptions.get(c.host));
          // Rate-limited before any result for this credential: the next resync asks again.
          if (result.status === 'not-checked' && result.reason === 'rate-limited') continue;
          this.known.set(c.key, { fp: credentialFingerprint(c), result });
          fresh.push(result);
        }
        if (fresh.length > 0) this.o.onResults(fresh);
      }
    } finally {
      this.running = false;
    }
  }
}
