// The layers of src/, lowest first: every import must point down this list (the data flow of
// README "How it works"), never up and never sideways to another folder of the same layer, and
// no two folders may import each other, even indirectly. A new folder must be placed here.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

export const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'log', 'metrics', 'node-http'], // error codes, the logger, the Prometheus exposition, node:http: import nothing of the agent
  ['model'], // shared contracts: credentials, registry keys, host options, file states, state paths, targets, the apply report
  ['sources', 'plan'], // credentials in; the pure planner. Neither knows the other, nor the host.
  ['host'], // the host writer: applies a plan under the host root
  ['runtime'], // detection of the kubelet's and containerd's files, read through the host
  ['check'], // the credential check and the gate the reconciler puts before the planner
  ['report', 'server'], // node status, metrics, configuration hash; /healthz /readyz /metrics
  ['reconcile'], // wires sources → check → plan → host, and reports
  ['broker'], // the cluster broker: Lease election, Registry resources + ECR → one dockerconfigjson Secret
  ['commands'], // typed configuration from flags, then the pieces above
  ['cli'], // argv → command
];

/** The unit a src file belongs to: its top folder, or the file's name for files directly in src/. */
export function unitOf(srcRelative: string): string {
  const parts = srcRelative.split('/');
  return parts.length === 1 ? parts[0]!.replace(/\.ts$/, '') : parts[0]!;
}

const rankOf = (unit: string): number => LAYERS.findIndex((l) => l.includes(unit));

/** Module specifiers of every static import/export-from, side-effect import and dynamic import(). */
export function importsOf(source: string): string[] {
  // Comments may mention imports; drop them first (a `//` after `:` is a URL, not a comment).
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"\\])\/\/.*$/gm, '$1');
  const out: string[] = [];
  for (const m of code.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  for (const m of code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

export interface Edge {
  /** src-relative paths, e.g. plan/planner.ts → host/host-fs.ts. */
  readonly from: string;
  readonly to: string;
  readonly specifier: string;
}

function srcFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return srcFiles(p);
    return e.name.endsWith('.ts') ? [relative(SRC, p).split('\\').join('/')] : [];
  });
}

export function edgesOfTree(): Edge[] {
  const edges: Edge[] = [];
  for (const file of srcFiles()) {
    for (const specifier of importsOf(readFileSync(join(SRC, file), 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const to = posix.normalize(posix.join(posix.dirname(file), specifier));
      edges.push({ from: file, to, specifier });
    }
  }
  return edges;
}

/** Imports that run from a lower layer to a higher one, or sideways between folders of one layer. */
export function layerViolations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const [from, to] = [unitOf(e.from), unitOf(e.to)];
    if (from === to) continue;
    const [rf, rt] = [rankOf(from), rankOf(to)];
    if (rf < 0) out.push(`src/${e.from}: folder "${from}" has no place in LAYERS (test/unit/layers.test.ts)`);
    else if (rt < 0 || to.startsWith('..')) out.push(`src/${e.from}: imports ${e.specifier}, outside the layers`);
    else if (rt >= rf) out.push(`src/${e.from}: imports ${e.specifier}, but ${to} (layer ${rt}) is ${rt === rf ? 'beside' : 'above'} ${from} (layer ${rf})`);
  }
  return out;
}

/** The folder of a src file; a file directly in src/ (cli.ts, errors.ts) counts as a folder of its own. */
const folderOf = (srcRelative: string): string => (dirname(srcRelative) === '.' ? srcRelative : dirname(srcRelative));

/** Cycles between folders (src/sources/ecr and src/sources/kubernetes are folders of their own). */
export function folderCycles(edges: readonly Edge[]): string[] {
  const graph = new Map<string, Map<string, Edge>>();
  for (const e of edges) {
    const [a, b] = [folderOf(e.from), folderOf(e.to)];
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Map());
    if (!graph.get(a)!.has(b)) graph.get(a)!.set(b, e);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const [m, e] of graph.get(n) ?? []) {
      if (state.get(m) === 'open') {
        const loop = [...stack.slice(stack.indexOf(m)), m];
        cycles.push(`import cycle between folders ${loop.map((d) => `src/${d}`).join(' → ')} (first edge back: src/${e.from} imports ${e.specifier})`);
      } else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

describe('layers of src/', () => {
  const edges = edgesOfTree();

  it('finds the imports of the tree (static, export-from, type and dynamic)', () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(importsOf("import a from './a.ts';\nexport { b } from '../b.ts';\nimport type { C } from './c.ts';\nconst d = await import('./d.ts');\ntype E = typeof import('./e.ts').E;\n// import('./not-me.ts')\nconst url = 'https://x';\nimport './f.ts';"))
      .toEqual(['./a.ts', '../b.ts', './c.ts', './f.ts', './d.ts', './e.ts']);
  });

  it('places every folder of src/ in a layer', () => {
    const unknown = [...new Set(srcFiles().map(unitOf))].filter((u) => rankOf(u) < 0);
    expect(unknown, 'add the folder to LAYERS in test/unit/layers.test.ts').toEqual([]);
  });

  it('has no import from a lower layer to a higher one, nor between folders of one layer', () => {
    expect(layerViolations(edges)).toEqual([]);
  });

  it('has no import cycle between folders', () => {
    expect(folderCycles(edges)).toEqual([]);
  });

  it("matches README's layout table: every folder of src/ is a row, in layer order", () => {
    const readme = readFileSync(resolve(SRC, '../README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('| folder | role |')).split('\n\n')[0]!.split('\n').slice(2);
    const rows = table.map((row) => [...row.split('|')[1]!.matchAll(/`src\/([^`]+)`/g)].map((m) => unitOf(m[1]!.replace(/\/$/, ''))));
    expect(new Set(rows.flat())).toEqual(new Set(srcFiles().map(unitOf)));
    const ranks = rows.map((units) => Math.min(...units.map(rankOf)));
    expect(ranks, 'README rows out of layer order').toEqual([...ranks].sort((a, b) => a - b));
  });

  it('names the file and the import when one goes up, sideways or round in a cycle', () => {
    const bad: Edge[] = [
      { from: 'plan/planner.ts', to: 'host/host-fs.ts', specifier: '../host/host-fs.ts' },
      { from: 'sources/ecr/token-store.ts', to: 'plan/ownership.ts', specifier: '../../plan/ownership.ts' },
      { from: 'sources/kubernetes/a.ts', to: 'sources/ecr/b.ts', specifier: '../ecr/b.ts' },
      { from: 'sources/ecr/b.ts', to: 'sources/kubernetes/a.ts', specifier: '../kubernetes/a.ts' },
    ];
    expect(layerViolations(bad)).toEqual([
      'src/plan/planner.ts: imports ../host/host-fs.ts, but host (layer 3) is above plan (layer 2)',
      'src/sources/ecr/token-store.ts: imports ../../plan/ownership.ts, but plan (layer 2) is beside sources (layer 2)',
    ]);
    expect(folderCycles(bad)).toEqual([
      'import cycle between folders src/sources/ecr → src/sources/kubernetes → src/sources/ecr (first edge back: src/sources/kubernetes/a.ts imports ../ecr/b.ts)',
    ]);
  });
});
