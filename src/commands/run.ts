import { AgentError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Source } from '../model/credential.ts';
import { Reconciler, type ApplyReport } from '../reconcile/reconciler.ts';
import { FileSource } from '../sources/file-source.ts';
import { EXIT_FAILED, EXIT_OK, type Io } from './oneshot.ts';
import { hostFromFlags, registryConfigFromFlags, str, targetOptionsFromFlags, type Flags, type FlagSpec } from './options.ts';

export const RUN_FLAGS: readonly FlagSpec[] = [
  { name: 'debounce-ms', type: 'string', default: '200', help: 'Coalesce source changes arriving within this window into one apply.' },
  { name: 'resync-seconds', type: 'string', default: '60', help: 'Re-check the host files this often (with jitter) to repair drift.' },
];

export interface RunningAgent {
  readonly reconciler: Reconciler;
  stop(): Promise<void>;
}

/** Sources in precedence order (earlier wins for the same registry). */
export function sourcesFromFlags(f: Flags): Source[] {
  const sources: Source[] = [];
  const file = str(f, 'dockerconfig');
  if (file) sources.push(new FileSource(file));
  return sources;
}

export async function startAgent(f: Flags, logger: Logger, sources: Source[], onApplied?: (r: ApplyReport) => void): Promise<RunningAgent | AgentError> {
  const host = hostFromFlags(f);
  if (host instanceof AgentError) return host;
  const registryConfig = registryConfigFromFlags(f);
  if (registryConfig instanceof AgentError) return registryConfig;
  if (!registryConfig.readable) return registryConfig.errors[0]!;
  const reconciler = new Reconciler({
    host,
    sources,
    hostOptions: registryConfig.hosts,
    hostOptionErrors: registryConfig.errors,
    targetOptions: targetOptionsFromFlags(f),
    logger,
    debounceMs: Number(str(f, 'debounce-ms') ?? 200),
    resyncMs: Number(str(f, 'resync-seconds') ?? 60) * 1000,
  });
  if (onApplied) reconciler.on('applied', onApplied);
  await reconciler.start();
  return { reconciler, stop: () => reconciler.stop() };
}

/** Resolves on the first SIGTERM or SIGINT. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(sig);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}

export async function runCommand(f: Flags, io: Io): Promise<number> {
  const logger = createLogger(str(f, 'log-level'));
  const sources = sourcesFromFlags(f);
  if (sources.length === 0) {
    io.err('run needs at least one credential source: --dockerconfig FILE|DIR (NRC_DOCKERCONFIG).\n');
    return EXIT_FAILED;
  }
  const agent = await startAgent(f, logger, sources);
  if (agent instanceof AgentError) {
    io.err(`${agent.message}\n`);
    return EXIT_FAILED;
  }
  const sig = await untilSignal();
  logger.info({ signal: sig }, 'stopping; the node keeps its configuration (cleanup runs only on uninstall)');
  await agent.stop();
  return EXIT_OK;
}
