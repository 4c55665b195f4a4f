/**
 * Private files and directories on disk: directories that hold keys, state or data copies are mode
 * 0700 and the secret or personal files in them 0600, set with an explicit chmod so neither the
 * process umask nor a directory or file that already existed (with looser bits) changes the outcome.
 */
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  writeSync,
} from 'node:fs';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) and makes it mode 0700, whether or not it existed. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Writes `data` to `path` through a fresh temporary file that is mode `mode` before any byte is in it,
 * fsyncs it and renames it over `path`: readers see the old or the new file, never a part, and never
 * with looser bits than `mode` (default 0600).
 */
export function writeFileWithMode(path: string, data: string | Uint8Array, mode = PRIVATE_FILE_MODE): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    fchmodSync(fd, mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Writes a private file (mode 0600). */
export function writePrivateFile(path: string, data: string | Uint8Array): void {
  writeFileWithMode(path, data, PRIVATE_FILE_MODE);
}
