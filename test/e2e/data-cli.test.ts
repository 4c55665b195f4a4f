/**
 * The data commands as a site runs them: `entente participant start` on a `;` separated file says
 * which delimiter the file seems to use (exit 2, INVALID_DATA) and reads it with `--delimiter ';'`
 * (then stops only for want of an identity); a trailing blank line is accepted; `entente schema
 * digest` refuses an invalid schema naming the field.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnEntente } from '../../src/simulation/index.ts';
import { SCHEMA_PATH } from './fixtures.ts';

async function runCli(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const h = spawnEntente(`entente ${args.slice(0, 2).join(' ')}`, args);
  let stdout = '';
  h.child.stdout?.setEncoding('utf8');
  h.child.stdout?.on('data', (d: string) => {
    stdout += d;
  });
  const closed = new Promise<void>((resolve) => h.child.once('close', () => resolve()));
  const code = await h.exited;
  await closed;
  return { code, stdout, stderr: h.stderr() };
}

describe('data files on the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'entente-data-cli-'));
  const csv = readFileSync(join(SCHEMA_PATH, '..', 'breast-cancer.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, 40);
  const semicolon = join(dir, 'semicolon.csv');
  writeFileSync(semicolon, `${csv.map((l) => l.replaceAll(',', ';')).join('\n')}\n\n`);
  const start = (file: string, extra: string[] = []) =>
    runCli(['participant', 'start', '--data', file, '--schema', SCHEMA_PATH, ...extra]);

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a ";" file without --delimiter: INVALID_DATA naming the delimiter it seems to use', async () => {
    const out = await start(semicolon);
    assert.equal(out.code, 2, out.stderr);
    assert.match(
      out.stderr,
      /entente: INVALID_DATA: .*seems to use ";" as its delimiter, not "," \(say so with --delimiter ;\)/,
    );
  });

  it('with --delimiter ";" (and a trailing blank line) the data loads; only the identity is missing', async () => {
    const out = await start(semicolon, ['--delimiter', ';']);
    assert.equal(out.code, 2, out.stderr);
    assert.match(
      out.stderr,
      /entente: INVALID_ARGUMENT: --site, or --workspace with --institution, is required/,
    );
    const bad = await start(semicolon, ['--delimiter', '|']);
    assert.match(bad.stderr, /entente: INVALID_ARGUMENT: --delimiter: must be ",", ";" or "tab"/);
  });

  it('entente schema digest refuses an invalid schema naming the field', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ features: [{ name: 'a', type: 'text' }] }));
    const out = await runCli(['schema', 'digest', file]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /entente: INVALID_CONFIG: data schema: features\[0\]\.type/);
  });
});
