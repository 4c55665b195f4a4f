/**
 * Audit-log benchmark (RFC 6962/9162 Merkle log with C2SP checkpoints):
 * - batched append throughput: AuditLog.appendMany into a real SQLite store (WAL, synchronous=FULL) in
 *   a temporary directory, batches of 1000 realistic update-committed entries (canonical bytes, leaf
 *   hash, previous-hash chain, one transaction per batch), against the raw SHA-256 throughput on
 *   entry-sized inputs measured in this same run (the hashing bound of an append);
 * - inclusion-proof generation in a tree of 1e6 leaves: median µs per proof over 1000 random
 *   (index, size) pairs, each proof checked with verifyInclusion outside the timing;
 * - verifyLog over the appended log as the auditor reads it back from the database (entries, stored
 *   leaf hashes, a few checkpoints cosigned by three witnesses).
 * `--quick`: 1e4 appends / 1e5-leaf tree / verifyLog over the 1e4. One JSON document on stdout,
 * progress on stderr.
 */
import * as nodeCrypto from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import {
  createCosignatureLine,
  formatVerifierKey,
  MerkleTree,
  parseNote,
  verifyInclusion,
  verifyLog,
} from '../src/audit/index.ts';
import { AuditLog } from '../src/coordinator/audit-log.ts';
import { nextInt } from '../src/core/rng.ts';
import { createSeededRng } from '../src/crypto/seeded-rng.ts';
import { generateEd25519KeyPem } from '../src/crypto/signatures.ts';
import { SqliteStore } from '../src/storage/index.ts';

const TARGETS = { appendsPerSecond: 20_000, proofMedianUs: 1_000, verifyLogMs: 10_000 };
const BATCH = 1_000;
const round2 = (x: number) => Math.round(x * 100) / 100;
const progress = (msg: string) => process.stderr.write(`bench audit: ${msg}\n`);
const hex = () => randomBytes(32).toString('hex');
/** The same one-shot SHA-256 the Merkle code uses (crypto.hash on Node ≥ 20.12). */
const sha256: (data: Uint8Array) => Uint8Array =
  typeof nodeCrypto.hash === 'function'
    ? (data) => nodeCrypto.hash('sha256', data, 'buffer')
    : (data) => nodeCrypto.createHash('sha256').update(data).digest();

/** Raw SHA-256 over `bytes`-long inputs for ≥ minMs: hashes per second (crypto.hash when available). */
function measureSha256PerSecond(bytes: number, minMs = 300): number {
  const input = randomBytes(bytes);
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < minMs) {
    for (let i = 0; i < 1000; i++) sha256(input);
    n += 1000;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

function updateCommitted(round: number, k: number, modelIn: string) {
  return {
    kind: 'update-committed' as const,
    body: {
      run: 'bench',
      round,
      attempt: 0,
      participant: `site-${String(k % 50).padStart(2, '0')}`,
      modelIn,
      sha256: hex(),
      sessionId: hex(),
      signature: randomBytes(64).toString('base64'),
    },
  };
}

async function benchAppends(count: number, dir: string) {
  const store = new SqliteStore(join(dir, 'coordinator.db'));
  const witnesses = ['a', 'b', 'c'].map((id) => {
    const k = generateEd25519KeyPem();
    const name = `entente/bench/witness/${id}`;
    return { id, name, pem: k.privateKeyPem, vkey: formatVerifierKey(name, k.publicKey, 0x04) };
  });
  const audit = new AuditLog({
    store,
    log: pino({ level: 'silent' }),
    now: () => Date.now(),
    origin: 'entente/bench/log',
    consortium: 'bench',
    logKeyPem: generateEd25519KeyPem().privateKeyPem,
    witnesses: Object.fromEntries(witnesses.map((w) => [w.id, w.vkey])),
    policy: { consortium: 'bench', institutions: witnesses.map((w) => w.id) },
  });
  const batches: ReturnType<typeof updateCommitted>[][] = [];
  const modelIn = hex();
  for (let b = 0; b * BATCH < count; b++)
    batches.push(
      Array.from({ length: Math.min(BATCH, count - b * BATCH) }, (_, k) => updateCommitted(b, k, modelIn)),
    );
  const sampleBytes = Buffer.byteLength(
    JSON.stringify({
      kind: 'update-committed',
      index: 1e5,
      at: Date.now(),
      prev: hex(),
      ...batches[0]![0]!.body,
    }),
  );
  const cosign = (): void => {
    const cp = audit.publishCheckpoint();
    const text = parseNote(cp.note).text;
    for (const w of witnesses)
      audit.addCosignature(
        w.id,
        cp.size,
        createCosignatureLine({
          witnessName: w.name,
          privateKeyPem: w.pem,
          checkpointText: text,
          timestampSeconds: Math.floor(Date.now() / 1000),
        }),
      );
  };
  cosign(); // the checkpoint the log was created with
  const batchesPerCheckpoint = Math.max(1, Math.floor(batches.length / 4));
  let appendMs = 0;
  for (const [b, batch] of batches.entries()) {
    const t0 = performance.now();
    audit.appendMany(batch);
    appendMs += performance.now() - t0;
    if ((b + 1) % batchesPerCheckpoint === 0) cosign();
  }
  if (audit.checkpointSize !== audit.size) cosign();
  return { store, audit, appendMs, entryBytes: sampleBytes, checkpoints: store.listCheckpoints().length };
}

function benchProofs(leaves: number, samples: number) {
  const rng = createSeededRng('bench/audit/proofs');
  const t0 = performance.now();
  const tree = new MerkleTree();
  const leaf = new Uint8Array(32);
  for (let i = 0; i < leaves; i++) {
    leaf[0] = i & 0xff;
    leaf[1] = (i >>> 8) & 0xff;
    leaf[2] = (i >>> 16) & 0xff;
    leaf[3] = (i >>> 24) & 0xff;
    tree.appendLeafHash(leaf);
  }
  const buildMs = performance.now() - t0;
  const pairs = Array.from({ length: samples }, () => {
    const size = 1 + nextInt(rng, leaves);
    return { size, index: nextInt(rng, size) };
  });
  const times: number[] = [];
  const proofs: Uint8Array[][] = [];
  for (const { index, size } of pairs) {
    const s = performance.now();
    proofs.push(tree.inclusionProof(index, size));
    times.push((performance.now() - s) * 1000);
  }
  let verified = 0;
  for (const [k, { index, size }] of pairs.entries())
    if (
      verifyInclusion({
        leafIndex: index,
        treeSize: size,
        leafHash: tree.leafHash(index),
        proof: proofs[k]!,
        root: tree.root(size),
      }).ok
    )
      verified++;
  times.sort((a, b) => a - b);
  return {
    leaves,
    samples,
    treeBuildMs: Math.round(buildMs),
    medianUs: round2(times[Math.floor(times.length / 2)]!),
    p99Us: round2(times[Math.floor(times.length * 0.99)]!),
    allVerified: verified === samples,
  };
}

export async function benchAudit(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const appendCount = quick ? 10_000 : 100_000;
  const proofLeaves = quick ? 100_000 : 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'entente-bench-audit-'));
  try {
    progress(`appending ${appendCount} entries in batches of ${BATCH}`);
    const { store, appendMs, entryBytes, checkpoints } = await benchAppends(appendCount, dir);
    const appendsPerSecond = appendCount / (appendMs / 1000);
    const sha256EntryPerSecond = measureSha256PerSecond(1 + entryBytes);
    const sha256NodePerSecond = measureSha256PerSecond(65);
    // Each append hashes its entry once and, amortised, one interior node.
    const hashBoundAppendsPerSecond = 1 / (1 / sha256EntryPerSecond + 1 / sha256NodePerSecond);

    progress(`inclusion proofs in a tree of ${proofLeaves} leaves`);
    const proofs = benchProofs(proofLeaves, 1000);

    progress(`verifyLog over ${appendCount} entries read back from SQLite`);
    const rows = store.listLogEntries();
    const notes = store.listCheckpoints().map((c) => c.note);
    const t0 = performance.now();
    const report = verifyLog({
      entries: rows.map((r) => new Uint8Array(r.body)),
      storedLeafHashes: rows.map((r) => new Uint8Array(r.leaf_hash)),
      checkpoints: notes,
    });
    const verifyMs = performance.now() - t0;
    store.close();

    const out = {
      bench: 'audit',
      quick,
      node: process.version,
      append: {
        entries: appendCount,
        batch: BATCH,
        kind: 'update-committed',
        entryBytes,
        totalMs: Math.round(appendMs),
        appendsPerSecond: Math.round(appendsPerSecond),
        target: TARGETS.appendsPerSecond,
        targetMet: appendsPerSecond >= TARGETS.appendsPerSecond,
        rawSha256: {
          entrySizedPerSecond: Math.round(sha256EntryPerSecond),
          nodeSizedPerSecond: Math.round(sha256NodePerSecond),
          hashBoundAppendsPerSecond: Math.round(hashBoundAppendsPerSecond),
        },
        ratioToHashBound: round2(appendsPerSecond / hashBoundAppendsPerSecond),
      },
      inclusionProof: {
        ...proofs,
        targetUs: TARGETS.proofMedianUs,
        targetMet: proofs.medianUs < TARGETS.proofMedianUs,
      },
      verifyLog: {
        entries: report.entries,
        checkpoints,
        ok: report.ok,
        problems: report.problems.slice(0, 5),
        ms: Math.round(verifyMs),
        entriesPerSecond: Math.round(report.entries / (verifyMs / 1000)),
        targetMs: TARGETS.verifyLogMs,
        targetMet: report.ok && verifyMs < TARGETS.verifyLogMs,
      },
    };
    const targetsMet = out.append.targetMet && out.inclusionProof.targetMet && out.verifyLog.targetMet;
    const doc = { ...out, targetsMet };
    console.log(args.includes('--json') ? JSON.stringify(doc) : JSON.stringify(doc, null, 2));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
