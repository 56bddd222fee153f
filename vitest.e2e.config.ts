import { defineProject } from 'vitest/config';

// End-to-end suite: real registry, containerd, Docker. Files run one at a time (they share
// dockerd, ports and the locally built images) with timeouts sized for image builds.
export default defineProject({
  test: {
    name: 'e2e',
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/support/e2e-global-setup.ts'],
    fileParallelism: false,
    // Last, after unit+integration and reliability: e2e builds images and would starve them of CPU.
    sequence: { groupOrder: 2 },
    testTimeout: 240_000,
    hookTimeout: 900_000,
    env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
  },
});
