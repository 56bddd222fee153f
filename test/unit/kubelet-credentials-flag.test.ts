// --kubelet-credentials (NRC_KUBELET_CREDENTIALS): which commands take it and what it selects.
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli.ts';
import { agentConfig, inputConfig } from '../../src/commands/config.ts';
import { parseFlags } from '../../src/commands/options.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { AgentError, ERROR_CODES } from '../../src/errors.ts';
import { REPO_ROOT } from '../support/e2e-prereqs.ts';
import { PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';

describe('--kubelet-credentials', () => {
  it('is config-json unless set, by flag or NRC_KUBELET_CREDENTIALS, for run, apply, render and doctor', () => {
    for (const command of ['run', 'apply', 'render', 'doctor']) {
      const flags = COMMANDS[command]!.flags;
      expect(inputConfig(parseFlags([], flags, {})).targets.kubeletCredentials).toBe('config-json');
      expect(inputConfig(parseFlags([], flags, { NRC_KUBELET_CREDENTIALS: 'provider' })).targets.kubeletCredentials).toBe('provider');
      expect(inputConfig(parseFlags(['--kubelet-credentials', 'config-json'], flags, { NRC_KUBELET_CREDENTIALS: 'provider' })).targets.kubeletCredentials).toBe('config-json');
    }
    const run = agentConfig(parseFlags(['--kubelet-credentials', 'provider'], COMMANDS['run']!.flags, {}));
    expect(run instanceof AgentError ? run.code : run.targets.kubeletCredentials).toBe('provider');
    // cleanup removes what either mode wrote: it has no such flag.
    expect(COMMANDS['cleanup']!.flags.some((s) => s.name === 'kubelet-credentials')).toBe(false);
  });

  it('refuses another value with a coded error', () => {
    expect(() => parseFlags(['--kubelet-credentials', 'plugin'], COMMANDS['apply']!.flags, {})).toThrow(/NRC_E_FLAG_INVALID \[--kubelet-credentials\].*config-json, provider/);
  });

  it('writes the state file where the shipped plugin and its example config read it', () => {
    const shim = readFileSync(join(REPO_ROOT, 'examples/credential-provider/node-registry-credentials-provider'), 'utf8');
    expect(shim).toContain(`state=\${NRC_PROVIDER_STATE:-${PROVIDER_RESPONSE_PATH}}`);
    const config = load(readFileSync(join(REPO_ROOT, 'examples/credential-provider/credential-provider-config.yaml'), 'utf8')) as { providers: { env: { name: string; value: string }[] }[] };
    expect(config.providers[0]!.env).toContainEqual({ name: 'NRC_PROVIDER_STATE', value: PROVIDER_RESPONSE_PATH });
  });

  it('every error code the plugin prints is documented, and every provider code is one it prints', () => {
    const shim = readFileSync(join(REPO_ROOT, 'examples/credential-provider/node-registry-credentials-provider'), 'utf8');
    // Codes, not the NRC_E_PROVIDER_* of the comments.
    const printed = new Set(shim.match(/NRC_E_[A-Z_]+/g)?.filter((c) => !c.endsWith('_')));
    expect([...printed].filter((c) => !(c in ERROR_CODES))).toEqual([]);
    expect(Object.keys(ERROR_CODES).filter((c) => c.startsWith('NRC_E_PROVIDER_') && !printed.has(c))).toEqual([]);
  });
});
