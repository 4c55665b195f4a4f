/**
 * `entente audit …` end to end: a real log from the demo federation (3 rounds over mutual TLS), then
 * the auditor's CLI as a separate process — verify (workspace, bundle, https URL, trusted keys),
 * checkpoint/vkey, prove → check-proof, export-bundle — and a tampered copy of the coordinator's
 * database for each kind of tampering (edited, deleted, swapped, truncated rows), each named by the
 * first bad entry.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { formatVerifierKey, openNote, parseVerifierKey } from '../../src/audit/index.ts';
import { generateEd25519KeyPem, readEd25519PublicKey } from '../../src/crypto/signatures.ts';
import { computeWitnessName } from '../../src/storage/index.ts';
import { CLI_ENTRY, spawnEntente, stopChild, waitForUrl } from '../../src/simulation/index.ts';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: readonly string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI_ENTRY, ...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ENTENTE_LOG_LEVEL: 'warn' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const base = mkdtempSync(join(tmpdir(), 'entente-audit-cli-'));
const ws = join(base, 'ws');
const dbOf = (dir: string) => join(dir, 'coordinator', 'state', 'coordinator.db');

/** A copy of the workspace whose database `tamper` then edits. */
function tamperedCopy(name: string, tamper: (db: Database.Database) => void): string {
  const dir = join(base, name);
  cpSync(ws, dir, { recursive: true });
  const db = new Database(dbOf(dir));
  try {
    tamper(db);
  } finally {
    db.close();
  }
  return dir;
}

describe('entente audit (CLI)', { timeout: 120_000 }, () => {
  before(async () => {
    const demo = await runCli(['demo', '--workspace', ws, '--rounds', '3'], 90_000);
    assert.equal(demo.code, 0, demo.stderr.slice(-2000));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('verify accepts the real log (readable report, and --json)', async () => {
    const r = await runCli(['audit', 'verify', '--log', ws]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /trust on first use/);
    assert.match(r.stdout, /demo: 3 model versions, last round 3, completed/);
    assert.match(r.stdout, /^OK: \d+ entries and \d+ checkpoints verified$/m);
    const j = await runCli(['audit', 'verify', '--log', ws, '--json']);
    assert.equal(j.code, 0);
    const report = JSON.parse(j.stdout) as {
      ok: boolean;
      entries: number;
      keysFrom: string;
      problems: string[];
    };
    assert.equal(report.ok, true);
    assert.equal(report.keysFrom, 'log');
    assert.ok(report.entries > 20, `entries ${report.entries}`);
  });

  it('verify with --trusted-keys: the consortium keys pass, a foreign log key fails, a bad file exits 2', async () => {
    const consortium = JSON.parse(readFileSync(join(ws, 'consortium.json'), 'utf8')) as {
      log: { key: string };
      institutions: string[];
    };
    // Witness keys as an auditor gets them from the members themselves: each institution's own
    // identity key (made on its own machine at enrollment), in cosigner vkey form.
    const witnesses = consortium.institutions.map((id) =>
      formatVerifierKey(
        computeWitnessName('demo', id),
        readEd25519PublicKey(readFileSync(join(ws, 'sites', id, 'identity.key'), 'utf8')),
        0x04,
      ),
    );
    const good = join(base, 'trusted.json');
    writeFileSync(good, JSON.stringify({ log: consortium.log.key, witnesses, quorum: 2 }));
    const ok = await runCli(['audit', 'verify', '--log', ws, '--trusted-keys', good, '--json']);
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal((JSON.parse(ok.stdout) as { keysFrom: string }).keysFrom, 'trusted-keys');
    const foreign = join(base, 'foreign.json');
    const otherLogKey = formatVerifierKey('entente/demo/log', generateEd25519KeyPem().publicKey, 0x01);
    writeFileSync(foreign, JSON.stringify({ log: otherLogKey, witnesses: [], quorum: 0 }));
    const bad = await runCli(['audit', 'verify', '--log', ws, '--trusted-keys', foreign]);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stdout, /different log key/);
    writeFileSync(foreign, '{"log": 1}');
    assert.equal((await runCli(['audit', 'verify', '--log', ws, '--trusted-keys', foreign])).code, 2);
  });

  it('checkpoint prints the newest note exactly; it opens with the key vkey prints', async () => {
    const [cp, vk] = await Promise.all([
      runCli(['audit', 'checkpoint', '--log', ws]),
      runCli(['audit', 'vkey', '--log', ws]),
    ]);
    assert.equal(cp.code, 0);
    assert.equal(vk.code, 0);
    assert.ok(vk.stdout.endsWith('\n') && !vk.stdout.endsWith('\n\n'));
    const db = new Database(dbOf(ws), { readonly: true });
    const newest = db.prepare('SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1').get() as {
      note: string;
    };
    db.close();
    assert.equal(cp.stdout, newest.note);
    const opened = openNote(cp.stdout, [parseVerifierKey(vk.stdout.trimEnd())]);
    assert.equal(opened.ok, true);
  });

  it('prove → check-proof: valid 0, one flipped bit 1, garbage 2', async () => {
    const p = await runCli(['audit', 'prove', '--entry', '5', '--log', ws]);
    assert.equal(p.code, 0, p.stderr);
    const proof = JSON.parse(p.stdout) as { leafIdx: number; proof: string[] };
    assert.equal(proof.leafIdx, 5);
    const good = join(base, 'proof.json');
    writeFileSync(good, p.stdout);
    const flipped = Buffer.from(proof.proof[0]!, 'base64');
    flipped[7]! ^= 0x10;
    const badFile = join(base, 'proof-bad.json');
    writeFileSync(
      badFile,
      JSON.stringify({ ...proof, proof: [flipped.toString('base64'), ...proof.proof.slice(1)] }),
    );
    const garbage = join(base, 'proof-garbage.json');
    writeFileSync(garbage, 'not a proof {');
    const [v, i, m] = await Promise.all(
      [good, badFile, garbage].map((f) => runCli(['audit', 'check-proof', f])),
    );
    assert.equal(v!.code, 0, v!.stderr);
    assert.match(v!.stdout, /valid inclusion proof/);
    assert.equal(i!.code, 1);
    assert.match(i!.stderr, /invalid inclusion proof/);
    assert.equal(m!.code, 2);
    assert.match(m!.stderr, /malformed/);
  });

  it('export-bundle → verify on the bundle exits 0; an edited bundle exits 1', async () => {
    const out = join(base, 'bundle.json');
    const e = await runCli(['audit', 'export-bundle', '--log', ws, '--out', out]);
    assert.equal(e.code, 0, e.stderr);
    const bundle = JSON.parse(readFileSync(out, 'utf8')) as {
      format: string;
      models: { index: number; entry: string }[];
    };
    assert.equal(bundle.format, 'entente-evidence/v1');
    assert.equal(bundle.models.length, 3);
    const v = await runCli(['audit', 'verify', '--log', out]);
    assert.equal(v.code, 0, v.stdout);
    const text = Buffer.from(bundle.models[1]!.entry, 'base64')
      .toString('utf8')
      .replace('"round":2', '"round":1');
    bundle.models[1]!.entry = Buffer.from(text).toString('base64');
    const edited = join(base, 'bundle-edited.json');
    writeFileSync(edited, JSON.stringify(bundle));
    const bad = await runCli(['audit', 'verify', '--log', edited]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, new RegExp(`first bad entry: ${bundle.models[1]!.index}\\b`));
  });

  it('each tampering with a copy of the database fails verify and names the first bad entry', async () => {
    const cases: [string, number, (db: Database.Database) => void][] = [
      [
        'edited',
        7,
        (db) => {
          const row = db.prepare('SELECT body FROM log_entries WHERE idx = 7').get() as { body: Buffer };
          const body = Buffer.from(row.body);
          body[body.length - 3]! ^= 0x01;
          db.prepare('UPDATE log_entries SET body = ? WHERE idx = 7').run(body);
        },
      ],
      ['deleted', 9, (db) => db.prepare('DELETE FROM log_entries WHERE idx = 9').run()],
      [
        'swapped',
        12,
        (db) => {
          const a = db.prepare('SELECT body FROM log_entries WHERE idx = 12').get() as { body: Buffer };
          const b = db.prepare('SELECT body FROM log_entries WHERE idx = 20').get() as { body: Buffer };
          db.prepare('UPDATE log_entries SET body = ? WHERE idx = 12').run(b.body);
          db.prepare('UPDATE log_entries SET body = ? WHERE idx = 20').run(a.body);
        },
      ],
      ['truncated', 26, (db) => db.prepare('DELETE FROM log_entries WHERE idx > 25').run()],
    ];
    const results = await Promise.all(
      cases.map(async ([name, , tamper]) => runCli(['audit', 'verify', '--log', tamperedCopy(name, tamper)])),
    );
    for (const [k, [name, first]] of cases.entries()) {
      const r = results[k]!;
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^first bad entry: ${first}$`, 'm'), `${name}: ${r.stdout}`);
    }
    // prove refuses to prove against a checkpoint the entries no longer match.
    const p = await runCli(['audit', 'prove', '--entry', '1', '--log', join(base, 'edited')]);
    assert.equal(p.code, 1);
  });

  it('verify over https against a running coordinator', async () => {
    const coordinator = spawnEntente('audit-coordinator', [
      'coordinator',
      'start',
      '--workspace',
      ws,
      '--port',
      '0',
    ]);
    try {
      const url = await waitForUrl(coordinator);
      const r = await runCli(['audit', 'verify', '--log', url, '--workspace', ws, '--json']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout) as { ok: boolean; entries: number };
      assert.equal(report.ok, true);
      assert.ok(report.entries > 20);
      const missing = await runCli(['audit', 'verify', '--log', url]);
      assert.equal(missing.code, 2, 'an https --log needs --workspace');
    } finally {
      await stopChild(coordinator);
    }
  });
});
