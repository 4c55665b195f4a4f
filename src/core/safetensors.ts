/**
 * The binary wire format for models and updates: the safetensors layout
 * (https://github.com/huggingface/safetensors, "Format"): an 8-byte little-endian u64 header length N,
 * N bytes of UTF-8 JSON header mapping each tensor name to {dtype, shape, data_offsets: [begin, end]}
 * (relative to the data start) plus an optional "__metadata__" string map, then the raw little-endian
 * data. Only "F32" is accepted. Bytes written here are what Python's `safetensors.torch.save` writes
 * for the same tensors in the same order (compact JSON, metadata first, header space-padded to 8 bytes).
 */
import { EntenteError } from './errors.ts';
import {
  countShapeElements,
  type DataPlan,
  F32_BYTES,
  METADATA_KEY,
  matchSafetensorsLayout,
  parseSafetensorsHeader,
  quoteTensorName,
  readHeaderLength,
} from './safetensors-header.ts';
import { indexOfNonFinite, type Tensor, type TensorLayout, type Weights } from './tensor.ts';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new EntenteError('INTERNAL', 'safetensors: a little-endian host is required');
}

/** Default limit on the JSON header (1 MiB), far above any real model's header. */
export const SAFETENSORS_MAX_HEADER_BYTES = 1024 * 1024;
const LENGTH_BYTES = 8;

function invalidTensor(name: string, message: string): never {
  throw new EntenteError('INVALID_TENSOR', `safetensors: tensor ${quoteTensorName(name)} ${message}`, {
    field: name,
  });
}

/**
 * Encodes `weights` (tensors laid out in the given order) and optional string `metadata` (keys sorted)
 * into safetensors bytes; the same input always gives the same bytes (NaN payloads included).
 * Throws INVALID_TENSOR for an empty, reserved or repeated name, a shape entry that is not a safe
 * non-negative integer, or data whose length is not the shape's element count; INVALID_ARGUMENT for a
 * metadata value that is not a string. Values are not checked for finiteness here.
 */
export function encodeSafetensors(weights: Weights, metadata?: Record<string, string>): Uint8Array {
  const names = new Set<string>();
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort();
    const fields = keys.map((k) => {
      const v = metadata[k];
      if (typeof v !== 'string') {
        throw new EntenteError(
          'INVALID_ARGUMENT',
          `safetensors: metadata ${quoteTensorName(k)} must be a string`,
          {
            field: `metadata.${k}`,
          },
        );
      }
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    if (keys.length > 0) parts.push(`"${METADATA_KEY}":{${fields.join(',')}}`);
  }
  let offsetBytes = 0;
  for (const t of weights) {
    if (typeof t.name !== 'string' || t.name.length === 0 || t.name === METADATA_KEY) {
      invalidTensor(String(t.name), 'has an empty or reserved name');
    }
    if (names.has(t.name)) invalidTensor(t.name, 'appears twice');
    names.add(t.name);
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0)
        invalidTensor(t.name, `has an invalid shape [${t.shape.join(',')}]`);
    }
    if (!(t.data instanceof Float32Array) || t.data.length !== countShapeElements(t.shape)) {
      invalidTensor(t.name, `data length does not match shape [${t.shape.join(',')}]`);
    }
    const end = offsetBytes + t.data.byteLength;
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"F32","shape":[${t.shape.join(',')}],"data_offsets":[${offsetBytes},${end}]}`,
    );
    offsetBytes = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerBytes = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(LENGTH_BYTES + headerBytes + offsetBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerBytes, true);
  view.setUint32(4, 0, true);
  out.set(json, LENGTH_BYTES);
  out.fill(0x20, LENGTH_BYTES + json.length, LENGTH_BYTES + headerBytes);
  let pos = LENGTH_BYTES + headerBytes;
  for (const t of weights) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export interface DecodeSafetensorsOptions {
  /** When given: exact names and shapes (any order in the body) and finite values are required. */
  readonly expected?: readonly TensorLayout[];
  /** Whole-body limit in bytes (BODY_TOO_LARGE above it). Default: no limit. */
  readonly maxBytes?: number;
  /** Header limit in bytes (MALFORMED_BODY above it). Default 1 MiB. */
  readonly maxHeaderBytes?: number;
}

/**
 * Decodes and fully validates a safetensors body. Returns freshly allocated (aligned) tensors in the
 * order of `expected` if given, else in data-offset order, and the metadata.
 * Throws BODY_TOO_LARGE above `maxBytes`; MALFORMED_BODY for any structural fault (see
 * parseSafetensorsHeader) or a data section that is not exactly covered; INVALID_TENSOR for a dtype
 * other than F32 and, with `expected`, a missing/unexpected name, a wrong shape or a NaN/±Infinity
 * (naming the tensor and element index). Without `expected`, non-finite values are returned as is.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: DecodeSafetensorsOptions = {},
): { weights: Tensor[]; metadata: Record<string, string> } {
  if (!(bytes instanceof Uint8Array)) {
    throw new EntenteError('INVALID_ARGUMENT', 'safetensors: body must be a Uint8Array', { field: 'body' });
  }
  if (options.maxBytes !== undefined && bytes.length > options.maxBytes) {
    throw new EntenteError(
      'BODY_TOO_LARGE',
      `safetensors: body of ${bytes.length} bytes exceeds ${options.maxBytes} bytes`,
      { field: 'body' },
    );
  }
  if (bytes.length < LENGTH_BYTES) {
    throw new EntenteError('MALFORMED_BODY', 'safetensors: body is shorter than the 8-byte header length', {
      field: 'headerLength',
    });
  }
  const headerBytes = readHeaderLength(bytes, options.maxHeaderBytes ?? SAFETENSORS_MAX_HEADER_BYTES);
  if (LENGTH_BYTES + headerBytes > bytes.length) {
    throw new EntenteError('MALFORMED_BODY', `safetensors: header length ${headerBytes} runs past the body`, {
      field: 'headerLength',
    });
  }
  const plan = parseSafetensorsHeader(bytes.subarray(LENGTH_BYTES, LENGTH_BYTES + headerBytes));
  const dataStart = LENGTH_BYTES + headerBytes;
  if (bytes.length - dataStart !== plan.dataBytes) {
    throw new EntenteError(
      'MALFORMED_BODY',
      `safetensors: data section has ${bytes.length - dataStart} bytes, header declares ${plan.dataBytes}`,
      { field: 'data' },
    );
  }
  const order = options.expected ? matchSafetensorsLayout(plan, options.expected) : undefined;
  const tensors = plan.entries.map((e): Tensor => {
    const data = new Float32Array((e.end - e.begin) / F32_BYTES);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    if (order !== undefined) {
      const bad = indexOfNonFinite(data);
      if (bad >= 0) invalidTensor(e.name, `has a non-finite value (NaN or Infinity) at element ${bad}`);
    }
    return { name: e.name, shape: [...e.shape], data };
  });
  if (order === undefined) return { weights: tensors, metadata: plan.metadata };
  const weights = new Array<Tensor>(tensors.length);
  order.forEach((target, i) => {
    weights[target] = tensors[i]!;
  });
  return { weights, metadata: plan.metadata };
}

export interface SafetensorsReaderOptions {
  /** The layout the body must have (names, shapes; any order in the body). */
  readonly expected: readonly TensorLayout[];
  /** Header limit in bytes. Default 1 MiB. */
  readonly maxHeaderBytes?: number;
  /**
   * Receives consecutive finite values of tensor `expected[tensorIndex]` starting at `elementOffset`.
   * `values` is a fresh array the reader does not reuse. An exception thrown here fails the reader.
   */
  /** `values` is a view of a reused buffer: valid only during the call (copy it to keep it). */
  onSlice(tensorIndex: number, elementOffset: number, values: Float32Array): void;
}

export interface SafetensorsReader {
  /** Feeds the next bytes (any boundaries). Throws as decodeSafetensors would, as early as possible. */
  push(chunk: Uint8Array): void;
  /** Declares the end of the body. Throws MALFORMED_BODY if it was truncated. */
  end(): { bytes: number; metadata: Record<string, string> };
}

/**
 * An incremental reader for streamed safetensors bodies, holding O(chunk) memory plus the header
 * (at most `maxHeaderBytes`). The header is checked against `expected` as soon as it is complete
 * (same rules and codes as decodeSafetensors); values are delivered through `onSlice` in body order.
 * Throws INVALID_TENSOR on the first non-finite value (naming tensor and element), MALFORMED_BODY on
 * bytes past the declared end. After any throw the reader is failed and every call throws.
 */
export function createSafetensorsReader(options: SafetensorsReaderOptions): SafetensorsReader {
  const maxHeaderBytes = options.maxHeaderBytes ?? SAFETENSORS_MAX_HEADER_BYTES;
  const lengthBuf = new Uint8Array(LENGTH_BYTES);
  let filled = 0; // bytes of lengthBuf or header filled so far
  let header: Uint8Array | undefined;
  let plan: DataPlan | undefined;
  let order: number[] = [];
  let dataPos = 0; // data-section bytes consumed (including carried ones)
  const carry = new Uint8Array(F32_BYTES);
  let carryBytes = 0;
  let entry = 0; // index in plan.entries of the tensor the next value belongs to
  let failed = false;
  let ended = false;

  const fail = (message: string, field: string): never => {
    throw new EntenteError('MALFORMED_BODY', `safetensors: ${message}`, { field });
  };

  const deliver = (values: Float32Array, firstElement: number): void => {
    const entries = plan!.entries;
    let i = 0;
    let element = firstElement;
    while (i < values.length) {
      let e = entries[entry]!;
      while (element >= e.end / F32_BYTES) e = entries[++entry]!;
      const offset = element - e.begin / F32_BYTES;
      const take = Math.min(values.length - i, e.end / F32_BYTES - element);
      const slice = values.subarray(i, i + take);
      const bad = indexOfNonFinite(slice);
      if (bad >= 0)
        invalidTensor(e.name, `has a non-finite value (NaN or Infinity) at element ${offset + bad}`);
      options.onSlice(order[entry]!, offset, slice);
      i += take;
      element += take;
    }
  };

  let scratch = new Float32Array(0);
  const pushData = (chunk: Uint8Array): void => {
    if (chunk.length > plan!.dataBytes - dataPos) fail('data runs past the declared end', 'data');
    const firstElement = (dataPos - carryBytes) / F32_BYTES;
    dataPos += chunk.length;
    const available = carryBytes + chunk.length;
    const count = Math.floor(available / F32_BYTES);
    if (count === 0) {
      carry.set(chunk, carryBytes);
      carryBytes = available;
      return;
    }
    // One grow-only scratch buffer: values are only valid during onSlice (see its contract), so a
    // streamed body of any size costs O(largest chunk) memory and no garbage per chunk.
    if (scratch.length < count) scratch = new Float32Array(Math.max(count, scratch.length * 2));
    const values = scratch.subarray(0, count);
    const raw = new Uint8Array(values.buffer, 0, count * F32_BYTES);
    raw.set(carry.subarray(0, carryBytes));
    const used = count * F32_BYTES - carryBytes;
    raw.set(chunk.subarray(0, used), carryBytes);
    carryBytes = chunk.length - used;
    carry.set(chunk.subarray(used));
    deliver(values, firstElement);
  };

  const pushAny = (chunk: Uint8Array): void => {
    let rest = chunk;
    if (header === undefined) {
      const take = Math.min(LENGTH_BYTES - filled, rest.length);
      lengthBuf.set(rest.subarray(0, take), filled);
      filled += take;
      rest = rest.subarray(take);
      if (filled < LENGTH_BYTES) return;
      header = new Uint8Array(readHeaderLength(lengthBuf, maxHeaderBytes));
      filled = 0;
    }
    if (plan === undefined) {
      const take = Math.min(header.length - filled, rest.length);
      header.set(rest.subarray(0, take), filled);
      filled += take;
      rest = rest.subarray(take);
      if (filled < header.length) return;
      plan = parseSafetensorsHeader(header);
      order = matchSafetensorsLayout(plan, options.expected);
    }
    if (rest.length > 0) pushData(rest);
  };

  return {
    push(chunk: Uint8Array): void {
      if (failed || ended) fail(failed ? 'the reader failed earlier' : 'push after end', 'body');
      if (!(chunk instanceof Uint8Array)) {
        throw new EntenteError('INVALID_ARGUMENT', 'safetensors: chunk must be a Uint8Array', {
          field: 'chunk',
        });
      }
      try {
        pushAny(chunk);
      } catch (error) {
        failed = true;
        throw error;
      }
    },
    end(): { bytes: number; metadata: Record<string, string> } {
      if (failed || ended) fail(failed ? 'the reader failed earlier' : 'end called twice', 'body');
      if (plan === undefined || header === undefined || dataPos !== plan.dataBytes) {
        failed = true;
        throw new EntenteError('MALFORMED_BODY', 'safetensors: body is truncated', { field: 'body' });
      }
      ended = true;
      return { bytes: LENGTH_BYTES + header.length + plan.dataBytes, metadata: plan.metadata };
    },
  };
}
