import { describe, expect, it } from 'vitest';
import type { CheckResult, CredentialChecker } from '../../src/check/index.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { CredentialGate } from '../../src/check/gate.ts';
import { cred } from '../support/plan-fixtures.ts';

type Verdict = CheckResult['status'] | 'rate-limited';

/** A checker that answers from a table of password → verdict, and counts its calls. */
function fakeChecker(verdicts: Record<string, Verdict>, now: () => number = Date.now): CredentialChecker & { calls: string[] } {
  const calls: string[] = [];
  const checker = {
    calls,
    async check(c: RegistryCredential): Promise<CheckResult> {
      calls.push(`${c.key}:${c.password}`);
      const v = verdicts[c.password] ?? 'valid';
      const base = { key: c.key, host: c.host, detail: 'test', checkedAt: new Date(now()), cached: false };
      return v === 'rate-limited' ? { ...base, status: 'not-checked', reason: 'rate-limited' } : { ...base, status: v };
    },
  };
  return checker as unknown as CredentialChecker & { calls: string[] };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

describe('credential gate (--check-credentials)', () => {
  const hub = (password: string) => cred('https://index.docker.io/v1/', 'user', password);
  const reg = (password: string) => cred('reg.example.com', 'user', password);

  it('never waits for the network: the first pass keeps every credential, results come after', async () => {
    const checker = fakeChecker({ wrong: 'rejected' });
    let notified = 0;
    const gate = new CredentialGate({ checker, policy: { dropRejectedDockerHub: true }, hostOptions: new Map(), onResults: () => notified++ });
    expect(gate.filter([hub('wrong')]).credentials).toHaveLength(1);
    await settle();
    expect(notified).toBe(1);
    const second = gate.filter([hub('wrong')]);
    expect(second.credentials).toEqual([]);
    expect(second.errors.map((e) => e.code).sort()).toEqual(['NRC_E_CREDENTIAL_DROPPED', 'NRC_E_CREDENTIAL_REJECTED']);
  });

  it('drops only a rejected Docker Hub credential, and only when the operator asked for it', async () => {
    for (const drop of [true, false]) {
      const gate = new CredentialGate({ checker: fakeChecker({ wrong: 'rejected' }), policy: { dropRejectedDockerHub: drop }, hostOptions: new Map(), onResults: () => {} });
      gate.filter([hub('wrong'), reg('wrong')]);
      await settle();
      const out = gate.filter([hub('wrong'), reg('wrong')]);
      expect(out.credentials.map((c) => c.key)).toEqual(drop ? ['reg.example.com'] : ['https://index.docker.io/v1/', 'reg.example.com']);
      expect(out.errors.filter((e) => e.code === 'NRC_E_CREDENTIAL_REJECTED')).toHaveLength(2);
    }
  });

  it('judges a rotated password by its own check, not by the old one\'s result', async () => {
    const checker = fakeChecker({ old: 'rejected', fixed: 'valid' });
    const gate = new CredentialGate({ checker, policy: { dropRejectedDockerHub: true }, hostOptions: new Map(), onResults: () => {} });
    gate.filter([hub('old')]);
    await settle();
    expect(gate.filter([hub('old')]).credentials).toEqual([]);
    // The fix arrives: written right away, then checked.
    expect(gate.filter([hub('fixed')]).credentials).toHaveLength(1);
    await settle();
    expect(gate.filter([hub('fixed')])).toMatchObject({ credentials: [{ password: 'fixed' }], errors: [] });
    expect(checker.calls).toEqual(['https://index.docker.io/v1/:old', 'https://index.docker.io/v1/:fixed']);
  });

  it('does not re-plan on a rate-limited answer (no busy loop) and asks again on a later pass', async () => {
    const checker = fakeChecker({ p: 'rate-limited' });
    let notified = 0;
    const gate = new CredentialGate({ checker, policy: { dropRejectedDockerHub: true }, hostOptions: new Map(), onResults: () => notified++ });
    gate.filter([reg('p')]);
    await settle();
    expect(notified).toBe(0);
    gate.filter([reg('p')]);
    await settle();
    expect(checker.calls).toHaveLength(2);
  });

  it('re-checks an unreachable registry only after a while', async () => {
    let now = 1_000_000;
    const checker = fakeChecker({ p: 'unreachable' }, () => now);
    const gate = new CredentialGate({ checker, policy: { dropRejectedDockerHub: true }, hostOptions: new Map(), onResults: () => {}, now: () => now, recheckUnreachableMs: 60_000 });
    gate.filter([reg('p')]);
    await settle();
    const kept = gate.filter([reg('p')]);
    expect(kept.credentials).toHaveLength(1); // unreachable never removes a credential
    expect(kept.errors.map((e) => e.code)).toEqual(['NRC_E_CREDENTIAL_CHECK_FAILED']);
    await settle();
    expect(checker.calls).toHaveLength(1);
    now += 10 * 60_000;
    gate.filter([reg('p')]);
    await settle();
    expect(checker.calls).toHaveLength(2);
  });
});
