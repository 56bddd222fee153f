// Crash-test worker: the agent's `apply` command (src/commands/oneshot.ts, exactly what the CLI
// runs) in a loop over input generations, so that a SIGKILL from the test lands at any moment
// of an apply. It reports each generation on fd 1 synchronously, before and after it:
//   begin <gen> / done <gen> <exit code>
// argv: <host-root> <inputs dir> <first gen> <gens>; inputs are gen-<n>.json and gen-<n>.toml.
import { writeSync } from 'node:fs';
import * as path from 'node:path';
import { applyCommand, type Io } from '../../src/commands/oneshot.ts';
import { COMMON_FLAGS, INPUT_FLAGS, parseFlags } from '../../src/commands/options.ts';

const [hostRoot, inputs, first, count] = process.argv.slice(2);
const io: Io = { out: () => undefined, err: (t) => writeSync(2, t) };
writeSync(1, 'ready\n');
const gens = Number(count);
for (let i = 0; ; i++) {
  const gen = Number(first) + i;
  const input = gen % gens;
  const flags = parseFlags(
    ['--host-root', hostRoot!, '--dockerconfig', path.join(inputs!, `gen-${input}.json`), '--registry-config', path.join(inputs!, `gen-${input}.toml`)],
    [...COMMON_FLAGS, ...INPUT_FLAGS],
    {},
  );
  writeSync(1, `begin ${input}\n`);
  const code = applyCommand(flags, io);
  writeSync(1, `done ${input} ${code}\n`);
}
