// Every command's --help is complete, every flag is documented in docs/reference.md, and the code
// reads no flag that a command does not declare.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { COMMANDS, main } from '../../src/cli.ts';
import { envName } from '../../src/commands/options.ts';
import { REFERENCE_DOC, REPO_ROOT, renderReferenceDoc } from '../../scripts/gen-docs.ts';

async function help(command: string): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await main([command, '--help'], { out: (t) => (out += t), err: (t) => (out += t) });
  return { code, out };
}

describe('--help', () => {
  for (const [name, c] of Object.entries(COMMANDS)) {
    test(`\`${name} --help\` shows the summary and every flag with its env variable and default`, async () => {
      const { code, out } = await help(name);
      expect(code).toBe(0);
      expect(out).toContain(`Usage: node-registry-credentials ${name} [flags]`);
      expect(out).toContain(c.summary);
      for (const s of c.flags) {
        expect(s.help.trim(), `--${s.name} of ${name} has no help text`).not.toBe('');
        const line = out.split('\n').findIndex((l) => l.trimStart().startsWith(`--${s.name}${s.type === 'string' ? ' VALUE' : ''} `) || l.trim() === `--${s.name}`);
        expect(line, `--${s.name} missing from ${name} --help`).toBeGreaterThanOrEqual(0);
        const block = out.split('\n').slice(line, line + 2).join('\n');
        expect(block).toContain(s.help);
        expect(block).toContain(`env ${envName(s.name)}`);
        if (s.default !== undefined) expect(block).toContain(`(default: ${s.default === '' ? "''" : s.default})`);
      }
    });
  }

  test('the top-level help names every command', async () => {
    let out = '';
    expect(await main(['--help'], { out: (t) => (out += t), err: () => undefined })).toBe(0);
    for (const name of Object.keys(COMMANDS)) expect(out).toMatch(new RegExp(`^  ${name} `, 'm'));
  });
});

describe('docs/reference.md', () => {
  const doc = readFileSync(REFERENCE_DOC, 'utf8');

  test('its commands section is what `npm run docs` generates (run it after changing a command or flag)', () => {
    expect(doc).toBe(renderReferenceDoc(doc));
  });

  test('documents every flag of every command with its environment variable', () => {
    for (const [name, c] of Object.entries(COMMANDS)) {
      const section = doc.slice(doc.indexOf(`### \`${name}\``));
      expect(section, `no section for ${name}`).not.toBe(doc.slice(-1));
      for (const s of c.flags) {
        expect(section).toContain(`\`--${s.name}`);
        expect(section).toContain(`\`${envName(s.name)}\``);
      }
    }
  });

  test('documents every registry-config key the parser accepts', () => {
    const parser = readFileSync(join(REPO_ROOT, 'src/sources/registry-config.ts'), 'utf8');
    const keys = /KNOWN_KEYS = new Set\(\[([^\]]*)\]\)/.exec(parser)?.[1]?.match(/'([a-z_]+)'/g)?.map((k) => k.slice(1, -1)) ?? [];
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(doc).toMatch(new RegExp(`\\| \`${k}\` \\|`));
  });
});

describe('flags the code reads', () => {
  test('every flag read in src/commands and src/check is declared by some command', () => {
    const declared = new Set(Object.values(COMMANDS).flatMap((c) => c.flags.map((s) => s.name)));
    const undeclared: string[] = [];
    for (const dir of ['src/commands', 'src/check']) {
      for (const file of readdirSync(join(REPO_ROOT, dir)).filter((n) => n.endsWith('.ts'))) {
        const text = readFileSync(join(REPO_ROOT, dir, file), 'utf8');
        for (const m of text.matchAll(/\bstr\(f, '([a-z-]+)'\)|\bf\['([a-z-]+)'\]/g)) {
          const name = m[1] ?? m[2]!;
          if (!declared.has(name)) undeclared.push(`${dir}/${file}: --${name}`);
        }
      }
    }
    expect(undeclared).toEqual([]);
  });
});
