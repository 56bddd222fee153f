// Issue 8: the credential check against the real distribution registry (TLS from a private CA,
// htpasswd Basic auth): right, wrong and missing passwords, through the API and the `check` command.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { CredentialChecker } from '../../src/check/credential-check.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { cli, dockerConfigJson, registryConfigToml } from '../support/e2e-agent.ts';
import { note, step } from '../support/e2e-exec.ts';
import { makePki, type Pki } from '../support/e2e-pki.ts';
import { startRegistry, type Registry } from '../support/e2e-registry.ts';

const skipReason = inject('e2eSkipReason');
const USER = 'e2e-check';
const PASSWORD = 'check-Pa55word-right';
const WRONG = 'check-Pa55word-wrong';

describe.skipIf(skipReason !== '')('credential check against the real distribution registry', () => {
  let work: string;
  let pki: Pki;
  let registry: Registry;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nrc-e2e-check-'));
    pki = await makePki(work);
    registry = await startRegistry(join(work, 'registry'), pki, { [USER]: PASSWORD });
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const cred = (password: string): RegistryCredential => ({ key: registry.host, host: registry.host, username: USER, password, source: 'e2e' });
  const opts = (): { host: string; ca: string; skipVerify: boolean; authHeader: boolean } => ({ host: registry.host, ca: pki.caPem, skipVerify: false, authHeader: false });

  test('right password: valid (Basic); wrong and missing password: rejected; no password in any result', async () => {
    step(`CHECK: ${registry.host}/v2/ with the right, a wrong and a missing password`);
    const checker = new CredentialChecker();
    const right = await checker.check(cred(PASSWORD), opts());
    const wrong = await checker.check({ ...cred(WRONG), key: `${registry.host}/wrong` }, opts());
    const missing = await checker.check({ ...cred(''), key: `${registry.host}/missing` }, opts());
    for (const r of [right, wrong, missing]) note(`${r.key}: ${r.status} — ${r.detail}`);
    expect(right).toMatchObject({ status: 'valid', scheme: 'basic' });
    expect(wrong).toMatchObject({ status: 'rejected', scheme: 'basic' });
    expect(missing).toMatchObject({ status: 'rejected' });
    const text = JSON.stringify([right, wrong, missing]);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(WRONG);
  });

  test("without the registry's CA the check reports unreachable (TLS), not rejected", async () => {
    const r = await new CredentialChecker().check(cred(PASSWORD), { host: registry.host, skipVerify: false, authHeader: false });
    note(`${r.key}: ${r.status} — ${r.detail}`);
    expect(r.status).toBe('unreachable');
  });

  test('`check` prints valid / rejected per registry from a docker config and the registry config CA, exit 2 on a rejected one', async () => {
    const caFile = join(work, 'ca.pem');
    await writeFile(caFile, pki.caPem);
    const regConfig = join(work, 'registries.toml');
    await writeFile(regConfig, registryConfigToml({ [registry.host]: { caFile } }));
    const good = join(work, 'good.json');
    await writeFile(good, dockerConfigJson({ [registry.host]: { username: USER, password: PASSWORD } }));
    step('CHECK: node-registry-credentials check with the right password');
    const ok = await cli(['check', '--dockerconfig', good, '--registry-config', regConfig]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`${registry.host.replace(/\./g, '\\.')}\\s+valid`));

    const bad = join(work, 'bad.json');
    await writeFile(bad, dockerConfigJson({ [registry.host]: { username: USER, password: WRONG } }));
    step('CHECK: node-registry-credentials check with a wrong password');
    const rejected = await cli(['check', '--dockerconfig', bad, '--registry-config', regConfig, '--output', 'json']);
    note(rejected.stderr.trim());
    expect(rejected.code).toBe(2);
    const body = JSON.parse(rejected.stdout) as { results: { key: string; status: string }[] };
    expect(body.results).toEqual([expect.objectContaining({ key: registry.host, status: 'rejected' })]);
    expect(rejected.stderr).toContain('NRC_E_CREDENTIAL_REJECTED');
    expect(rejected.stdout + rejected.stderr).not.toContain(WRONG);
  });
});
