#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { EXIT_FAILED, type Io } from './commands/oneshot.ts';
import {
  BROKER_FLAGS,
  BROKER_SUMMARY,
  CHECK_COMMAND_FLAGS,
  CHECK_FLAGS,
  CHECK_SUMMARY,
  COMMON_FLAGS,
  helpText,
  INPUT_FLAGS,
  parseFlags,
  RUN_FLAGS,
  STATUS_FLAGS,
  STATUS_SUMMARY,
  type Flags,
  type FlagSpec,
} from './commands/options.ts';

interface Command {
  readonly summary: string;
  readonly flags: readonly FlagSpec[];
  run(f: Flags, io: Io): number | Promise<number>;
}

const OUTPUT_FLAG: FlagSpec = { name: 'output', type: 'string', default: 'text', help: 'text or json.' };

// Each command's code is loaded only when it runs: the node agent (`run`) never carries the
// broker's or `status`'s dependencies (the AWS SDK, the Kubernetes client) in its memory.
export const COMMANDS: Record<string, Command> = {
  apply: {
    summary: 'Reconcile the host once from --dockerconfig, then exit.\nExit 0: all applied. 2: some entries rejected (coded errors on stderr), every valid one applied. 1: nothing changed.',
    flags: [...COMMON_FLAGS, ...INPUT_FLAGS],
    run: async (f, io) => (await import('./commands/oneshot.ts')).applyCommand(f, io),
  },
  render: {
    summary: 'Print the planned changes as a diff, every secret masked to its last 4 characters; write nothing.',
    flags: [...COMMON_FLAGS, ...INPUT_FLAGS],
    run: async (f, io) => (await import('./commands/oneshot.ts')).renderCommand(f, io),
  },
  cleanup: {
    summary: 'Remove exactly what the agent added and restore what it replaced, byte for byte. Safe to run twice.',
    flags: COMMON_FLAGS,
    run: async (f, io) => (await import('./commands/oneshot.ts')).cleanupCommand(f, io),
  },
  run: {
    summary: 'The long-running agent: watch the credential sources and keep the host in step.',
    flags: [...COMMON_FLAGS, ...INPUT_FLAGS, ...RUN_FLAGS],
    run: async (f, io) => (await import('./commands/run.ts')).runCommand(f, io),
  },
  broker: {
    summary: BROKER_SUMMARY,
    flags: [...COMMON_FLAGS.filter((s) => s.name === 'log-level' || s.name === 'help'), ...BROKER_FLAGS],
    run: async (f, io) => (await import('./commands/broker.ts')).brokerCommand(f, io),
  },
  doctor: {
    summary:
      'Report what the agent finds on the node (runtimes, containerd config_path, the file the kubelet reads, writable targets, cached ECR token expiries) and what to fix; with --check-credentials and --dockerconfig, also whether each registry accepts its credential.\nExit 0: all fine. 2: warnings. 1: errors (a rejected credential is one).',
    flags: [
      ...COMMON_FLAGS,
      ...INPUT_FLAGS,
      { name: 'check-credentials', type: 'boolean', help: "Also ask each registry of --dockerconfig whether it accepts its credential (its /v2/, with the registry config's CA)." },
      CHECK_FLAGS.find((s) => s.name === 'check-timeout-ms')!,
      OUTPUT_FLAG,
    ],
    run: async (f, io) => (await import('./commands/doctor.ts')).doctorCommand(f, io),
  },
  check: {
    summary: CHECK_SUMMARY,
    flags: CHECK_COMMAND_FLAGS,
    run: async (f, io) => (await import('./commands/check.ts')).checkCommand(f, io),
  },
  status: {
    summary: STATUS_SUMMARY,
    flags: STATUS_FLAGS,
    run: async (f, io) => (await import('./commands/status.ts')).statusCommand(f, io),
  },
  local: {
    summary: 'The local demo (what `npm start` runs): a sample node under .local/, re-applied on every edit of .local/dockerconfig.json.',
    flags: COMMON_FLAGS,
    run: async (f, io) => (await import('./commands/local.ts')).localCommand(f, io),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary.split('\n')[0]}`);
  return `Usage: node-registry-credentials <command> [flags]\n\nCommands:\n${lines.join('\n')}\n\nWith no command: local. \`<command> --help\` lists its flags; every flag can also be set as NRC_<FLAG> in the environment.\n`;
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name = 'local', ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`Unknown command ${JSON.stringify(name)}.\n\n${usage()}`);
    return EXIT_FAILED;
  }
  let flags: Flags;
  try {
    flags = parseFlags(rest, command.flags);
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${helpText(name, command.summary, command.flags)}`);
    return EXIT_FAILED;
  }
  if (flags['help']) {
    io.out(helpText(name, command.summary, command.flags));
    return 0;
  }
  return command.run(flags, io);
}

/** True when this module is the program (node dist/cli.js, tsx src/cli.ts), false when imported (tests, docs). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(import.meta.filename);
  } catch {
    return false;
  }
}

const io: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
if (isEntryPoint()) main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
    // A long-running command is done once it returns: open sockets or timers must not keep it alive.
    if (process.argv[2] === 'run' || process.argv[2] === 'broker' || process.argv[2] === 'local' || process.argv[2] === undefined) process.exit(code);
  },
  (err: unknown) => {
    // Never print the raw error object: its properties could carry input values.
    process.stderr.write(`unexpected failure: ${err instanceof Error ? err.name : 'error'}\n`);
    process.exitCode = EXIT_FAILED;
  },
);
