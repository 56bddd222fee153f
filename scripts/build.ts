// `npm run build`: src/cli.ts bundled by esbuild into dist/ (what the image runs). The image
// carries no node_modules: every dependency is in the bundle. Each `await import(...)` of the
// source becomes a chunk of its own, loaded only when that code runs, so the idle agent still
// never parses the broker's Kubernetes client or the AWS SDK (docs/benchmarks.md).
//   tsx scripts/build.ts [OUT_DIR]     (default dist/)
import { builtinModules } from 'node:module';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Metafile, type Plugin } from 'esbuild';

const REPO = resolve(fileURLToPath(import.meta.url), '..', '..');

const BUILTIN = new RegExp(`^(node:.+|${builtinModules.map((m) => m.replace(/[/]/g, '\\/')).join('|')})$`);

/**
 * Node's built-ins through require() instead of an ES import: Node builds the ES namespace of a
 * built-in by reading every export, which runs its lazy getters (`node:util` alone then loads
 * worker_threads, locks, parseArgs, the assert diff, ...; `node:crypto` webcrypto, `node:net` its
 * BlockList): 0.7 MiB of RSS at rest for modules the agent never calls (docs/benchmarks.md).
 */
const builtinsByRequire: Plugin = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: BUILTIN }, (args) => (args.kind === 'import-statement' || args.kind === 'dynamic-import' ? { path: args.path, namespace: 'nrc-builtin' } : undefined));
    // esbuild's CommonJS interop reads each export's property descriptor, which materializes V8's
    // lazy data properties (util.diff, util.setTraceSigInt, ...): hand it getters instead.
    b.onLoad({ filter: /.*/, namespace: 'nrc-builtin' }, (args) => ({
      contents: `const m = require(${JSON.stringify(args.path)});
if (typeof m === 'object' && m !== null) {
  const o = {};
  for (const k of Object.getOwnPropertyNames(m)) Object.defineProperty(o, k, { get: () => m[k], enumerable: true });
  module.exports = o;
} else module.exports = m;`,
      loader: 'js',
    }));
  },
};

export function bundleOptions(outdir: string): BuildOptions {
  return {
    absWorkingDir: REPO,
    entryPoints: [join(REPO, 'src', 'cli.ts')],
    outdir,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    splitting: true,
    // ESM builds of the dependencies where they ship one (the AWS SDK's dist-es, ...): smaller.
    mainFields: ['module', 'main'],
    // Less source for V8 to hold; names kept so error and class names read the same as from tsc.
    minify: true,
    keepNames: true,
    // The dependencies' licence headers, one file per chunk that has any.
    legalComments: 'linked',
    chunkNames: 'chunks/[name]-[hash]',
    // CommonJS dependencies inside an ES module bundle still call require() for Node's built-ins.
    banner: { js: "import { createRequire as __nrcCreateRequire } from 'node:module'; const require = __nrcCreateRequire(import.meta.url);" },
    plugins: [builtinsByRequire],
    metafile: true,
    logLevel: 'warning',
  };
}

export async function bundle(outdir: string): Promise<Metafile> {
  // Only what a previous build wrote: dist/ also holds other outputs (dist/charts, helm-package.sh).
  await Promise.all(['cli.js', 'chunks', 'package.json'].map((f) => rm(join(outdir, f), { recursive: true, force: true })));
  const r = await build(bundleOptions(outdir));
  if (!r.metafile) throw new Error('esbuild returned no metafile');
  // The chunks are ES modules: said once here, so Node does not have to detect it (the image has
  // no package.json above dist/).
  await writeFile(join(outdir, 'package.json'), '{ "type": "module" }\n');
  return r.metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = resolve(process.argv[2] ?? join(REPO, 'dist'));
  const meta = await bundle(outdir);
  const bytes = Object.values(meta.outputs).reduce((n, o) => n + o.bytes, 0);
  process.stdout.write(`bundled src/cli.ts into ${outdir}: ${Object.keys(meta.outputs).length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB\n`);
}
