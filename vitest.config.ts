import { defineConfig } from 'vitest/config';

// `npm test` runs every project; `npm run test:e2e` runs only vitest.e2e.config.ts.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit+integration',
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Differential suites: the agent's output read by the kubelet's and containerd's own code
        // (testenv/ oracles, real containerd binaries). Needs scripts/build-go-tools.sh.
        test: {
          name: 'oracle',
          include: ['test/oracle/**/*.test.ts'],
          sequence: { groupOrder: 0 },
          testTimeout: 120_000,
        },
      },
      {
        // The Kubernetes side against a real kube-apiserver + etcd (testenv/, built by
        // scripts/build-go-tools.sh), started once for the run by the globalSetup; the agent
        // authenticates as the DaemonSet's ServiceAccount with daemonset/'s RBAC. The files share
        // namespace okteto (the shipped RBAC names it), so they run one at a time.
        test: {
          name: 'kubernetes',
          include: ['test/kubernetes/**/*.test.ts'],
          globalSetup: ['test/support/control-plane-global-setup.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 0 },
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Crashes, disk faults, drift, churn, hostile input (docs/reliability.md). Real processes
        // and mounts: one file at a time, in a group of its own after unit+integration, so kills and
        // mounts do not compete with other suites for the 2 cores.
        test: {
          name: 'reliability',
          include: ['test/reliability/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
      './vitest.e2e.config.ts',
      {
        // Real nodes (control plane, kubelet 1.34 on containerd 1.6 and 2.2, kubelet 1.37 on 2.2)
        // pulling through the DaemonSet: last, in a group of its own. Two files at a time: each
        // cluster has its own index (ports, bridge, cgroup root), and private-pull.test.ts spends
        // most of its 13 minutes waiting out the kubelet's 5-minute docker config cache while the
        // others run beside it (docs/e2e.md: about 7 minutes off a CI run).
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 3 },
          testTimeout: 1_800_000,
          hookTimeout: 1_200_000,
          globalSetup: ['test/support/e2e-global-setup.ts'],
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
        },
      },
    ],
  },
});
