/** Tests for the safetensors wire format: round trips, the streaming reader, and hostile bodies. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from './errors.ts';
import { createSafetensorsReader, decodeSafetensors, encodeSafetensors } from './safetensors.ts';
import { layoutOf, type Tensor, type TensorLayout } from './tensor.ts';

function bytesOf(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A body from a literal header (space-padded to 8 bytes unless `pad` is false) and raw data bytes. */
function rawBody(headerJson: string, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  const json = new TextEncoder().encode(headerJson);
  const n = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + n + data.length).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setUint32(0, n, true);
  out.set(json, 8);
  out.set(data, 8 + n);
  return out;
}

function assertSameWeights(got: readonly Tensor[], want: readonly Tensor[]): void {
  assert.equal(got.length, want.length);
  got.forEach((t, i) => {
    assert.equal(t.name, want[i]!.name);
    assert.deepEqual(t.shape, want[i]!.shape);
    assert.deepEqual(bytesOf(t.data), bytesOf(want[i]!.data));
    assert.equal(t.data.byteOffset % 4, 0);
  });
}

function throwsCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof EntenteError, `expected EntenteError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** Streams `body` through a reader in the given chunks; returns values per expected tensor. */
function readStreamed(body: Uint8Array, expected: readonly TensorLayout[], cuts: number[]) {
  const values = expected.map((t) => new Float32Array(t.shape.reduce((a, b) => a * b, 1)));
  const filled = expected.map(() => 0);
  const reader = createSafetensorsReader({
    expected,
    onSlice(tensorIndex, elementOffset, slice) {
      assert.equal(elementOffset, filled[tensorIndex], 'slices are consecutive');
      values[tensorIndex]!.set(slice, elementOffset);
      filled[tensorIndex]! += slice.length;
    },
  });
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    reader.push(body.subarray(at, cut));
    at = cut;
  }
  reader.push(body.subarray(at));
  const result = reader.end();
  return { values, result };
}

const nameArb = fc.string({ minLength: 1, maxLength: 6, unit: 'binary' }).filter((s) => s !== '__metadata__');
const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 });
const weightsArb = (noNaN: boolean): fc.Arbitrary<Tensor[]> =>
  fc.uniqueArray(fc.tuple(nameArb, shapeArb), { maxLength: 5, selector: ([n]) => n }).chain((layout) =>
    fc.tuple(
      ...layout.map(([name, shape]) => {
        const n = shape.reduce((a, b) => a * b, 1);
        return fc
          .float32Array({ minLength: n, maxLength: n, noNaN, noDefaultInfinity: noNaN })
          .map((data): Tensor => ({ name, shape, data }));
      }),
    ),
  );
const metadataArb = fc.dictionary(fc.string({ unit: 'binary', maxLength: 5 }), fc.string({ maxLength: 8 }), {
  maxKeys: 3,
  noNullPrototype: true,
});

describe('safetensors: interoperability with the reference format', () => {
  // What Python's safetensors writes for {"a": tensor([1.0, -2.5], dtype=float32)}: 54 bytes of
  // compact JSON padded with 2 spaces to 56, so the length prefix is 56.
  const python = new Uint8Array([
    ...[56, 0, 0, 0, 0, 0, 0, 0],
    ...new TextEncoder().encode('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  '),
    ...[0x00, 0x00, 0x80, 0x3f], // 1.0f little-endian
    ...[0x00, 0x00, 0x20, 0xc0], // -2.5f little-endian
  ]);

  it('decodes a body written by Python safetensors', () => {
    const { weights, metadata } = decodeSafetensors(python, { expected: [{ name: 'a', shape: [2] }] });
    assert.equal(weights.length, 1);
    assert.equal(weights[0]!.name, 'a');
    assert.deepEqual(weights[0]!.shape, [2]);
    assert.deepEqual([...weights[0]!.data], [1, -2.5]);
    assert.deepEqual(metadata, {});
  });

  it('encodes byte-for-byte what Python writes', () => {
    assert.deepEqual(
      encodeSafetensors([{ name: 'a', shape: [2], data: new Float32Array([1, -2.5]) }]),
      python,
    );
  });

  it('writes metadata first with sorted keys, and accepts an unpadded header from other writers', () => {
    const t = { name: 'b', shape: [], data: new Float32Array([3]) };
    const text = new TextDecoder().decode(encodeSafetensors([t], { z: '1', format: 'pt' }).subarray(8));
    assert.match(text, /^\{"__metadata__":\{"format":"pt","z":"1"\},"b":\{"dtype":"F32","shape":\[\],/);
    const unpadded = rawBody(
      ' {"b":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"__metadata__":{"k":"v"}}',
      bytesOf(t.data),
      false,
    );
    const out = decodeSafetensors(unpadded, { expected: [{ name: 'b', shape: [] }] });
    assert.deepEqual([...out.weights[0]!.data], [3]);
    assert.deepEqual(out.metadata, { k: 'v' });
  });
});

describe('safetensors: encode and decode', () => {
  it('round-trips random layouts, values and metadata bit-exactly', () => {
    fc.assert(
      fc.property(weightsArb(false), metadataArb, (weights, metadata) => {
        const bytes = encodeSafetensors(weights, metadata);
        assert.equal(new DataView(bytes.buffer).getUint32(0, true) % 8, 0, 'header padded to 8');
        const plain = decodeSafetensors(bytes);
        assertSameWeights(plain.weights, weights);
        assert.deepEqual(plain.metadata, metadata);
      }),
      { numRuns: 150 },
    );
  });

  it('orders by the expected layout and gives deterministic bytes', () => {
    fc.assert(
      fc.property(weightsArb(true), (weights) => {
        const reversed = [...weights].reverse();
        const out = decodeSafetensors(encodeSafetensors(weights), { expected: layoutOf(reversed) });
        assertSameWeights(out.weights, reversed);
        assert.deepEqual(
          encodeSafetensors(weights, { a: '1', b: '2' }),
          encodeSafetensors(weights, { b: '2', a: '1' }),
        );
      }),
      { numRuns: 80 },
    );
  });

  it('returns aligned copies when the body sits at an odd offset', () => {
    const body = encodeSafetensors([{ name: 'x', shape: [3], data: new Float32Array([1, 2, 3]) }]);
    const shifted = new Uint8Array(body.length + 1).subarray(1);
    shifted.set(body);
    const t = decodeSafetensors(shifted).weights[0]!;
    assert.equal(t.data.byteOffset % 4, 0);
    assert.deepEqual([...t.data], [1, 2, 3]);
    shifted.fill(0);
    assert.deepEqual([...t.data], [1, 2, 3], 'a copy, not a view of the input');
  });

  it('handles no tensors and empty tensors', () => {
    assert.deepEqual(decodeSafetensors(encodeSafetensors([])), { weights: [], metadata: {} });
    const w = [
      { name: 'e', shape: [0, 3], data: new Float32Array(0) },
      { name: 'f', shape: [1], data: new Float32Array([7]) },
      { name: 'g', shape: [2, 0], data: new Float32Array(0) },
    ];
    assertSameWeights(decodeSafetensors(encodeSafetensors(w), { expected: layoutOf(w) }).weights, w);
  });

  it('rejects invalid input to encode', () => {
    const d = new Float32Array(2);
    throwsCode(() => encodeSafetensors([{ name: 'a', shape: [3], data: d }]), 'INVALID_TENSOR', /"a"/);
    throwsCode(
      () =>
        encodeSafetensors([
          { name: 'a', shape: [2], data: d },
          { name: 'a', shape: [2], data: d },
        ]),
      'INVALID_TENSOR',
      /twice/,
    );
    throwsCode(() => encodeSafetensors([{ name: '__metadata__', shape: [2], data: d }]), 'INVALID_TENSOR');
    throwsCode(() => encodeSafetensors([{ name: 'a', shape: [-2], data: d }]), 'INVALID_TENSOR');
    throwsCode(() => encodeSafetensors([], { k: 1 as unknown as string }), 'INVALID_ARGUMENT', /"k"/);
  });
});

describe('safetensors: validation', () => {
  const f32 = (n: number) => new Uint8Array(n * 4);
  const entry = (shape: string, b: number, e: number, dtype = 'F32') =>
    `{"dtype":"${dtype}","shape":${shape},"data_offsets":[${b},${e}]}`;

  it('rejects structural faults with MALFORMED_BODY', () => {
    const cases: Array<[string, Uint8Array]> = [
      ['empty body', new Uint8Array(0)],
      ['short length', new Uint8Array(5)],
      ['length past body', rawBody('{}').subarray(0, 12)],
      ['empty header', rawBody('')],
      ['not JSON', rawBody('{"a":')],
      ['array header', rawBody('[]')],
      ['trailing garbage', rawBody('{}x')],
      ['BOM', rawBody('\ufeff{}')],
      [
        'invalid UTF-8',
        (() => {
          const b = rawBody('{"ab":1}');
          b[10] = 0xff;
          return b;
        })(),
      ],
      ['non-object entry', rawBody('{"a":[1]}', f32(1))],
      ['null entry', rawBody('{"a":null}')],
      ['unknown key', rawBody(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, f32(1))],
      ['missing key', rawBody('{"a":{"dtype":"F32","shape":[1]}}', f32(1))],
      [
        'repeated key',
        rawBody('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)),
      ],
      ['duplicate name', rawBody(`{"a":${entry('[1]', 0, 4)},"a":${entry('[1]', 4, 8)}}`, f32(2))],
      ['duplicate metadata', rawBody('{"__metadata__":{},"__metadata__":{}}')],
      ['metadata value not string', rawBody('{"__metadata__":{"k":1}}')],
      ['metadata null', rawBody('{"__metadata__":null}')],
      ['overlap', rawBody(`{"a":${entry('[2]', 0, 8)},"b":${entry('[1]', 4, 8)}}`, f32(2))],
      ['hole', rawBody(`{"a":${entry('[1]', 0, 4)},"b":${entry('[1]', 8, 12)}}`, f32(3))],
      ['not from zero', rawBody(`{"a":${entry('[1]', 4, 8)}}`, f32(2))],
      ['trailing data', rawBody(`{"a":${entry('[1]', 0, 4)}}`, f32(2))],
      ['truncated data', rawBody(`{"a":${entry('[2]', 0, 8)}}`, f32(1))],
      ['count mismatch', rawBody(`{"a":${entry('[3]', 0, 8)}}`, f32(2))],
      ['end before begin', rawBody(`{"a":${entry('[0]', 4, 0)}}`, f32(1))],
      ['three offsets', rawBody('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', f32(1))],
      ['float shape', rawBody(`{"a":${entry('[1.0]', 0, 4)}}`, f32(1))],
      ['exponent shape', rawBody(`{"a":${entry('[1e0]', 0, 4)}}`, f32(1))],
      ['negative shape', rawBody(`{"a":${entry('[-1]', 0, 4)}}`, f32(1))],
      ['leading zero', rawBody(`{"a":${entry('[01]', 0, 4)}}`, f32(1))],
      ['unsafe integer', rawBody(`{"a":${entry('[9007199254740993]', 0, 4)}}`, f32(1))],
      ['string shape', rawBody(`{"a":${entry('["1"]', 0, 4)}}`, f32(1))],
      ['control char in name', rawBody(`{"a\n":${entry('[1]', 0, 4)}}`, f32(1))],
      ['bad escape', rawBody(`{"a\\q":${entry('[1]', 0, 4)}}`, f32(1))],
    ];
    for (const [label, body] of cases) {
      assert.throws(
        () => decodeSafetensors(body),
        (e: unknown) => e instanceof EntenteError && e.code === 'MALFORMED_BODY',
        label,
      );
    }
  });

  it('rejects a dtype other than F32 with INVALID_TENSOR naming the tensor', () => {
    for (const dtype of ['F64', 'F16', 'BF16', 'I32', 'f32']) {
      throwsCode(
        () => decodeSafetensors(rawBody(`{"w":${entry('[1]', 0, 4, dtype)}}`, f32(1))),
        'INVALID_TENSOR',
        /"w".*F32/,
      );
    }
  });

  it('rejects an absurd header length without allocating, and honours the limits', () => {
    const body = new Uint8Array(16);
    new DataView(body.buffer).setBigUint64(0, 2n ** 60n, true);
    throwsCode(() => decodeSafetensors(body), 'MALFORMED_BODY', /header length/);
    const reader = createSafetensorsReader({ expected: [], onSlice: () => {} });
    throwsCode(() => reader.push(body), 'MALFORMED_BODY', /header length/);
    new DataView(body.buffer).setBigUint64(0, 2n ** 20n + 1n, true);
    throwsCode(() => decodeSafetensors(body), 'MALFORMED_BODY', /header length/);
    const ok = rawBody(`{"a":${entry('[1]', 0, 4)}}`, f32(1));
    throwsCode(() => decodeSafetensors(ok, { maxHeaderBytes: 16 }), 'MALFORMED_BODY', /header length/);
    throwsCode(() => decodeSafetensors(ok, { maxBytes: ok.length - 1 }), 'BODY_TOO_LARGE');
    assert.equal(decodeSafetensors(ok, { maxBytes: ok.length }).weights.length, 1);
  });

  it('rejects wrong names and shapes against the expected layout, naming the tensor', () => {
    const w = [
      { name: 'w1', shape: [2, 2], data: new Float32Array(4) },
      { name: 'b1', shape: [2], data: new Float32Array(2) },
    ];
    const body = encodeSafetensors(w);
    throwsCode(
      () => decodeSafetensors(body, { expected: [{ name: 'w1', shape: [2, 2] }] }),
      'INVALID_TENSOR',
      /unexpected tensor "b1"/,
    );
    throwsCode(
      () => decodeSafetensors(body, { expected: [...layoutOf(w), { name: 'b2', shape: [1] }] }),
      'INVALID_TENSOR',
      /"b2" is missing/,
    );
    throwsCode(
      () =>
        decodeSafetensors(body, {
          expected: [
            { name: 'w1', shape: [4] },
            { name: 'b1', shape: [2] },
          ],
        }),
      'INVALID_TENSOR',
      /"w1" has shape \[2,2\], expected \[4\]/,
    );
    throwsCode(
      () =>
        decodeSafetensors(body, {
          expected: [
            { name: 'w1', shape: [2, 2] },
            { name: 'b1', shape: [1, 2] },
          ],
        }),
      'INVALID_TENSOR',
      /"b1"/,
    );
  });

  it('rejects NaN and ±Infinity naming the tensor and element, in decode and in the reader', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const data = new Float32Array([0, 1, 2, 3, 4]);
      data[3] = bad;
      const w = [
        { name: 'ok', shape: [2], data: new Float32Array([1, 2]) },
        { name: 'w2', shape: [5], data },
      ];
      const body = encodeSafetensors(w);
      throwsCode(
        () => decodeSafetensors(body, { expected: layoutOf(w) }),
        'INVALID_TENSOR',
        /"w2".*element 3/,
      );
      const cuts = Array.from({ length: body.length }, (_, i) => i);
      throwsCode(() => readStreamed(body, layoutOf(w), cuts), 'INVALID_TENSOR', /"w2".*element 3/);
      assert.ok(
        Object.is(decodeSafetensors(body).weights[1]!.data[3], bad),
        'no layout: values returned as is',
      );
    }
  });
});

describe('safetensors: streaming reader', () => {
  it('gives the same values as decode for random chunkings', () => {
    fc.assert(
      fc.property(weightsArb(true), metadataArb, (weights, metadata) => {
        const body = encodeSafetensors(weights, metadata);
        return fc.assert(
          fc.property(fc.uniqueArray(fc.integer({ min: 0, max: body.length }), { maxLength: 12 }), (cuts) => {
            const expected = layoutOf([...weights].reverse());
            const { values, result } = readStreamed(body, expected, cuts);
            const decoded = decodeSafetensors(body, { expected }).weights;
            decoded.forEach((t, i) => {
              assert.deepEqual(bytesOf(values[i]!), bytesOf(t.data));
            });
            assert.equal(result.bytes, body.length);
            assert.deepEqual(result.metadata, metadata);
          }),
          { numRuns: 5 },
        );
      }),
      { numRuns: 60 },
    );
  });

  it('accepts a byte-at-a-time stream', () => {
    const w = [
      { name: 'a', shape: [3], data: new Float32Array([1.5, -2, 3]) },
      { name: 'b', shape: [1, 2], data: new Float32Array([4, 5]) },
    ];
    const body = encodeSafetensors(w, { round: '3' });
    const { values, result } = readStreamed(
      body,
      layoutOf(w),
      Array.from({ length: body.length }, (_, i) => i),
    );
    assert.deepEqual([...values[0]!], [1.5, -2, 3]);
    assert.deepEqual([...values[1]!], [4, 5]);
    assert.deepEqual(result, { bytes: body.length, metadata: { round: '3' } });
  });

  it('fails cleanly at every truncation point, and on bytes past the end', () => {
    const w = [
      { name: 'a', shape: [3], data: new Float32Array([1, 2, 3]) },
      { name: 'b', shape: [2], data: new Float32Array([4, 5]) },
    ];
    const body = encodeSafetensors(w, { k: 'v' });
    const expected = layoutOf(w);
    for (let k = 0; k < body.length; k++) {
      const prefix = body.subarray(0, k);
      throwsCode(() => decodeSafetensors(prefix, { expected }), 'MALFORMED_BODY');
      const reader = createSafetensorsReader({ expected, onSlice: () => {} });
      reader.push(prefix);
      throwsCode(() => reader.end(), 'MALFORMED_BODY', /truncated/);
    }
    const longer = new Uint8Array(body.length + 1);
    longer.set(body);
    throwsCode(() => decodeSafetensors(longer, { expected }), 'MALFORMED_BODY');
    const reader = createSafetensorsReader({ expected, onSlice: () => {} });
    reader.push(body);
    throwsCode(() => reader.push(new Uint8Array(1)), 'MALFORMED_BODY', /past the declared end/);
    throwsCode(() => reader.end(), 'MALFORMED_BODY', /failed/);
  });

  it('checks the header against the layout as soon as it is complete', () => {
    const w = [{ name: 'a', shape: [2], data: new Float32Array([1, 2]) }];
    const body = encodeSafetensors(w);
    const headerEnd = 8 + new DataView(body.buffer).getUint32(0, true);
    const reader = createSafetensorsReader({ expected: [{ name: 'a', shape: [3] }], onSlice: () => {} });
    reader.push(body.subarray(0, headerEnd - 1));
    throwsCode(() => reader.push(body.subarray(headerEnd - 1, headerEnd)), 'INVALID_TENSOR', /"a"/);
  });

  it('single-byte corruptions of the header decode or throw EntenteError, never anything else', () => {
    const w = [
      { name: 'alpha', shape: [2, 1], data: new Float32Array([1, 2]) },
      { name: 'beta', shape: [1], data: new Float32Array([3]) },
    ];
    const body = encodeSafetensors(w, { note: 'x' });
    const headerEnd = 8 + new DataView(body.buffer).getUint32(0, true);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: headerEnd - 1 }),
        fc.integer({ min: 0, max: 255 }),
        (pos, byte) => {
          const bad = body.slice();
          bad[pos] = byte;
          for (const run of [
            () => decodeSafetensors(bad),
            () => decodeSafetensors(bad, { expected: layoutOf(w) }),
            () => readStreamed(bad, layoutOf(w), [pos, pos + 3]),
          ]) {
            try {
              run();
            } catch (e) {
              assert.ok(e instanceof EntenteError, `not an EntenteError: ${String(e)}`);
            }
          }
        },
      ),
      { numRuns: 1500 },
    );
  });
});
