/**
 * Every way a first-day user can get a command wrong ends in one line `entente: CODE: message` and the
 * exit code the README's "Exit codes" table documents for that code: missing and unreadable files,
 * malformed numbers, out-of-range and taken ports, unknown options and commands, coordinator URLs that
 * are malformed or unreachable, bad YAML, data that does not fit its schema. The CLI runs as a separate
 * process; a stack trace (`    at ` lines), an `Error:` prefix or an undocumented exit code fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ErrorCode, errorCodes } from '../../src/core/errors.ts';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { createSeededRng, sha256Hex } from '../../src/crypto/index.ts';
import { initializeWeights } from '../../src/models/index.ts';
import { SCHEMA_PATH, createTestWorkspace, findFreePort } from './fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** At most two CLI processes at a time (each spends most of its time loading the program). */
let running = 0;
const queue: (() => void)[] = [];
async function runCli(args: readonly string[]): Promise<CliResult> {
  if (running >= 2) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await new Promise((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', CLI, ...args],
        {
          cwd: ROOT,
          timeout: 120_000,
          env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn', ENTENTE_DEBUG: '' },
        },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
  } finally {
    running--;
    queue.shift()?.();
  }
}

/** The README's "Exit codes" table: code → exit. */
function readDocumentedExitCodes(): Map<string, number> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Exit codes'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| exit |')));
  const out = new Map<string, number>();
  for (const line of table.split('\n')) {
    const m = /^\| (\d+) \| (.*) \|$/.exec(line);
    if (!m) continue;
    for (const code of m[2]!.matchAll(/`([A-Z_]+)`/g)) out.set(code[1]!, Number(m[1]));
  }
  return out;
}

/** A failure as documented: one `entente: CODE: ` line, the documented exit code, no stack trace. */
function assertCleanFailure(r: CliResult, code: ErrorCode, label: string): void {
  const context = `${label}\nexit ${r.code}\nstderr:\n${r.stderr}`;
  assert.doesNotMatch(r.stderr, /^\s+at /m, `a stack trace: ${context}`);
  assert.doesNotMatch(r.stderr, /\b[A-Za-z]*Error:/, `an Error: prefix: ${context}`);
  assert.match(r.stderr, new RegExp(`^entente: ${code}: \\S`, 'm'), `expected ${code}: ${context}`);
  assert.equal(r.code, errorCodes[code].exit, `exit code: ${context}`);
  assert.equal(readDocumentedExitCodes().get(code), r.code, `exit ${r.code} undocumented for ${code}`);
}

const LEAF_COMMANDS = [
  ['init'],
  ['coordinator', 'start'],
  ['participant', 'start'],
  ['participant', 'enroll'],
  ['participant', 'rotate'],
  ['participant', 'trainer-digest'],
  ['participant', 'serve'],
  ['participant', 'score'],
  ['participant', 'drift'],
  ['run', 'start'],
  ['run', 'plan'],
  ['run', 'release'],
  ['run', 'cancel'],
  ['status'],
  ['metrics'],
  ['model', 'export'],
  ['model', 'predict'],
  ['model', 'list'],
  ['model', 'show'],
  ['model', 'diff'],
  ['model', 'alias', 'propose'],
  ['model', 'alias', 'sign'],
  ['model', 'alias', 'list'],
  ['demo'],
  ['doctor'],
  ['enrollment', 'token'],
  ['certificate', 'revoke'],
  ['proposal', 'create'],
  ['proposal', 'sign'],
  ['proposal', 'show'],
  ['proposal', 'list'],
  ['incident', 'raise'],
  ['incident', 'list'],
  ['incident', 'resume'],
  ['incident', 'drill', 'start'],
  ['incident', 'drill', 'list'],
  ['report', 'governance'],
  ['audit', 'verify'],
  ['audit', 'prove'],
  ['audit', 'export-bundle'],
  ['audit', 'check-proof'],
  ['audit', 'checkpoint'],
  ['audit', 'vkey'],
  ['audit', 'keys'],
  ['schema', 'digest'],
  ['privacy', 'epsilon'],
  ['privacy', 'calibrate'],
  ['privacy', 'plan'],
  ['eval', 'plan', 'create'],
  ['eval', 'plan', 'sign'],
  ['eval', 'plan', 'show'],
  ['eval', 'run'],
  ['eval', 'report'],
  ['monitor', 'run'],
  ['monitor', 'list'],
  ['monitor', 'show'],
  ['rollout', 'digest'],
  ['rollout', 'propose'],
  ['rollout', 'start'],
  ['rollout', 'status'],
  ['rollout', 'rollback'],
] as const;

describe('CLI errors: entente: CODE: message and the documented exit code', { timeout: 900_000 }, () => {
  let dir: string;
  let deadUrl: string;
  let taken: Server;
  let takenPort: number;
  const files: Record<string, string> = {};

  before(async () => {
    // A workspace whose recorded coordinator is gone: its endpoint names a port nobody listens on.
    const setup = await createTestWorkspace(['hospital-a', 'hospital-b'], 'entente-cli-errors-');
    dir = setup.dir;
    deadUrl = `https://127.0.0.1:${await findFreePort()}`;
    writeFileSync(setup.ws.endpointFile(), `${JSON.stringify({ url: deadUrl, pid: 1 })}\n`);
    takenPort = await findFreePort();
    taken = createServer();
    await new Promise<void>((r) => taken.listen(takenPort, '127.0.0.1', r));
    const put = (name: string, text: string): string => {
      const path = join(dir, name);
      writeFileSync(path, text);
      files[name] = path;
      return path;
    };
    put('bad.yaml', 'id: run-1\nrounds: [1, 2\nmodel: {kind: logistic\n');
    put('bad.json', '{"id": "run-1",');
    put('run.yaml', 'id: run-1\nrounds: 2\nmodel: {kind: logistic, inputDim: 30}\n');
    put('bad-schema.json', '{"features": 3}');
    put('bad-data.csv', 'x,y\n1,2\n');
    put('bad-proof.json', '{"leafIdx": "one"}');
    put('reference.json', JSON.stringify({ mean: new Array(30).fill(0), std: new Array(30).fill(1) }));
    put('data.csv', readFileSync(setup.dataPath('hospital-a'), 'utf8'));
    mkdirSync(join(dir, 'a-directory'));
    // A model file and its card, and cards that do not fit.
    const model = encodeSafetensors(
      initializeWeights({ kind: 'logistic', inputDim: 30 }, createSeededRng('cli-errors')),
    );
    writeFileSync(join(dir, 'model.safetensors'), model);
    files['model.safetensors'] = join(dir, 'model.safetensors');
    const card = (sha256: string, bytes: number) =>
      JSON.stringify({
        format: 'entente-model-card/1',
        run: 'run-1',
        rounds: 1,
        modelSpec: { kind: 'logistic', inputDim: 30 },
        model: { file: 'model.safetensors', sha256, bytes },
        standardization: null,
        dataSchemaDigest: null,
        finalMetrics: null,
        auditLog: { entry: 1, round: 1, modelSha256: sha256 },
        exportedAt: '2026-01-01T00:00:00.000Z',
      });
    put('model.card.json', card(sha256Hex(model), model.length));
    put('other.card.json', card('0'.repeat(64), model.length));
    const csvBytes = readFileSync(files['data.csv']!);
    put('csv-as-model.card.json', card(sha256Hex(csvBytes), csvBytes.length));
  });
  after(async () => {
    await new Promise<void>((r) => taken.close(() => r()));
  });

  it('the README table agrees with the error registry for every code', () => {
    const documented = readDocumentedExitCodes();
    for (const [code, { exit }] of Object.entries(errorCodes))
      assert.equal(documented.get(code), exit, `README exit code of ${code}`);
  });

  it('the walk covers every command the CLI defines', () => {
    const cliDir = join(ROOT, 'src', 'cli');
    const defined = readdirSync(cliDir)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .flatMap((f) =>
        [...readFileSync(join(cliDir, f), 'utf8').matchAll(/\.command\('([a-z-]+)'\)/g)].map((m) => m[1]!),
      );
    const walked = new Set<string>(LEAF_COMMANDS.flat());
    for (const name of defined) assert.ok(walked.has(name), `command "${name}" is not walked`);
  });

  it('an unknown option on every command is INVALID_ARGUMENT (exit 2), not commander noise', async () => {
    await Promise.all(
      LEAF_COMMANDS.map(async (cmd) => {
        const r = await runCli([...cmd, '--no-such-option']);
        assertCleanFailure(r, 'INVALID_ARGUMENT', cmd.join(' '));
        // Commander names a missing required option or argument first, else the unknown option.
        assert.match(r.stderr, /unknown option '--no-such-option'|not specified|missing required argument/);
      }),
    );
  });

  it('bad values at every edge name the mistake', async () => {
    const ws = (): string[] => ['--workspace', dir];
    const participant = (...extra: string[]): string[] => [
      'participant',
      'start',
      ...ws(),
      '--institution',
      'hospital-a',
      ...extra,
    ];
    const cases: { args: string[]; code: ErrorCode; says?: RegExp }[] = [
      // Unknown commands, missing arguments and options.
      { args: ['no-such-command'], code: 'INVALID_ARGUMENT', says: /unknown command/ },
      { args: ['run'], code: 'INVALID_ARGUMENT', says: /missing command/ },
      { args: ['proposal', 'sign', ...ws()], code: 'INVALID_ARGUMENT', says: /missing required argument/ },
      { args: ['participant', 'start', ...ws()], code: 'INVALID_ARGUMENT', says: /--data/ },
      {
        args: ['monitor', 'show', 'abc', ...ws()],
        code: 'INVALID_ARGUMENT',
        says: /model: must be a model SHA-256/,
      },
      {
        args: ['monitor', 'run', '--alias', 'production', '--timeout', '0', ...ws()],
        code: 'INVALID_ARGUMENT',
        says: /--timeout: must be a number of seconds > 0/,
      },
      { args: ['rollout', 'start', 'abc', ...ws()], code: 'INVALID_ARGUMENT', says: /rollout: must be 64/ },
      {
        args: ['rollout', 'digest', join(dir, 'missing.json')],
        code: 'INVALID_ARGUMENT',
        says: /plan: cannot read/,
      },
      // Files: missing, a directory, malformed.
      {
        args: participant('--data', join(dir, 'missing.csv'), '--schema', SCHEMA_PATH),
        code: 'INVALID_ARGUMENT',
        says: /--data: .*no such file/,
      },
      {
        args: participant('--data', join(dir, 'a-directory'), '--schema', SCHEMA_PATH),
        code: 'INVALID_ARGUMENT',
        says: /--data: .*directory/,
      },
      {
        args: participant('--data', files['data.csv']!, '--schema', join(dir, 'missing.json')),
        code: 'INVALID_ARGUMENT',
        says: /schema/,
      },
      {
        args: participant('--data', files['data.csv']!, '--schema', files['bad-schema.json']!),
        code: 'INVALID_CONFIG',
      },
      {
        args: participant('--data', files['bad-data.csv']!, '--schema', SCHEMA_PATH),
        code: 'INVALID_DATA',
      },
      {
        args: participant(
          '--data',
          files['data.csv']!,
          '--schema',
          SCHEMA_PATH,
          '--site-config',
          files['bad.yaml']!,
        ),
        code: 'INVALID_CONFIG',
      },
      // Malformed and out-of-range numbers.
      {
        args: participant('--data', files['data.csv']!, '--schema', SCHEMA_PATH, '--holdout', 'abc'),
        code: 'INVALID_ARGUMENT',
        says: /--holdout/,
      },
      {
        args: participant('--data', files['data.csv']!, '--schema', SCHEMA_PATH, '--holdout', '1.5'),
        code: 'INVALID_ARGUMENT',
        says: /--holdout/,
      },
      {
        args: ['coordinator', 'start', ...ws(), '--port', '99999'],
        code: 'INVALID_ARGUMENT',
        says: /--port/,
      },
      { args: ['coordinator', 'start', ...ws(), '--port', 'http'], code: 'INVALID_ARGUMENT', says: /--port/ },
      { args: ['coordinator', 'start', ...ws(), '--port', '-1'], code: 'INVALID_ARGUMENT', says: /--port/ },
      {
        args: ['coordinator', 'start', ...ws(), '--max-polls-per-member', '0x10'],
        code: 'INVALID_ARGUMENT',
        says: /--max-polls-per-member/,
      },
      { args: ['demo', '--rounds', 'ten'], code: 'INVALID_ARGUMENT', says: /--rounds/ },
      { args: ['demo', '--dp', '-1'], code: 'INVALID_ARGUMENT', says: /--dp/ },
      {
        args: ['init', join(dir, 'new-ws'), '--institutions', 'a,b', '--certificate-days', 'week'],
        code: 'INVALID_ARGUMENT',
        says: /--certificate-days/,
      },
      {
        args: ['enrollment', 'token', ...ws(), '--member', 'hospital-a', '--ttl-minutes', 'soon'],
        code: 'INVALID_ARGUMENT',
        says: /--ttl-minutes/,
      },
      {
        args: ['run', 'plan', files['run.yaml']!, ...ws(), '--wait-ms', '1e400'],
        code: 'INVALID_ARGUMENT',
        says: /--wait-ms/,
      },
      {
        args: ['audit', 'prove', '--log', dir, '--entry', 'first'],
        code: 'INVALID_ARGUMENT',
        says: /--entry/,
      },
      {
        args: [
          'privacy',
          'epsilon',
          '--accountant',
          'rdp',
          '--noise-multiplier',
          '1',
          '--sampling-rate',
          '0.1',
        ],
        code: 'INVALID_ARGUMENT',
        says: /--steps/,
      },
      // Alias names are checked before anything is sent.
      {
        args: ['model', 'alias', 'propose', 'Production!', 'ab'.repeat(32), ...ws()],
        code: 'INVALID_ARGUMENT',
        says: /name: must be 1 to 40 characters/,
      },
      // A host that is not this machine's (TEST-NET-3).
      {
        args: ['coordinator', 'start', ...ws(), '--host', '203.0.113.1', '--port', '0'],
        code: 'INVALID_ARGUMENT',
        says: /host/,
      },
      // A port that is taken.
      {
        args: ['coordinator', 'start', ...ws(), '--port', String(takenPort)],
        code: 'PORT_IN_USE',
      },
      // Serving on site: loopback only, a taken port, missing monitoring files.
      {
        args: [
          'participant',
          'serve',
          '--model',
          files['model.safetensors']!,
          '--schema',
          SCHEMA_PATH,
          '--site',
          join(dir, 'serve-site'),
          '--host',
          '10.0.0.1',
        ],
        code: 'INVALID_ARGUMENT',
        says: /--host: must be a loopback address/,
      },
      {
        args: [
          ...['participant', 'serve', '--model', files['model.safetensors']!, '--schema', SCHEMA_PATH],
          ...['--site', join(dir, 'serve-site'), '--reference', files['reference.json']!],
          ...['--port', String(takenPort)],
        ],
        code: 'PORT_IN_USE',
      },
      {
        args: [
          'participant',
          'drift',
          '--reference',
          join(dir, 'missing.json'),
          '--current',
          join(dir, 'missing.json'),
        ],
        code: 'INVALID_ARGUMENT',
        says: /--reference: cannot read/,
      },
      {
        args: ['participant', 'drift', '--reference', files['bad.json']!, '--current', files['bad.json']!],
        code: 'INVALID_DATA',
        says: /--reference: .* is not JSON/,
      },
      // Coordinator URLs: malformed, unreachable.
      {
        args: participant(
          '--data',
          files['data.csv']!,
          '--schema',
          SCHEMA_PATH,
          '--coordinator',
          'localhost:8443',
        ),
        code: 'INVALID_ARGUMENT',
        says: /--coordinator/,
      },
      {
        args: [
          'participant',
          'enroll',
          '--coordinator',
          'not a url',
          '--token',
          'x',
          '--dir',
          join(dir, 'site'),
        ],
        code: 'INVALID_ARGUMENT',
        says: /--coordinator/,
      },
      { args: ['status', ...ws()], code: 'UNAVAILABLE' },
      { args: ['run', 'start', files['run.yaml']!, ...ws()], code: 'UNAVAILABLE' },
      { args: ['proposal', 'list', ...ws()], code: 'UNAVAILABLE' },
      { args: ['metrics', 'run-1', ...ws()], code: 'UNAVAILABLE' },
      // With no coordinator running, the workspace's holder reads its files (offline export).
      {
        args: ['model', 'export', 'run-1', ...ws(), '--out', join(dir, 'm.safetensors')],
        code: 'NOT_FOUND',
        says: /run "run-1" does not exist in this workspace/,
      },
      { args: ['audit', 'verify', '--log', deadUrl, ...ws()], code: 'UNAVAILABLE' },
      { args: ['status', '--workspace', join(dir, 'missing-ws')], code: 'INVALID_CONFIG' },
      { args: ['doctor', '--workspace', join(dir, 'missing-ws')], code: 'INVALID_CONFIG' },
      { args: ['participant', 'rotate', '--dir', join(dir, 'missing-site')], code: 'INVALID_CONFIG' },
      {
        args: ['proposal', 'list', ...ws(), '--as', 'stranger'],
        code: 'UNKNOWN_PARTICIPANT',
        says: /stranger/,
      },
      // Bad YAML / JSON.
      { args: ['run', 'start', files['bad.yaml']!, ...ws()], code: 'INVALID_CONFIG', says: /line/ },
      { args: ['run', 'start', files['bad.json']!, ...ws()], code: 'INVALID_CONFIG' },
      { args: ['run', 'start', join(dir, 'missing.yaml'), ...ws()], code: 'INVALID_ARGUMENT' },
      { args: ['privacy', 'plan', files['bad.yaml']!], code: 'INVALID_CONFIG' },
      {
        args: ['proposal', 'create', ...ws(), '--kind', 'start-run', '--subject', files['bad.yaml']!],
        code: 'INVALID_CONFIG',
      },
      { args: ['audit', 'check-proof', join(dir, 'missing-proof.json')], code: 'INVALID_ARGUMENT' },
      {
        args: ['audit', 'check-proof', files['bad-proof.json']!],
        code: 'INVALID_ARGUMENT',
        says: /malformed/,
      },
      { args: ['audit', 'verify', '--log', join(dir, 'missing-log')], code: 'INVALID_ARGUMENT' },
      {
        args: ['audit', 'verify', '--log', dir, '--trusted-keys', files['bad.json']!],
        code: 'INVALID_CONFIG',
      },
      // Model files and data for prediction.
      {
        args: [
          'model',
          'predict',
          '--model',
          join(dir, 'missing.safetensors'),
          '--data',
          files['data.csv']!,
          '--schema',
          SCHEMA_PATH,
        ],
        code: 'INVALID_ARGUMENT',
        says: /--model/,
      },
      {
        args: [
          ...['model', 'predict', '--model', files['data.csv']!, '--data', files['data.csv']!],
          ...['--schema', SCHEMA_PATH, '--card', files['csv-as-model.card.json']!],
        ],
        code: 'MALFORMED_BODY',
      },
      {
        args: [
          ...['model', 'predict', '--model', files['model.safetensors']!, '--data', files['data.csv']!],
          ...['--schema', SCHEMA_PATH, '--card', files['other.card.json']!],
        ],
        code: 'DIGEST_MISMATCH',
      },
      {
        args: [
          ...['model', 'predict', '--model', files['model.safetensors']!, '--data', files['data.csv']!],
          ...['--schema', SCHEMA_PATH, '--card', files['bad.json']!],
        ],
        code: 'INVALID_CONFIG',
      },
      {
        args: [
          ...['model', 'predict', '--model', files['model.safetensors']!, '--data', files['bad-data.csv']!],
          ...['--schema', SCHEMA_PATH],
        ],
        code: 'INVALID_DATA',
      },
      {
        args: [
          ...['model', 'predict', '--model', files['model.safetensors']!, '--data', files['data.csv']!],
          ...['--schema', SCHEMA_PATH, '--out', join(dir, 'no-such-dir', 'p.csv')],
        ],
        code: 'INVALID_ARGUMENT',
        says: /--out: .*directory does not exist/,
      },
      {
        args: ['metrics', 'run-1', ...ws(), '--csv', '--json'],
        code: 'INVALID_ARGUMENT',
        says: /--csv and --json/,
      },
    ];
    const failures: string[] = [];
    const check = async ({ args, code, says }: (typeof cases)[number]) => {
      const r = await runCli(args);
      try {
        assertCleanFailure(r, code, args.join(' '));
        if (says) assert.match(r.stderr, says, `${args.join(' ')}: ${r.stderr}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    };
    // Coordinator starts on the one workspace run after the other cases, one after another: two at once
    // would meet each other's workspace lock (WORKSPACE_LOCKED), and a start under way changes the
    // workspace the offline cases read, before the mistake each case is about.
    const starts = cases.filter((c) => c.args[0] === 'coordinator' && c.args[1] === 'start');
    await Promise.all(cases.filter((c) => !starts.includes(c)).map(check));
    for (const c of starts) await check(c);
    assert.deepEqual(failures, []);
  });
});
