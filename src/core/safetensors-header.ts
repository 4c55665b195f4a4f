/**
 * The JSON header of the safetensors layout (https://github.com/huggingface/safetensors, "Format"):
 * a schema-directed strict parser (RFC 8259 grammar restricted to the shapes the format allows, so
 * duplicate keys, unknown keys and non-integer sizes are caught, which JSON.parse cannot do), the
 * checks that the tensors tile the data section exactly, and the match against an expected layout.
 * Used by safetensors.ts for whole bodies and for the incremental reader; not a public API.
 */
import { EntenteError } from './errors.ts';
import type { TensorLayout } from './tensor.ts';

export const METADATA_KEY = '__metadata__';
export const F32_BYTES = 4;

/** One tensor entry as written in the header. Offsets are relative to the start of the data section. */
export interface HeaderEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A structurally checked header whose entries tile [0, dataBytes) exactly, sorted by offset. */
export interface DataPlan {
  readonly entries: readonly HeaderEntry[];
  readonly dataBytes: number;
  readonly metadata: Record<string, string>;
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(message: string): never {
  throw new EntenteError('MALFORMED_BODY', `safetensors header: ${message}`, { field: 'header' });
}

/** A tensor name for messages: JSON-quoted, cut to 64 characters (names come from the network). */
export function quoteTensorName(name: string): string {
  return JSON.stringify(name.length > 64 ? name.slice(0, 64) + '…' : name);
}

/** Little-endian u64 header length; throws MALFORMED_BODY above `maxHeaderBytes` without allocating. */
export function readHeaderLength(first8: Uint8Array, maxHeaderBytes: number): number {
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi !== 0 || lo > maxHeaderBytes) {
    throw new EntenteError(
      'MALFORMED_BODY',
      `safetensors header length ${hi * 2 ** 32 + lo} exceeds the limit of ${maxHeaderBytes} bytes`,
      { field: 'headerLength' },
    );
  }
  return lo;
}

/** Cursor over the header text. Every method is linear in what it consumes; nesting depth is fixed. */
class HeaderCursor {
  private pos = 0;
  constructor(private readonly text: string) {}

  private skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  private peek(): string | undefined {
    this.skipSpace();
    return this.text[this.pos];
  }

  private expect(ch: string): void {
    if (this.peek() !== ch) malformed(`expected '${ch}' at character ${this.pos}`);
    this.pos++;
  }

  /** Calls `onMember(key)` with the cursor just after each "key":, until the closing brace. */
  readObject(onMember: (key: string) => void): void {
    this.expect('{');
    if (this.peek() === '}') {
      this.pos++;
      return;
    }
    for (;;) {
      const key = this.readString();
      this.expect(':');
      onMember(key);
      const next = this.peek();
      this.pos++;
      if (next === '}') return;
      if (next !== ',') malformed(`expected ',' or '}' at character ${this.pos - 1}`);
    }
  }

  readString(): string {
    this.skipSpace();
    const t = this.text;
    const start = this.pos;
    if (t.charCodeAt(start) !== 0x22) malformed(`expected a string at character ${start}`);
    let i = start + 1;
    let escaped = false;
    for (;;) {
      if (i >= t.length) malformed(`unterminated string at character ${start}`);
      const c = t.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) malformed(`control character in string at character ${i}`);
      if (c === 0x5c) {
        escaped = true;
        i += 2;
      } else {
        i++;
      }
    }
    this.pos = i + 1;
    if (!escaped) return t.slice(start + 1, i);
    try {
      return JSON.parse(t.slice(start, i + 1)) as string;
    } catch {
      return malformed(`invalid escape in string at character ${start}`);
    }
  }

  /** A JSON number that is a safe non-negative integer written without fraction or exponent. */
  readSize(): number {
    this.skipSpace();
    const t = this.text;
    const start = this.pos;
    let i = start;
    while (i < t.length && t.charCodeAt(i) >= 0x30 && t.charCodeAt(i) <= 0x39) i++;
    const digits = t.slice(start, i);
    const after = t[i];
    if (
      digits.length === 0 ||
      digits.length > 16 ||
      (digits.length > 1 && digits[0] === '0') ||
      after === '.' ||
      after === 'e' ||
      after === 'E'
    ) {
      malformed(`expected a safe non-negative integer at character ${start}`);
    }
    const value = Number(digits);
    if (!Number.isSafeInteger(value)) malformed(`integer at character ${start} is not safe`);
    this.pos = i;
    return value;
  }

  readSizeArray(): number[] {
    const out: number[] = [];
    this.expect('[');
    if (this.peek() === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.readSize());
      const next = this.peek();
      this.pos++;
      if (next === ']') return out;
      if (next !== ',') malformed(`expected ',' or ']' at character ${this.pos - 1}`);
    }
  }

  expectEnd(): void {
    this.skipSpace();
    if (this.pos !== this.text.length) malformed(`unexpected content at character ${this.pos}`);
  }
}

function readEntry(cursor: HeaderCursor, name: string): HeaderEntry {
  let dtype: string | undefined;
  let shape: number[] | undefined;
  let offsets: number[] | undefined;
  cursor.readObject((key) => {
    const seen = key === 'dtype' ? dtype : key === 'shape' ? shape : key === 'data_offsets' ? offsets : null;
    if (seen === null)
      malformed(`tensor ${quoteTensorName(name)} has an unknown key ${quoteTensorName(key)}`);
    if (seen !== undefined) malformed(`tensor ${quoteTensorName(name)} repeats the key "${key}"`);
    if (key === 'dtype') dtype = cursor.readString();
    else if (key === 'shape') shape = cursor.readSizeArray();
    else offsets = cursor.readSizeArray();
  });
  if (dtype === undefined || shape === undefined || offsets === undefined) {
    malformed(`tensor ${quoteTensorName(name)} needs dtype, shape and data_offsets`);
  }
  if (offsets.length !== 2) malformed(`tensor ${quoteTensorName(name)}: data_offsets must be [begin, end]`);
  return { name, dtype, shape, begin: offsets[0]!, end: offsets[1]! };
}

/** Element count of a shape without overflow surprises (any zero dimension gives 0). */
export function countShapeElements(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Parses header bytes and checks that the F32 tensors tile the data section exactly.
 * Throws MALFORMED_BODY for any structural problem (invalid UTF-8 or JSON, unknown or duplicate keys,
 * sizes, offsets with holes or overlaps, byte length != elements * 4) and INVALID_TENSOR for a dtype
 * other than "F32". Entries come back sorted by offset (ties keep header order).
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array): DataPlan {
  let text: string;
  try {
    text = utf8Fatal.decode(headerBytes);
  } catch {
    return malformed('not valid UTF-8');
  }
  const cursor = new HeaderCursor(text);
  const entries: HeaderEntry[] = [];
  const names = new Set<string>();
  let metadata: [string, string][] | undefined;
  cursor.readObject((key) => {
    if (key === METADATA_KEY) {
      if (metadata !== undefined) malformed(`"${METADATA_KEY}" appears twice`);
      const pairs: [string, string][] = [];
      const keys = new Set<string>();
      cursor.readObject((metaKey) => {
        if (keys.has(metaKey)) malformed(`metadata key ${quoteTensorName(metaKey)} appears twice`);
        keys.add(metaKey);
        pairs.push([metaKey, cursor.readString()]);
      });
      metadata = pairs;
      return;
    }
    if (names.has(key)) malformed(`tensor ${quoteTensorName(key)} appears twice`);
    names.add(key);
    entries.push(readEntry(cursor, key));
  });
  cursor.expectEnd();

  for (const e of entries) {
    if (e.dtype !== 'F32') {
      throw new EntenteError(
        'INVALID_TENSOR',
        `safetensors: tensor ${quoteTensorName(e.name)} has dtype ${quoteTensorName(e.dtype)}, only "F32" is accepted`,
        { field: e.name },
      );
    }
  }
  for (const e of entries) {
    if (e.end < e.begin || e.end - e.begin !== countShapeElements(e.shape) * F32_BYTES) {
      malformed(
        `tensor ${quoteTensorName(e.name)}: data_offsets [${e.begin}, ${e.end}] do not hold shape [${e.shape.join(',')}] of F32`,
      );
    }
  }
  const sorted = entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.begin - b.e.begin || a.e.end - b.e.end || a.i - b.i)
    .map((x) => x.e);
  let cursorBytes = 0;
  for (const e of sorted) {
    if (e.begin !== cursorBytes) {
      malformed(
        `tensor ${quoteTensorName(e.name)} starts at ${e.begin}, expected ${cursorBytes} (a hole or an overlap)`,
      );
    }
    cursorBytes = e.end;
  }
  return { entries: sorted, dataBytes: cursorBytes, metadata: Object.fromEntries(metadata ?? []) };
}

/**
 * Matches the header's tensors against `expected` (names, shapes; order may differ). Returns, for each
 * plan entry in offset order, its index in `expected`. Throws INVALID_TENSOR naming the tensor for an
 * unexpected or missing name or a wrong shape; INVALID_ARGUMENT if `expected` repeats a name.
 */
export function matchSafetensorsLayout(plan: DataPlan, expected: readonly TensorLayout[]): number[] {
  const indexOf = new Map<string, number>();
  expected.forEach((t, i) => {
    if (indexOf.has(t.name)) {
      throw new EntenteError(
        'INVALID_ARGUMENT',
        `expected layout repeats tensor ${quoteTensorName(t.name)}`,
        {
          field: 'expected',
        },
      );
    }
    indexOf.set(t.name, i);
  });
  const order = plan.entries.map((e) => {
    const i = indexOf.get(e.name);
    if (i === undefined) {
      throw new EntenteError('INVALID_TENSOR', `safetensors: unexpected tensor ${quoteTensorName(e.name)}`, {
        field: e.name,
      });
    }
    const want = expected[i]!.shape;
    if (want.length !== e.shape.length || want.some((d, j) => d !== e.shape[j])) {
      throw new EntenteError(
        'INVALID_TENSOR',
        `safetensors: tensor ${quoteTensorName(e.name)} has shape [${e.shape.join(',')}], expected [${want.join(',')}]`,
        { field: e.name },
      );
    }
    return i;
  });
  if (order.length !== expected.length) {
    const present = new Set(plan.entries.map((e) => e.name));
    const missing = expected.find((t) => !present.has(t.name))!;
    throw new EntenteError(
      'INVALID_TENSOR',
      `safetensors: tensor ${quoteTensorName(missing.name)} is missing`,
      {
        field: missing.name,
      },
    );
  }
  return order;
}
