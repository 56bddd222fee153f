// The credential provider plugin as a node's bootstrap installs it, for the kubelet oracle's
// "provider" op: the shipped executable in a bin dir, the shipped CredentialProviderConfig with
// its state path pointed (through the config's own `env` list) at a file of this test, and the
// agent's state copied there from a host the planner produced.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { PROVIDER_DIGEST_SUFFIX, PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { REPO_ROOT } from './e2e-prereqs.ts';
import type { ProviderPlugin } from './oracle-client.ts';

export const PLUGIN_NAME = 'node-registry-credentials-provider';
export const SHIM = join(REPO_ROOT, 'examples', 'credential-provider', PLUGIN_NAME);
export const EXAMPLE_CONFIG = join(REPO_ROOT, 'examples', 'credential-provider', 'credential-provider-config.yaml');

interface ProviderEntry {
  name: string;
  env?: { name: string; value: string }[];
  [field: string]: unknown;
}

export class InstalledPlugin implements ProviderPlugin {
  readonly dir = mkdtempSync(join(tmpdir(), 'nrc-provider-'));
  readonly binDir = join(this.dir, 'bin');
  readonly config = join(this.dir, 'credential-provider-config.json');
  /** Where the installed plugin reads the agent's state (NRC_PROVIDER_STATE in the config's env). */
  readonly state: string;
  readonly digest: string;
  /** The file the installed plugin touches at each valid request (NRC_PROVIDER_ASKED in the config's env). */
  readonly asked: string;

  /**
   * `state`: the file the plugin serves (default: one of this test's). `edit` changes the shipped
   * provider entry (e.g. another apiVersion) before it is written.
   */
  constructor(o: { state?: string; edit?: (p: ProviderEntry) => void } = {}) {
    this.state = o.state ?? join(this.dir, 'state', 'response.json');
    this.digest = `${this.state}${PROVIDER_DIGEST_SUFFIX}`;
    this.asked = join(this.dir, 'provider-asked');
    const edit = o.edit ?? ((): void => {});
    mkdirSync(this.binDir);
    mkdirSync(join(this.dir, 'state'));
    copyFileSync(SHIM, join(this.binDir, PLUGIN_NAME));
    chmodSync(join(this.binDir, PLUGIN_NAME), 0o755);
    const doc = load(readFileSync(EXAMPLE_CONFIG, 'utf8')) as { providers: ProviderEntry[] };
    const provider = doc.providers.find((p) => p.name === PLUGIN_NAME)!;
    // Both paths of this test, never the node's: the kubelet oracle must not touch the real host.
    provider.env = [
      ...(provider.env ?? []).filter((e) => e.name !== 'NRC_PROVIDER_STATE' && e.name !== 'NRC_PROVIDER_ASKED'),
      { name: 'NRC_PROVIDER_STATE', value: this.state },
      { name: 'NRC_PROVIDER_ASKED', value: this.asked },
    ];
    edit(provider);
    writeFileSync(this.config, JSON.stringify(doc));
  }

  /** Puts the agent's state from a host listing (path → content) where the plugin reads it; none when absent. */
  serve(listing: Readonly<Record<string, string>>): void {
    for (const [from, to] of [[PROVIDER_RESPONSE_PATH, this.state], [`${PROVIDER_RESPONSE_PATH}${PROVIDER_DIGEST_SUFFIX}`, this.digest]] as const) {
      rmSync(to, { force: true, recursive: true });
      const text = listing[from];
      if (text !== undefined) writeFileSync(to, text, { mode: 0o600 });
    }
  }

  /** The host's files without the provider's state (which the plugin reads from `state`). */
  static withoutState(listing: Readonly<Record<string, string>>): Record<string, string> {
    return Object.fromEntries(Object.entries(listing).filter(([p]) => !p.startsWith(`${PROVIDER_RESPONSE_PATH}`)));
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ShimRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the shipped executable as the kubelet does (request on stdin), outside the kubelet. */
export function runShim(request: string, env: Record<string, string>, asUser?: number): ShimRun {
  const [cmd, args] = asUser === undefined ? [SHIM, []] : ['setpriv', [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', SHIM]];
  const r = spawnSync(cmd, args, { input: request, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env }, timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A request exactly as the kubelet's encoder writes it (1.34 plugin.go encodeRequest: compact JSON). */
export const kubeletRequest = (image: string, apiVersion = 'credentialprovider.kubelet.k8s.io/v1'): string =>
  JSON.stringify({ kind: 'CredentialProviderRequest', apiVersion, image });
