/**
 * Builds the `entente` CLI into one JavaScript file, dist/entente.js, with esbuild (a dependency of tsx):
 * src/cli/main.ts, every module it reaches and the npm packages they use, TypeScript types stripped. Only
 * packages with a native addon (better-sqlite3) stay imports, loaded from node_modules. Node then starts
 * the CLI by reading one file, instead of compiling ~150 TypeScript files through tsx and resolving a
 * few hundred package files on every call.
 *
 * The bundle's first line records a fingerprint of its inputs (path, size and modification time of every
 * non-test file under src/, plus this script, package.json, tsconfig.json, package-lock.json and npm's
 * record of the installed node_modules); `ensureCliBundle()` rebuilds
 * whenever the fingerprint differs, so an edit, a new, deleted or renamed file, or a checkout of older files
 * is never run stale. The new bundle is written under a temporary name and renamed into place, so processes
 * that start together never read half a file.
 *
 * Source files that use `import.meta.url` (to find data next to them: datasets/, src/models/ for the trainer
 * digest, bin/) get it rewritten to their own source path relative to the bundle, so they behave as under tsx.
 *
 * `node scripts/build-cli.mjs` builds unconditionally and prints the bundle's path.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI_SOURCE = join(ROOT, 'src', 'cli', 'main.ts');
export const CLI_BUNDLE = join(ROOT, 'dist', 'entente.js');
const STAMP = '// entente-cli-bundle ';
/** Packages with a native addon: they load their .node file relative to their own directory. */
const NATIVE_PACKAGES = ['better-sqlite3'];

/** Every input of the bundle with its size and modification time, hashed: equal fingerprints, equal bundle. */
export function computeFingerprint() {
  const lines = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!entry.name.endsWith('.test.ts')) lines.push(path);
    }
  };
  walk(join(ROOT, 'src'));
  lines.push(
    fileURLToPath(import.meta.url),
    join(ROOT, 'package.json'),
    join(ROOT, 'tsconfig.json'),
    join(ROOT, 'package-lock.json'),
    join(ROOT, 'node_modules', '.package-lock.json'),
  );
  const hash = createHash('sha256');
  for (const path of lines.sort()) {
    const s = statSync(path, { throwIfNoEntry: false });
    hash.update(`${relative(ROOT, path)}\0${s ? `${s.size}\0${s.mtimeMs}` : '-'}\n`);
  }
  return hash.digest('hex');
}

/** The fingerprint the current bundle was built from, or undefined when there is no bundle. */
function bundleFingerprint() {
  let fd;
  try {
    fd = openSync(CLI_BUNDLE, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(STAMP.length + 64);
    const n = readSync(fd, head, 0, head.length, 0);
    const text = head.subarray(0, n).toString('latin1');
    return text.startsWith(STAMP) ? text.slice(STAMP.length) : undefined;
  } finally {
    closeSync(fd);
  }
}

/** Rewrites `import.meta.url` in a source file to that file's own URL, expressed relative to the bundle. */
const sourceUrlPlugin = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const fromBundle = relative(dirname(CLI_BUNDLE), args.path).split(sep).join('/');
      const replaced = text.replace(
        /\bimport\.meta\.url\b/g,
        `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`,
      );
      const other = /\bimport\.meta\.(?!url\b)(\w+)/.exec(text);
      if (other) {
        return {
          errors: [
            { text: `import.meta.${other[1]} is not supported by the CLI bundle (only import.meta.url)` },
          ],
        };
      }
      return { contents: replaced, loader: 'ts' };
    });
  },
};

/** Builds the bundle now (esbuild's JS API) and returns its path. Throws esbuild's error on a build failure. */
export async function buildCliBundle(fingerprint = computeFingerprint()) {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [CLI_SOURCE],
    outfile: CLI_BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: NATIVE_PACKAGES,
    sourcemap: false,
    sourcesContent: false,
    legalComments: 'none',
    logLevel: 'silent',
    write: false,
    // The bundled CommonJS packages require Node's built-in modules through this `require`.
    banner: {
      js: `${STAMP}${fingerprint}\nimport { createRequire as __ententeRequire } from 'node:module';\nconst require = __ententeRequire(import.meta.url);`,
    },
    plugins: [sourceUrlPlugin],
  });
  await esbuild.stop?.();
  mkdirSync(dirname(CLI_BUNDLE), { recursive: true });
  // Map first, bundle last: a process that sees the new bundle also finds its map.
  const files = result.outputFiles.filter((f) => f.path !== CLI_BUNDLE);
  files.push(...result.outputFiles.filter((f) => f.path === CLI_BUNDLE));
  for (const file of files) {
    const tmp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
  return CLI_BUNDLE;
}

/** The bundle's path, rebuilt first when any input changed since it was built. */
export async function ensureCliBundle() {
  const fingerprint = computeFingerprint();
  if (bundleFingerprint() === fingerprint) return CLI_BUNDLE;
  return buildCliBundle(fingerprint);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const started = performance.now();
  await buildCliBundle();
  console.log(
    JSON.stringify({
      bundle: relative(process.cwd(), CLI_BUNDLE),
      ms: Math.round(performance.now() - started),
    }),
  );
}
