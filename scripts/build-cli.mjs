/**
 * Builds the `entente` CLI into one CommonJS file, dist/entente.cjs, with esbuild (a dependency of tsx):
 * src/cli/main.ts, every module it reaches and the npm packages they use, TypeScript types stripped. Only
 * packages with a native addon (better-sqlite3) stay `require`s, loaded from node_modules. `runCliBundle()`
 * runs it in the calling process with V8's code cache, so a call reads two files instead of compiling
 * ~150 TypeScript files through tsx and resolving a few hundred package files. (CommonJS because Node 20
 * offers a code cache only for scripts; top-level await in src/ would therefore fail the build.)
 *
 * The bundle's first line records a fingerprint of its inputs (path, size and modification time of every
 * non-test file under src/, plus this script, package.json, tsconfig.json, package-lock.json and npm's
 * record of the installed node_modules); `ensureCliBundle()` rebuilds whenever the fingerprint differs, so
 * an edit, a new, deleted or renamed file, or a checkout of older files is never run stale. The new bundle
 * is written under a temporary name and renamed into place, so processes that start together never read
 * half a file.
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
import Module from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI_SOURCE = join(ROOT, 'src', 'cli', 'main.ts');
export const CLI_BUNDLE = join(ROOT, 'dist', 'entente.cjs');
const CLI_CACHE = join(ROOT, 'dist', 'entente.cjs.v8-cache');
const STAMP = '// entente-cli-bundle ';
/** Packages with a native addon: they load their .node file relative to their own directory. */
const NATIVE_PACKAGES = ['better-sqlite3'];

/**
 * Every input of the bundle under `root` (the checkout by default) with its size and modification time,
 * hashed: equal fingerprints, equal bundle.
 */
export function computeFingerprint(root = ROOT) {
  const lines = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!entry.name.endsWith('.test.ts')) lines.push(path);
    }
  };
  walk(join(root, 'src'));
  lines.push(
    fileURLToPath(import.meta.url),
    join(root, 'package.json'),
    join(root, 'tsconfig.json'),
    join(root, 'package-lock.json'),
    join(root, 'node_modules', '.package-lock.json'),
  );
  const hash = createHash('sha256');
  for (const path of lines.sort()) {
    const s = statSync(path, { throwIfNoEntry: false });
    hash.update(`${relative(root, path)}\0${s ? `${s.size}\0${s.mtimeMs}` : '-'}\n`);
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

/**
 * Rewrites `import.meta.url` in a source file to that file's own URL, computed from the bundle's directory
 * (the wrapper's `__dirname`), so the bundle finds datasets/ and src/models/ wherever the checkout is.
 */
const sourceUrlPlugin = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const other = /\bimport\.meta\.(?!url\b)(\w+)/.exec(text);
      if (other) {
        return {
          errors: [
            { text: `import.meta.${other[1]} is not supported by the CLI bundle (only import.meta.url)` },
          ],
        };
      }
      const fromBundle = JSON.stringify(relative(dirname(CLI_BUNDLE), args.path).split(sep).join('/'));
      const url = `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${fromBundle})).href`;
      return { contents: text.replace(/\bimport\.meta\.url\b/g, url), loader: 'ts' };
    });
  },
};

function writeAtomically(path, bytes) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

/** Builds the bundle now (esbuild's JS API) and returns its path. Throws esbuild's error on a build failure. */
export async function buildCliBundle(fingerprint = computeFingerprint()) {
  const esbuild = await import('esbuild');
  try {
    const result = await esbuild.build({
      entryPoints: [CLI_SOURCE],
      outfile: CLI_BUNDLE,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      external: NATIVE_PACKAGES,
      legalComments: 'none',
      logLevel: 'silent',
      // A package reading import.meta would get an empty object in a CommonJS bundle: refuse to build.
      logOverride: { 'empty-import-meta': 'error' },
      write: false,
      banner: { js: `${STAMP}${fingerprint}` },
      plugins: [sourceUrlPlugin],
    });
    // esbuild escapes non-ASCII characters in code but keeps comments as written (a few packages' comments
    // have typographic quotes); escaping those too makes the file ASCII, which runCliBundle reads as
    // one-byte text (half the memory, faster to read and compile than a UTF-16 string).
    const text = result.outputFiles[0].text.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    mkdirSync(dirname(CLI_BUNDLE), { recursive: true });
    writeAtomically(CLI_BUNDLE, text);
    return CLI_BUNDLE;
  } finally {
    // esbuild's service process would otherwise live as long as this one (a coordinator: days).
    await esbuild.stop?.();
  }
}

/** The bundle's path, rebuilt first when any input changed since it was built. */
export async function ensureCliBundle() {
  const fingerprint = computeFingerprint();
  if (bundleFingerprint() === fingerprint) return CLI_BUNDLE;
  return buildCliBundle(fingerprint);
}

/**
 * Runs the bundle in this process as a CommonJS module, with V8's code cache: the first run after a build
 * saves the compiled code next to the bundle (prefixed with the bundle's fingerprint, since V8 itself only
 * checks the source's length), later runs skip most of the compilation. A cache V8 rejects (another Node
 * version) is replaced; a directory that cannot be written only costs the saving.
 */
export function runCliBundle() {
  const source = readFileSync(CLI_BUNDLE, 'latin1'); // ASCII, see buildCliBundle
  const fingerprint = source.startsWith(STAMP) ? source.slice(STAMP.length, STAMP.length + 64) : '';
  let cachedData;
  try {
    const bytes = readFileSync(CLI_CACHE);
    if (fingerprint && bytes.subarray(0, 64).toString('latin1') === fingerprint)
      cachedData = bytes.subarray(64);
  } catch {
    // no cache yet
  }
  const script = new vm.Script(Module.wrap(source), {
    filename: CLI_BUNDLE,
    cachedData,
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const wrapper = script.runInThisContext();
  const module = { exports: {}, filename: CLI_BUNDLE, id: CLI_BUNDLE, loaded: false };
  const require = Module.createRequire(CLI_BUNDLE);
  wrapper.call(module.exports, module.exports, require, module, CLI_BUNDLE, dirname(CLI_BUNDLE));
  module.loaded = true;
  if (fingerprint && (cachedData === undefined || script.cachedDataRejected)) {
    try {
      writeAtomically(
        CLI_CACHE,
        Buffer.concat([Buffer.from(fingerprint, 'latin1'), script.createCachedData()]),
      );
    } catch {
      // read-only install: run without a cache
    }
  }
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
