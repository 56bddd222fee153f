// docs/errors.md lists every error code the agent can emit, with the cause and fix of src/errors.ts.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ERROR_CODES } from '../../src/errors.ts';
import { ERRORS_DOC, REPO_ROOT, renderErrorsDoc } from '../../scripts/gen-docs.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const doc = readFileSync(ERRORS_DOC, 'utf8');

describe('docs/errors.md', () => {
  test('is what `npm run docs` generates from src/errors.ts (run it after adding or changing a code)', () => {
    expect(doc).toBe(renderErrorsDoc());
  });

  test('lists every code with its cause and fix, and no code that does not exist', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      const row = doc.split('\n').find((l) => l.includes(`\`${code}\``));
      expect(row, `${code} missing from docs/errors.md`).toBeDefined();
      expect(row).toContain(info.summary.replace(/\|/g, '\\|'));
      expect(row).toContain(info.fix.replace(/\|/g, '\\|'));
    }
    const listed = new Set(doc.match(/NRC_E_[A-Z0-9_]+/g));
    expect([...listed].filter((c) => !(c in ERROR_CODES))).toEqual([]);
  });

  test('every NRC_E_ code used anywhere in src/ is defined in the ERROR_CODES table', () => {
    const unknown: string[] = [];
    for (const file of sourceFiles(join(REPO_ROOT, 'src'))) {
      for (const code of readFileSync(file, 'utf8').match(/NRC_E_[A-Z0-9_]+/g) ?? []) {
        if (!(code in ERROR_CODES)) unknown.push(`${relative(REPO_ROOT, file)}: ${code}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  test('no other doc names a code that does not exist', () => {
    const docsDir = join(REPO_ROOT, 'docs');
    const bad: string[] = [];
    for (const name of readdirSync(docsDir).filter((n) => n.endsWith('.md'))) {
      // `NRC_E_ECR_*` names a family; only complete codes are checked.
      for (const code of readFileSync(join(docsDir, name), 'utf8').match(/NRC_E_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_]*\*)/g) ?? []) {
        if (!(code in ERROR_CODES)) bad.push(`docs/${name}: ${code}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
