import * as fs from 'node:fs';
import { posix } from 'node:path';
import { AgentError, ERROR_CODES } from '../errors.ts';
import { readRecord } from '../host/apply.ts';
import type { HostFs } from '../host/host-fs.ts';
import { kubeletReads } from '../plan/kubelet-file.ts';
import { providerDigestPath, renderProviderDigest } from '../plan/provider.ts';
import { detectTargets, kubeletSearchPath } from '../runtime/targets.ts';
import { PROVIDER_ASKED_PATH } from '../model/state-paths.ts';
import type { CheckSettings } from '../check/settings.ts';
import type { TargetOptions } from '../runtime/targets.ts';
import { checkSettings, inputConfig, openHost, type InputConfig } from './config.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_REJECTED, readInputs, type Io } from './oneshot.ts';
import { str, type Flags } from './options.ts';

export interface Finding {
  readonly level: 'ok' | 'warn' | 'error' | 'info';
  readonly what: string;
  readonly fix?: string;
  readonly code?: string;
}

/** Whether the agent could write `hostPath`: the nearest existing ancestor must be a writable directory. */
function writable(host: HostFs, hostPath: string): { ok: boolean; why?: string } {
  let p = hostPath;
  for (;;) {
    const st = host.stat(p);
    if (st.kind === 'symlink') return { ok: false, why: `${p} is a symlink (or below one)` };
    if (st.kind === 'directory' || (st.kind === 'file' && p === hostPath)) {
      const dir = st.kind === 'directory' ? p : posix.dirname(p);
      try {
        fs.accessSync(host.real(dir), fs.constants.W_OK);
        return { ok: true };
      } catch (err) {
        return { ok: false, why: `${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
      }
    }
    if (st.kind !== 'missing') return { ok: false, why: `${p} is not a directory` };
    if (p === '/') return { ok: false, why: 'host root missing' };
    p = posix.dirname(p);
  }
}

export function diagnose(host: HostFs, o: TargetOptions): Finding[] {
  const findings: Finding[] = [];
  const detected = detectTargets(host, o);
  const c = detected.containerd;
  if (c) {
    findings.push({ level: 'ok', what: `container runtime: ${c.flavor} (config ${c.configFile}, version ${c.configVersion}, merged as containerd ${c.family}; read ${c.filesRead.join(', ')})` });
    if (c.hostsDir) findings.push({ level: 'ok', what: `containerd config_path: ${c.configPaths.join(':')} → hosts.toml files go to ${c.hostsDir}` });
  } else {
    findings.push({ level: 'info', what: 'containerd: no config found at /etc/containerd/config.toml (nor k3s/RKE2): only config.json files are written' });
  }
  for (const p of detected.problems) findings.push({ level: p.code === 'NRC_E_CONTAINERD_COLON_LIST' ? 'warn' : 'error', what: p.message, code: p.code });
  if (host.listDir('/etc/crio') !== undefined) findings.push({ level: 'ok', what: 'container runtime: CRI-O (/etc/crio): the kubelet passes credentials to it; CAs go to /etc/containers/certs.d' });
  if (host.listDir('/etc/docker') !== undefined) findings.push({ level: 'ok', what: 'Docker config directory /etc/docker found: CAs also go to /etc/docker/certs.d' });

  findings.push(...providerFindings(host, detected.targets.providerResponse));
  const search = kubeletSearchPath(o);
  const reading = kubeletReads(search, (p) => host.stat(p));
  if (reading === search[0]) findings.push({ level: 'ok', what: `the kubelet reads ${reading} (re-read about every 5 minutes; no restart needed)` });
  else if (reading) findings.push({ level: 'warn', what: `the kubelet reads ${reading} today; the agent will write ${search[0]} seeded from it, which then takes precedence` });
  else findings.push({ level: 'info', what: `no docker config for the kubelet yet; the agent will create ${search[0]}` });
  const kubeletState = host.stat(search[0]!);
  if (kubeletState.kind === 'file' && (kubeletState.mode & 0o077) !== 0) {
    findings.push({ level: 'warn', what: `${search[0]} is readable by group/others (mode ${kubeletState.mode.toString(8)})`, fix: 'chmod 600 it; the agent keeps the mode it finds.' });
  }

  const outputs = [search[0]!, ...(detected.targets.dockerConfig ? [detected.targets.dockerConfig] : []), ...(detected.targets.containerdHostsDir ? [`${detected.targets.containerdHostsDir}/x`] : []), ...detected.targets.certsDirs.map((d) => `${d}/x`), '/var/lib/node-registry-credentials/x'];
  for (const out of outputs) {
    const target = out.endsWith('/x') ? posix.dirname(out) : out;
    const w = writable(host, out);
    findings.push(w.ok ? { level: 'ok', what: `writable: ${target}` } : { level: 'error', what: `not writable: ${target}: ${w.why}`, code: 'NRC_E_WRITE_FAILED', fix: 'Mount the host directory read-write into the agent (hostPath directory, not a single file).' });
  }
  const record = readRecord(host);
  if (record instanceof AgentError) findings.push({ level: 'error', what: record.message, code: record.code });
  else {
    const n = Object.keys(record.jsonFiles).length + Object.keys(record.files).length;
    findings.push({ level: 'info', what: n === 0 ? 'the agent manages nothing on this host yet' : `the agent manages ${n} file(s): ${[...Object.keys(record.jsonFiles), ...Object.keys(record.files)].join(', ')}` });
  }
  return findings;
}

/**
 * Provider mode: whether the state the plugin serves is there and whole, and whether the kubelet
 * really asks the plugin, as the node shows it: the plugin touches PROVIDER_ASKED_PATH at each
 * request (NRC_PROVIDER_ASKED in the example config), so its mtime is the last request.
 */
export function providerFindings(host: HostFs, response: string | undefined): Finding[] {
  const askedAt = host.modifiedAt(PROVIDER_ASKED_PATH);
  if (response === undefined) {
    // config-json mode: a request on record says the bootstrap is ready for provider mode.
    return askedAt === undefined ? [] : [{ level: 'info', what: `the kubelet asked the credential provider plugin at ${askedAt.toISOString()} (${PROVIDER_ASKED_PATH}): this node is ready for --kubelet-credentials provider` }];
  }
  const notice: Finding = { level: 'info', what: `provider mode: the kubelet's credentials are served by the credential provider plugin from ${response}` };
  const out: Finding[] = [notice];
  const body = host.stat(response);
  const digest = host.stat(providerDigestPath(response));
  if (body.kind === 'missing') out.push({ level: 'info', what: `${response} does not exist yet: the plugin answers with no credentials until the agent's first apply` });
  else if (body.kind !== 'file' || digest.kind !== 'file' || !Buffer.from(renderProviderDigest(response, body.bytes)).equals(Buffer.from(digest.bytes))) {
    out.push({ level: 'error', what: `${response} or its .sha256 is not what the agent wrote: the plugin answers with no credentials`, code: 'NRC_E_PROVIDER_STATE_CORRUPT', fix: ERROR_CODES.NRC_E_PROVIDER_STATE_CORRUPT.fix });
  }
  out.push(askedFinding(askedAt, host.modifiedAt(providerDigestPath(response))));
  return out;
}

/** The kubelet's last request (`askedAt`) against the state's last write (its digest goes last). */
function askedFinding(askedAt: Date | undefined, writtenAt: Date | undefined): Finding {
  if (askedAt === undefined) {
    return {
      level: 'warn',
      what: `the kubelet has never asked the credential provider plugin on this node (no ${PROVIDER_ASKED_PATH}): if it does not, pulls of private images from the agent's registries fail, since config.json no longer holds their credentials`,
      fix:
        'Check that the kubelet runs with --image-credential-provider-config (the example config, with its NRC_PROVIDER_ASKED entry) and --image-credential-provider-bin-dir holding node-registry-credentials-provider (ps -o args= -C kubelet), that matchImages covers the image (same number of host labels, same port), and that a pull of such an image happened at all since the kubelet started: an image already on the node is not pulled again (docs/kubernetes.md#if-the-kubelet-does-not-ask-the-provider).',
    };
  }
  const last = `the kubelet asks the credential provider plugin: last request at ${askedAt.toISOString()}`;
  if (writtenAt === undefined) return { level: 'ok', what: `${last} (the agent has not written its state yet)` };
  if (askedAt.getTime() >= writtenAt.getTime()) return { level: 'ok', what: `${last}, after the state's last write at ${writtenAt.toISOString()}: it got the current credentials` };
  return { level: 'info', what: `${last}, before the state's last write at ${writtenAt.toISOString()}: no pull since the last change (the next pull gets it)` };
}

/** ECR tokens the agent cached on this node: expired or soon-expiring ones need attention. */
export async function ecrFindings(hostRoot: string, now = Date.now()): Promise<Finding[]> {
  const { readEcrTokenExpiries } = await import('../host/ecr-token-cache.ts');
  return (await readEcrTokenExpiries(hostRoot)).map(({ host, expiresAt }): Finding => {
    const left = expiresAt.getTime() - now;
    if (left <= 0) return { level: 'error', what: `ECR token for ${host} expired at ${expiresAt.toISOString()}`, code: 'NRC_E_ECR_TOKEN_EXPIRED', fix: ERROR_CODES.NRC_E_ECR_TOKEN_EXPIRED.fix };
    const when = `ECR token for ${host} expires at ${expiresAt.toISOString()} (in ${Math.round(left / 60_000)} min)`;
    return left < 3_600_000 ? { level: 'warn', what: `${when}: the refresh is late`, fix: 'Look for the ECR error codes in the agent logs or Events (docs/ecr.md#errors).' } : { level: 'ok', what: when };
  });
}

/** With --check-credentials: asks each registry of --dockerconfig whether it accepts its credential. */
export async function credentialFindings(c: InputConfig, check: CheckSettings): Promise<Finding[]> {
  const inputs = readInputs(c, true);
  if (inputs instanceof AgentError) return [{ level: 'error', what: inputs.message, code: inputs.code }];
  const { checkOnce } = await import('./check.ts');
  return (await checkOnce(check, inputs.credentials, inputs.hostOptions)).map((r): Finding => {
    const what = `credential for ${r.key}: ${r.status} (${r.detail})`;
    if (r.status === 'rejected') return { level: 'error', what, code: 'NRC_E_CREDENTIAL_REJECTED', fix: ERROR_CODES.NRC_E_CREDENTIAL_REJECTED.fix };
    if (r.status === 'unreachable') return { level: 'warn', what, code: 'NRC_E_CREDENTIAL_CHECK_FAILED', fix: ERROR_CODES.NRC_E_CREDENTIAL_CHECK_FAILED.fix };
    return { level: r.status === 'valid' ? 'ok' : 'info', what };
  });
}

export async function doctorCommand(f: Flags, io: Io): Promise<number> {
  const c = inputConfig(f);
  const check = checkSettings(f);
  if (check instanceof AgentError) {
    io.err(`${check.message}\n`);
    return EXIT_FAILED;
  }
  const host = openHost(c.hostRoot);
  if (host instanceof AgentError) {
    io.err(`${host.message}\n`);
    return EXIT_FAILED;
  }
  const findings = [...diagnose(host, c.targets), ...(await ecrFindings(host.root))];
  if (f['check-credentials'] === true) findings.push(...(await credentialFindings(c, check)));
  if (str(f, 'output') === 'json') io.out(`${JSON.stringify(findings, null, 2)}\n`);
  else for (const x of findings) io.out(`[${x.level.toUpperCase().padEnd(5)}] ${x.what}${x.fix ? `\n        fix: ${x.fix}` : ''}\n`);
  if (findings.some((x) => x.level === 'error')) return EXIT_FAILED;
  return findings.some((x) => x.level === 'warn') ? EXIT_REJECTED : EXIT_OK;
}
