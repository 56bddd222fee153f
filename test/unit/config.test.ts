// Flags become typed configurations once, at the edge: defaults from the flag specs, and a
// value that cannot be used is a coded error instead of NaN.
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli.ts';
import { agentConfig, checkSettings, hostConfig, kubernetesConfig } from '../../src/commands/config.ts';
import { parseFlags, RUN_FLAGS, COMMON_FLAGS, INPUT_FLAGS } from '../../src/commands/options.ts';
import { AgentError } from '../../src/errors.ts';

const runFlags = [...COMMON_FLAGS, ...INPUT_FLAGS, ...RUN_FLAGS];

describe('typed configuration', () => {
  it('takes every default from the flag specs, also when Flags are built by hand', () => {
    const parsed = agentConfig(parseFlags([], runFlags, {}));
    const byHand = agentConfig({});
    expect(parsed).not.toBeInstanceOf(AgentError);
    expect(byHand).toEqual(parsed);
    expect(byHand).toMatchObject({ hostRoot: '/', debounceMs: 200, resyncMs: 60_000, check: { enabled: false, checker: { timeoutMs: 5000 } } });
    expect(kubernetesConfig({})).toMatchObject({
      namespace: 'okteto',
      secretName: 'okteto-dockerconfig-static',
      brokerSecretName: 'node-registry-credentials-broker',
      // Registry resources and ECR on the node are opt-in (per-node variant), with the agent's own account only.
      watchRegistries: false,
      ecr: { serviceAccount: { namespace: 'okteto', name: 'node-registry-credentials' }, fleetSize: 100, defaultChainHosts: [] },
    });
    expect(hostConfig({ 'no-containerd': true }).targets.writeContainerd).toBe(false);
  });

  it('reads numbers once: values, and the environment through parseFlags', () => {
    const c = agentConfig(parseFlags(['--debounce-ms', '0', '--resync-seconds', '0.5'], runFlags, { NRC_ECR_FLEET_SIZE: '3000', NRC_CHECK_TIMEOUT_MS: '250' }));
    expect(c).toMatchObject({ debounceMs: 0, resyncMs: 500, check: { checker: { timeoutMs: 250 } }, kubernetes: { ecr: { fleetSize: 3000 } } });
  });

  for (const [flag, value] of [
    ['debounce-ms', 'abc'],
    ['debounce-ms', '-1'],
    ['debounce-ms', '1.5'],
    ['debounce-ms', ''],
    ['resync-seconds', '0'],
    ['resync-seconds', 'Infinity'],
    ['check-timeout-ms', '0'],
    ['check-timeout-ms', '5s'],
    ['ecr-fleet-size', '0'],
    ['ecr-fleet-size', 'many'],
  ] as const) {
    it(`--${flag} ${JSON.stringify(value)} is NRC_E_FLAG_INVALID naming the flag`, () => {
      const c = agentConfig({ [flag]: value });
      expect(c).toBeInstanceOf(AgentError);
      expect((c as AgentError).code).toBe('NRC_E_FLAG_INVALID');
      expect((c as AgentError).subject).toBe(`--${flag}`);
      expect((c as AgentError).message).not.toContain('NaN');
    });
  }

  it('the check alone validates its timeout too (check and doctor)', () => {
    expect(checkSettings({ 'check-timeout-ms': 'x' })).toBeInstanceOf(AgentError);
    expect(checkSettings({ 'check-timeout-ms': '2000', 'check-credentials': true })).toEqual({ enabled: true, checker: { timeoutMs: 2000 }, policy: { dropRejectedDockerHub: false } });
  });

  it('the CLI exits 1, the usage-error code, with the coded error on stderr', async () => {
    let err = '';
    const io = { out: () => undefined, err: (t: string) => (err += t) };
    expect(await main(['run', '--no-kubernetes', '--debounce-ms', 'NaN'], io)).toBe(1);
    expect(err).toContain('NRC_E_FLAG_INVALID [--debounce-ms]');
    err = '';
    expect(await main(['check', '--dockerconfig', '/nonexistent', '--check-timeout-ms=-1'], io)).toBe(1);
    expect(err).toContain('NRC_E_FLAG_INVALID [--check-timeout-ms]');
  });
});

describe('status durations', () => {
  it('a malformed --behind-after is NRC_E_FLAG_INVALID and exit 1, before the cluster is asked', async () => {
    const { statusCommand } = await import('../../src/commands/status.ts');
    let err = '';
    const code = await statusCommand({ 'behind-after': 'soon', kubeconfig: '/nonexistent' }, { out: () => undefined, err: (t) => (err += t) });
    expect(code).toBe(1);
    expect(err).toContain('NRC_E_FLAG_INVALID [--behind-after]');
    expect(err).toContain('take a duration such as 90s, 10m or 2h');
  });
});
