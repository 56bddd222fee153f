// Global setup of the e2e project: checks prerequisites once and tells every file whether to run.
import type { TestProject } from 'vitest/node';
import { missingPrerequisites, prerequisitesRequired } from './e2e-prereqs.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    e2eSkipReason: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const missing = await missingPrerequisites();
  if (missing.length === 0) {
    project.provide('e2eSkipReason', '');
    return;
  }
  const list = missing.map((m) => `  - ${m}`).join('\n');
  if (prerequisitesRequired()) {
    throw new Error(`e2e prerequisites missing (CI=true makes this a failure):\n${list}`);
  }
  const reason = `e2e suite SKIPPED, prerequisites missing:\n${list}\n(set CI=true or E2E_REQUIRED=1 to make this a failure)`;
  process.stdout.write(`\n${reason}\n\n`);
  project.provide('e2eSkipReason', reason);
}
