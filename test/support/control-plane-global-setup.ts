// Global setup of the `kubernetes` project: ONE real control plane (etcd + kube-apiserver, the
// CRD and daemonset/ installed) for the whole run, shared by every file through inject('controlPlane').
// Missing Go tools: locally the suites skip with the command to build them; with CI=true it fails.
import type { TestProject } from 'vitest/node';
import { CONTROL_PLANE_TOOLS, type ControlPlaneInfo, startControlPlane } from './control-plane.ts';
import { missingGoTools } from './go-tools.ts';
import { prerequisitesRequired } from './e2e-prereqs.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** null: the Go tools are not built (local run); the suites skip. */
    controlPlane: ControlPlaneInfo | null;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const missing = missingGoTools(CONTROL_PLANE_TOOLS);
  if (missing.length > 0) {
    const why = `Go test tools not built: ${missing.join(', ')} (run \`bash scripts/build-go-tools.sh\`)`;
    if (prerequisitesRequired()) throw new Error(why);
    process.stdout.write(`\nkubernetes suites SKIPPED: ${why}\n\n`);
    project.provide('controlPlane', null);
    return async () => undefined;
  }
  const cp = await startControlPlane({ log: (l) => process.stdout.write(`${l}\n`) });
  process.stdout.write(`[control-plane] shared control plane up in ${cp.info.startupMs} ms (${cp.info.server})\n`);
  project.provide('controlPlane', cp.info);
  return async () => {
    await cp.stop();
  };
}
