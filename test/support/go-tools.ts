// The Go-built test tools (testenv/, scripts/build-go-tools.sh): where they are, and whether this
// run may skip when they are missing (locally yes, with the command to run; in CI never).
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { prerequisitesRequired, REPO_ROOT } from './e2e-prereqs.ts';

let cached: string | undefined;

/** The bin directory the build script uses (NRC_GO_TOOLS_DIR wins), whether or not it is built. */
export function goToolsDir(): string {
  cached ??= execFileSync('bash', [join(REPO_ROOT, 'scripts', 'build-go-tools.sh'), '--print-dir'], { encoding: 'utf8' }).trim().split('\n').at(-1)!;
  return cached;
}

export function goTool(name: string): string {
  return join(goToolsDir(), name);
}

/** The tools of `names` that are not built; an empty list when all are there. */
export function missingGoTools(names: readonly string[]): string[] {
  return names.filter((n) => {
    try {
      accessSync(goTool(n), constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * For a suite's describe: `describe.skipIf(skipWithout([...]))`. Locally a missing tool skips the
 * suite with the command that builds it; with CI=true it throws, so CI can never pass by skipping.
 */
export function skipWithout(names: readonly string[]): boolean {
  const missing = missingGoTools(names);
  if (missing.length === 0) return false;
  const why = `Go test tools not built: ${missing.join(', ')} (run \`bash scripts/build-go-tools.sh\`)`;
  if (prerequisitesRequired()) throw new Error(why);
  console.warn(`skipping: ${why}`);
  return true;
}
