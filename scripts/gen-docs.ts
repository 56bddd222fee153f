// Generates the parts of the docs that must match the code exactly:
//   docs/errors.md            every NRC_E_ code of src/errors.ts with its cause and fix
//   docs/reference.md         the section between the GENERATED markers: every command and flag
// `npm run docs` rewrites them; test/unit/error-docs.test.ts and cli-help.test.ts fail when they drift.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS } from '../src/cli.ts';
import { envName } from '../src/commands/options.ts';
import { ERROR_CODES } from '../src/errors.ts';

export const REPO_ROOT = join(import.meta.dirname, '..');
export const ERRORS_DOC = join(REPO_ROOT, 'docs', 'errors.md');
export const REFERENCE_DOC = join(REPO_ROOT, 'docs', 'reference.md');
export const BEGIN = '<!-- BEGIN GENERATED: commands (npm run docs) -->';
export const END = '<!-- END GENERATED: commands -->';

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, '<br>');

/** Sections of docs/errors.md, by code prefix (first match wins); they follow src/errors.ts's order. */
const GROUPS: readonly [string, string][] = [
  ['NRC_E_REGISTRY_CONFIG', 'Registry config'],
  ['NRC_E_CA_', 'Registry config'],
  ['NRC_E_REGISTRY_SPEC', 'Kubernetes sources and node status'],
  ['NRC_E_REGISTRY_SECRET', 'Kubernetes sources and node status'],
  ['NRC_E_REGISTRY_KIND', 'Kubernetes sources and node status'],
  ['NRC_E_K8S_', 'Kubernetes sources and node status'],
  ['NRC_E_NODE_', 'Kubernetes sources and node status'],
  ['NRC_E_ECR_', 'AWS ECR'],
  ['NRC_E_CREDENTIAL_', 'Credential check'],
  ['NRC_E_CONTAINERD_', 'Host files and containerd'],
  ['NRC_E_HOST_', 'Host files and containerd'],
  ['NRC_E_UNSAFE_', 'Host files and containerd'],
  ['NRC_E_TARGET_', 'Host files and containerd'],
  ['NRC_E_FOREIGN_', 'Host files and containerd'],
  ['NRC_E_WRITE_', 'Host files and containerd'],
  ['NRC_E_STATE_', 'Host files and containerd'],
  ['NRC_E_PROVIDER_', 'Credential provider mode'],
];

function group(code: string): string {
  return GROUPS.find(([prefix]) => code.startsWith(prefix))?.[1] ?? 'Input: the docker config';
}

export function renderErrorsDoc(): string {
  const codes = Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[];
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from src/errors.ts by `npm run docs`; test/unit/error-docs.test.ts keeps it in step. Do not edit by hand. -->',
    '',
    'Every problem the agent reports carries a stable `NRC_E_...` code: in its JSON logs (`code`), in',
    'the `nrc_apply_errors_total{code}` metric, in the Node annotation `registry-credentials.okteto.com/last-errors`,',
    'in Warning Events (reason `RegistryCredentialsError`) and on stderr of the one-shot commands. Find the',
    'code below; [troubleshooting.md](troubleshooting.md) explains how to look at a node.',
    '',
  ];
  const order: string[] = [];
  for (const code of codes) if (!order.includes(group(code))) order.push(group(code));
  for (const g of order) {
    lines.push(`## ${g}`, '', '| Code | Cause | Fix |', '| --- | --- | --- |');
    for (const code of codes.filter((c) => group(c) === g)) {
      const info = ERROR_CODES[code];
      lines.push(`| <a id="${code.toLowerCase()}"></a>\`${code}\` | ${cell(info.summary)} | ${cell(info.fix)} |`);
    }
    lines.push('');
  }
  return `${lines.join('\n')}`;
}

export function renderCommandsReference(): string {
  const out: string[] = [BEGIN, ''];
  for (const [name, c] of Object.entries(COMMANDS)) {
    out.push(`### \`${name}\``, '', ...c.summary.split('\n').map((l) => `${l}  `), '');
    out.push('| Flag | Environment | Default | Meaning |', '| --- | --- | --- | --- |');
    for (const s of c.flags) {
      const def = s.default === undefined ? (s.type === 'boolean' ? 'off' : '—') : s.default === '' ? "`''`" : `\`${s.default}\``;
      out.push(`| \`--${s.name}${s.type === 'string' ? ' VALUE' : ''}\` | \`${envName(s.name)}\` | ${def} | ${cell(s.help)} |`);
    }
    out.push('');
  }
  out.push(END);
  return out.join('\n');
}

/** The reference doc with its generated section replaced. */
export function renderReferenceDoc(current: string): string {
  const a = current.indexOf(BEGIN);
  const b = current.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${REFERENCE_DOC} lacks the ${BEGIN} … ${END} markers`);
  return current.slice(0, a) + renderCommandsReference() + current.slice(b + END.length);
}

if (process.argv[1] && import.meta.filename === (await import('node:fs')).realpathSync(process.argv[1])) {
  writeFileSync(ERRORS_DOC, renderErrorsDoc());
  writeFileSync(REFERENCE_DOC, renderReferenceDoc(readFileSync(REFERENCE_DOC, 'utf8')));
  process.stdout.write('wrote docs/errors.md and the commands section of docs/reference.md\n');
}
