/**
 * Enforces the layering of ARCHITECTURE.md (DESIGN.md §2): imports only point down, band-1 domain
 * siblings do not import each other, and bands 0–1 use no clocks, Math.random, filesystem or network.
 * The checker is run on the real tree and on small synthetic sources that must fail.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';

const SRC = resolve(import.meta.dirname, '..', 'src');

const BANDS: Record<string, number> = {
  core: 0,
  crypto: 0,
  secagg: 1,
  privacy: 1,
  aggregation: 1,
  audit: 1,
  governance: 1,
  registry: 1,
  evaluation: 1,
  models: 1,
  data: 1,
  protocol: 1.5,
  storage: 2,
  transport: 2,
  coordinator: 3,
  participant: 3,
  simulation: 3,
  cli: 4,
  dashboard: 4,
};

/** Inside band 0, crypto may build on core but not the reverse. */
const ALLOWED_SAME_BAND: ReadonlyArray<[string, string]> = [['crypto', 'core']];

const BANNED_MODULES = [
  'fs',
  'fs/promises',
  'net',
  'http',
  'https',
  'http2',
  'tls',
  'dgram',
  'child_process',
  'worker_threads',
  'cluster',
];
const BANNED_CALLS: ReadonlyArray<[RegExp, string]> = [
  [/\bMath\.random\s*\(/, 'Math.random'],
  [/\bDate\.now\s*\(/, 'Date.now'],
  [/\bnew Date\s*\(\s*\)/, 'new Date()'],
  [/\bperformance\.now\s*\(/, 'performance.now'],
  [/\bprocess\.(env|hrtime|exit)\b/, 'process.env/hrtime/exit'],
];

export interface Violation {
  file: string;
  message: string;
}

function importSpecifiers(source: string): string[] {
  const specs: string[] = [];
  const re =
    /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
}

/** Checks one source file given its folder under src/ and the folder of each relative import. */
export function checkSource(fileRel: string, source: string): Violation[] {
  const out: Violation[] = [];
  const folder = fileRel.split(/[\\/]/)[0]!;
  const band = BANDS[folder];
  if (band === undefined) return [{ file: fileRel, message: `folder "${folder}" is not a declared layer` }];
  const code = stripComments(source);
  for (const spec of importSpecifiers(code)) {
    if (spec.startsWith('.')) {
      const target = relative(SRC, resolve(SRC, dirname(fileRel), spec));
      if (target.startsWith('..')) {
        out.push({ file: fileRel, message: `imports "${spec}" from outside src/` });
        continue;
      }
      const targetFolder = target.split(sep)[0]!;
      if (targetFolder === folder) continue;
      const targetBand = BANDS[targetFolder];
      if (targetBand === undefined) {
        out.push({ file: fileRel, message: `imports undeclared layer "${targetFolder}"` });
      } else if (targetBand > band) {
        out.push({
          file: fileRel,
          message: `upward import: ${folder} (band ${band}) -> ${targetFolder} (band ${targetBand})`,
        });
      } else if (
        targetBand === band &&
        !ALLOWED_SAME_BAND.some(([a, b]) => a === folder && b === targetFolder)
      ) {
        out.push({
          file: fileRel,
          message: `sibling import inside band ${band}: ${folder} -> ${targetFolder}`,
        });
      }
    } else if (band <= 1.5) {
      const bare = spec.replace(/^node:/, '');
      if (BANNED_MODULES.includes(bare))
        out.push({ file: fileRel, message: `banned module "${spec}" in band ${band}` });
    }
  }
  if (band <= 1.5) {
    for (const [re, name] of BANNED_CALLS) {
      if (re.test(code)) out.push({ file: fileRel, message: `banned API ${name} in band ${band}` });
    }
  }
  return out;
}

function listSources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listSources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

describe('architecture', () => {
  it('every source file keeps the layer rules', () => {
    const files = listSources(SRC);
    assert.ok(files.length > 10, 'expected to find the source tree');
    const violations = files.flatMap((f) => checkSource(relative(SRC, f), readFileSync(f, 'utf8')));
    assert.deepEqual(violations, []);
  });

  it('every folder has an index.ts that only re-exports', () => {
    for (const folder of readdirSync(SRC)) {
      if (!statSync(join(SRC, folder)).isDirectory() || folder === 'cli') continue;
      const index = readFileSync(join(SRC, folder, 'index.ts'), 'utf8');
      const lines = stripComments(index)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
      for (const l of lines)
        assert.match(
          l,
          /^export (\*|type \*|\{[^}]*\}|type \{[^}]*\}) from '\.\/[a-z0-9-/]+\.ts';$/,
          `${folder}/index.ts: ${l}`,
        );
    }
  });

  it('file names are kebab-case and there are no grab-bag folders', () => {
    for (const f of listSources(SRC)) {
      const rel = relative(SRC, f);
      assert.match(rel, /^[a-z0-9-]+(\/[a-z0-9-]+)*\.ts$/, rel);
      assert.doesNotMatch(rel, /(^|\/)(utils|helpers|types|misc)(\/|\.ts$)/, rel);
    }
  });

  it('the checker rejects each kind of violation', () => {
    assert.match(
      checkSource('models/a.ts', "import { x } from '../coordinator/run.ts';")[0]!.message,
      /upward/,
    );
    assert.match(checkSource('models/a.ts', "import { x } from '../data/csv.ts';")[0]!.message, /sibling/);
    assert.match(checkSource('core/a.ts', "import { x } from '../crypto/digest.ts';")[0]!.message, /sibling/);
    assert.equal(checkSource('crypto/a.ts', "import { x } from '../core/errors.ts';").length, 0);
    assert.match(
      checkSource('data/a.ts', "import { readFileSync } from 'node:fs';")[0]!.message,
      /banned module/,
    );
    assert.match(checkSource('core/a.ts', 'const r = Math.random();')[0]!.message, /Math\.random/);
    assert.match(checkSource('privacy/a.ts', 'const t = Date.now();')[0]!.message, /Date\.now/);
    assert.match(
      checkSource('protocol/a.ts', "const m = await import('node:net');")[0]!.message,
      /banned module/,
    );
    assert.equal(checkSource('storage/a.ts', "import { readFileSync } from 'node:fs';").length, 0);
    assert.equal(checkSource('coordinator/a.ts', "import { x } from '../protocol/messages.ts';").length, 0);
    assert.match(
      checkSource('storage/a.ts', "import { x } from '../transport/server.ts';")[0]!.message,
      /sibling/,
    );
    assert.equal(checkSource('models/a.ts', '// Math.random() is banned here').length, 0);
  });
});
