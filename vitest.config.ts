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
      './vitest.e2e.config.ts',
    ],
  },
});
