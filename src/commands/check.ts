// `check`: the credential check run once from the command line, before or after a rollout.
import { CredentialChecker, type CheckResult } from '../check/credential-check.ts';
import { checkErrors, formatCheckResults } from '../check/policy.ts';
import type { CheckSettings } from '../check/settings.ts';
import { AgentError } from '../errors.ts';
import type { RegistryCredential } from '../model/credential.ts';
import type { HostOptions } from '../model/host-options.ts';
import { readDockerConfigFile } from '../sources/file-source.ts';
import { checkSettings, loadRegistryConfig } from './config.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_REJECTED, type Io } from './oneshot.ts';
import { str, type Flags } from './options.ts';



/** Checks each credential once (for `check` and `doctor`): no rate limit beyond one check each. */
export function checkOnce(settings: CheckSettings, credentials: readonly RegistryCredential[], hostOptions: ReadonlyMap<string, HostOptions>): Promise<CheckResult[]> {
  const checker = new CredentialChecker({ ...settings.checker, perHostBurst: Number.MAX_SAFE_INTEGER, globalBurst: Number.MAX_SAFE_INTEGER });
  return checker.checkAll(credentials, hostOptions);
}

export async function checkCommand(f: Flags, io: Io): Promise<number> {
  const file = str(f, 'dockerconfig');
  if (!file) {
    io.err(`${new AgentError('NRC_E_INPUT_UNREADABLE', { detail: '(no --dockerconfig given)' }).message}\n`);
    return EXIT_FAILED;
  }
  const settings = checkSettings(f);
  if (settings instanceof AgentError) {
    io.err(`${settings.message}\n`);
    return EXIT_FAILED;
  }
  const registryConfig = loadRegistryConfig(str(f, 'registry-config'));
  if (registryConfig instanceof AgentError) {
    io.err(`${registryConfig.message}\n`);
    return EXIT_FAILED;
  }
  const snap = readDockerConfigFile(file, `file:${file}`);
  if (!snap.ok) {
    io.err(`${(snap.errors[0] ?? new AgentError('NRC_E_INPUT_SHAPE', { subject: file })).message}\n`);
    return EXIT_FAILED;
  }
  for (const e of [...registryConfig.errors, ...snap.errors]) io.err(`${e.message}\n`);
  const results = await checkOnce(settings, snap.credentials, registryConfig.hosts);
  if (str(f, 'output') === 'json') {
    io.out(`${JSON.stringify({ results: results.map((r) => ({ ...r, checkedAt: r.checkedAt.toISOString() })) }, null, 2)}\n`);
  } else {
    io.out(formatCheckResults(results));
  }
  const errors = checkErrors(results);
  for (const e of errors) io.err(`${e.message}\n`);
  return errors.length > 0 ? EXIT_REJECTED : EXIT_OK;
}
