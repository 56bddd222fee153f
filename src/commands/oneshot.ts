import { AgentError } from '../errors.ts';
import type { HostFs } from '../host/host-fs.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { secretsOf } from '../model/secret-forms.ts';
import { readDockerConfigFile } from '../sources/file-source.ts';
import type { HostOptions } from '../model/host-options.ts';
import { maskFile } from '../plan/mask.ts';
import type { FileChange } from '../model/apply-report.ts';
import type { Plan } from '../plan/types.ts';
import { planOnHost, reconcileOnce, type Planned } from '../reconcile/engine.ts';
import type { TargetOptions } from '../runtime/targets.ts';
import { hostConfig, inputConfig, loadRegistryConfig, openHost, type InputConfig } from './config.ts';
import type { Flags } from './options.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_REJECTED = 2;

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface Inputs {
  readonly host: HostFs;
  readonly credentials: readonly RegistryCredential[];
  readonly hostOptions: ReadonlyMap<string, HostOptions>;
  readonly targetOptions: TargetOptions;
  /** Entries and options that were rejected; the rest is still applied. */
  readonly rejected: readonly AgentError[];
}

/** Reads the input files; an AgentError means nothing can be done at all (exit 1). */
export function readInputs(c: InputConfig, needDockerConfig: boolean): Inputs | AgentError {
  const host = openHost(c.hostRoot);
  if (host instanceof AgentError) return host;
  const registryConfig = loadRegistryConfig(c.registryConfig);
  if (registryConfig instanceof AgentError) return registryConfig;
  let credentials: readonly RegistryCredential[] = [];
  const rejected: AgentError[] = [...registryConfig.errors];
  const file = c.dockerconfig;
  if (file) {
    const snap = readDockerConfigFile(file, `file:${file}`);
    if (!snap.ok) return snap.errors[0] ?? new AgentError('NRC_E_INPUT_SHAPE', { subject: file });
    credentials = snap.credentials;
    rejected.push(...snap.errors);
  } else if (needDockerConfig) {
    return new AgentError('NRC_E_INPUT_UNREADABLE', { detail: '(no --dockerconfig given)' });
  }
  return { host, credentials, hostOptions: registryConfig.hosts, targetOptions: c.targets, rejected };
}

export function describeChange(c: FileChange): string {
  const parts = [
    c.added.length ? `added ${c.added.join(', ')}` : '',
    c.updated.length ? `updated ${c.updated.join(', ')}` : '',
    c.removed.length ? `removed ${c.removed.join(', ')}` : '',
  ].filter(Boolean);
  return `${c.change.padEnd(7)} ${c.path}${parts.length ? ` (${parts.join('; ')})` : ''}`;
}

function reportErrors(io: Io, errors: readonly AgentError[]): void {
  for (const e of errors) io.err(`${e.message}\n`);
}

/** The planned changes as unified diffs of masked content. */
export async function renderDiff(planned: Planned, known: readonly string[]): Promise<string> {
  // Only render needs a diff library: loaded here, so the long-running agent never pays for it
  // (a dynamic import, so that the bundle keeps it in a chunk of its own).
  const { createTwoFilesPatch } = await import('diff');
  const chunks: string[] = [];
  const plan: Plan = planned.plan;
  for (const op of plan.operations) {
    if (op.op !== 'write' && op.op !== 'delete') continue;
    const before = planned.snapshot.get(op.path);
    const oldText = before?.kind === 'file' ? maskFile(op.path, before.bytes, known) : '';
    const newText = op.op === 'write' ? maskFile(op.path, op.bytes, known) : '';
    const oldName = before?.kind === 'file' ? op.path : '/dev/null';
    const newName = op.op === 'write' ? op.path : '/dev/null';
    chunks.push(createTwoFilesPatch(oldName, newName, oldText, newText, undefined, undefined, { context: 3 }).replace(/^=+\n/, ''));
  }
  return chunks.join('');
}

export function applyCommand(f: Flags, io: Io): number {
  const inputs = readInputs(inputConfig(f), true);
  if (inputs instanceof AgentError) {
    reportErrors(io, [inputs]);
    io.err('Nothing was changed on the host.\n');
    return EXIT_FAILED;
  }
  const outcome = reconcileOnce(inputs);
  if (outcome instanceof AgentError) {
    reportErrors(io, [inputs.rejected, [outcome]].flat());
    io.err('Nothing was changed on the host.\n');
    return EXIT_FAILED;
  }
  for (const c of outcome.plan.changes) io.out(`${describeChange(c)}\n`);
  if (outcome.plan.changes.length === 0) io.out('Host already up to date: nothing written.\n');
  reportErrors(io, [...inputs.rejected, ...outcome.errors]);
  if (outcome.result.errors.length > 0) return EXIT_FAILED;
  return inputs.rejected.length + outcome.problems.length > 0 ? EXIT_REJECTED : EXIT_OK;
}

export async function renderCommand(f: Flags, io: Io): Promise<number> {
  const inputs = readInputs(inputConfig(f), true);
  if (inputs instanceof AgentError) {
    reportErrors(io, [inputs]);
    return EXIT_FAILED;
  }
  const planned = planOnHost(inputs);
  if (planned instanceof AgentError) {
    reportErrors(io, [planned]);
    return EXIT_FAILED;
  }
  const diff = await renderDiff(planned, secretsOf(inputs.credentials));
  io.out(diff === '' ? 'No changes.\n' : diff);
  const problems = [...inputs.rejected, ...planned.problems];
  reportErrors(io, problems);
  return problems.length > 0 ? EXIT_REJECTED : EXIT_OK;
}

export function cleanupCommand(f: Flags, io: Io): number {
  const c = hostConfig(f);
  const host = openHost(c.hostRoot);
  if (host instanceof AgentError) {
    reportErrors(io, [host]);
    return EXIT_FAILED;
  }
  const outcome = reconcileOnce({ host, credentials: [], hostOptions: new Map(), targetOptions: c.targets, cleanup: true });
  if (outcome instanceof AgentError) {
    reportErrors(io, [outcome]);
    io.err('Nothing was removed: the agent only removes what its record proves it owns.\n');
    return EXIT_FAILED;
  }
  for (const c of outcome.plan.changes) io.out(`${describeChange(c)}\n`);
  if (outcome.plan.changes.length === 0) io.out('Nothing of the agent is left on this host.\n');
  reportErrors(io, [...outcome.plan.errors, ...outcome.result.errors]);
  return outcome.plan.errors.length + outcome.result.errors.length > 0 ? EXIT_FAILED : EXIT_OK;
}
