import * as fs from 'node:fs';
import { posix } from 'node:path';
import { AgentError } from '../errors.ts';
import { readRecord } from '../host/apply.ts';
import type { HostFs } from '../host/host-fs.ts';
import { parseJsonObject, isJsonObject } from '../plan/json.ts';
import { detectTargets, kubeletSearchPath } from '../runtime/targets.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_REJECTED, type Io } from './oneshot.ts';
import { hostFromFlags, str, targetOptionsFromFlags, type Flags } from './options.ts';

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

export function diagnose(host: HostFs, f: Flags): Finding[] {
  const o = targetOptionsFromFlags(f);
  const findings: Finding[] = [];
  const detected = detectTargets(host, o);
  const c = detected.containerd;
  if (c) {
    findings.push({ level: 'ok', what: `container runtime: ${c.flavor} (config ${c.configFile}, version ${c.configVersion}; read ${c.filesRead.join(', ')})` });
    if (c.hostsDir) findings.push({ level: 'ok', what: `containerd config_path: ${c.configPaths.join(':')} → hosts.toml files go to ${c.hostsDir}` });
  } else {
    findings.push({ level: 'info', what: 'containerd: no config found at /etc/containerd/config.toml (nor k3s/RKE2): only config.json files are written' });
  }
  for (const p of detected.problems) findings.push({ level: p.code === 'NRC_E_CONTAINERD_COLON_LIST' ? 'warn' : 'error', what: p.message, code: p.code });
  if (host.listDir('/etc/crio') !== undefined) findings.push({ level: 'ok', what: 'container runtime: CRI-O (/etc/crio): the kubelet passes credentials to it; CAs go to /etc/containers/certs.d' });
  if (host.listDir('/etc/docker') !== undefined) findings.push({ level: 'ok', what: 'Docker config directory /etc/docker found: CAs also go to /etc/docker/certs.d' });

  const search = kubeletSearchPath(o);
  const reading = search.find((p) => {
    const st = host.stat(p);
    if (st.kind !== 'file') return false;
    const doc = parseJsonObject(st.bytes);
    return doc !== undefined && (p.endsWith('.dockercfg') || isJsonObject(doc['auths']));
  });
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

export function doctorCommand(f: Flags, io: Io): number {
  const host = hostFromFlags(f);
  if (host instanceof AgentError) {
    io.err(`${host.message}\n`);
    return EXIT_FAILED;
  }
  const findings = diagnose(host, f);
  if (str(f, 'output') === 'json') io.out(`${JSON.stringify(findings, null, 2)}\n`);
  else for (const x of findings) io.out(`[${x.level.toUpperCase().padEnd(5)}] ${x.what}${x.fix ? `\n        fix: ${x.fix}` : ''}\n`);
  if (findings.some((x) => x.level === 'error')) return EXIT_FAILED;
  return findings.some((x) => x.level === 'warn') ? EXIT_REJECTED : EXIT_OK;
}
