/**
 * The coordinator's durable state at start-up: the SQLite store checked for damage before anything
 * reads or extends it, the blob store (a chunk that does not hash to its address is logged and recorded
 * as a `store-corrupt` event), and the garbage collection of temporary uploads and unreferenced chunks.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { EntenteError } from '../core/errors.ts';
import { BlobStore, SqliteStore } from '../storage/index.ts';

/** A temporary upload file older than this belongs to no live request (requests time out at 120 s). */
const TEMPORARY_UPLOAD_MAX_AGE_MS = 10 * 60_000;

export interface CoordinatorStorage {
  readonly store: SqliteStore;
  readonly blobs: BlobStore;
}

/** Opens the store and the blob store under `stateDir`; a damaged database refuses to start. */
export function openCoordinatorStorage(stateDir: string, log: Logger): CoordinatorStorage {
  const store = new SqliteStore(join(stateDir, 'coordinator.db'));
  // A damaged database is found here, before anything reads or extends it: refuse to start.
  try {
    store.assertSound();
  } catch (err) {
    store.close();
    log.error({ code: (err as EntenteError).code }, (err as Error).message);
    throw err;
  }
  const blobs = new BlobStore(join(stateDir, 'blobs'), {
    onCorrupt: (sha256, path) => {
      const message = `stored chunk ${sha256} does not hash to its address (${path}): refused, not served`;
      log.error({ sha256, path, code: 'STORE_CORRUPT' }, message);
      try {
        store.recordEvent({
          at: Date.now(),
          kind: 'store-corrupt',
          participant: null,
          run_id: null,
          round: null,
          code: 'STORE_CORRUPT',
          message,
        });
      } catch (err) {
        log.error({ err }, 'could not record the store-corrupt event');
      }
    },
  });
  if (blobs.removedAtOpen > 0)
    log.warn({ removed: blobs.removedAtOpen }, 'removed temporary upload files left by an earlier crash');
  return { store, blobs };
}

/**
 * Removes temporary upload files no request can still own and the chunks nothing in the store refers
 * to (never one younger than `chunkGraceMs`: its result may still be on its way).
 */
export function collectGarbage(
  { store, blobs }: CoordinatorStorage,
  chunkGraceMs: number,
  log: Logger,
): void {
  const now = Date.now();
  const stale = blobs.removeTemporaryFiles(TEMPORARY_UPLOAD_MAX_AGE_MS, now);
  const referenced = store.referencedDigests();
  const { removed, bytes } = blobs.collectGarbage((sha) => referenced.has(sha), chunkGraceMs, now);
  store.forgetChunkUploads(removed);
  if (stale > 0 || removed.length > 0)
    log.info({ temporaryFiles: stale, chunks: removed.length, bytes }, 'removed unreferenced blobs');
}
