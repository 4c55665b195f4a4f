import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalizeJson } from './canonical-json.ts';

test('keys are sorted recursively and whitespace removed (RFC 8785 §3.2.3)', () => {
  assert.equal(canonicalizeJson({ b: 1, a: { d: [1, 'x'], c: null } }), '{"a":{"c":null,"d":[1,"x"]},"b":1}');
});

test('numbers use the ECMAScript form (RFC 8785 §3.2.2.3 examples)', () => {
  assert.equal(
    canonicalizeJson([1e21, 1e-7, 0.000001, -0, 333333333.3333333]),
    '[1e+21,1e-7,0.000001,0,333333333.3333333]',
  );
});

test('keys sort by UTF-16 code units, not locale', () => {
  assert.equal(canonicalizeJson({ é: 1, z: 2, A: 3 }), '{"A":3,"z":2,"é":1}');
});

test('non-finite numbers and undefined array members are refused with the path', () => {
  assert.throws(() => canonicalizeJson({ a: [Number.NaN] }), /\$\.a\[0\]: not a finite number/);
  assert.throws(() => canonicalizeJson([undefined]), /\$\[0\]/);
});
