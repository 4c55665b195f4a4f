/**
 * The difference between two model versions: the lineage fields that differ, and (when both models'
 * weights are at hand) per tensor its shapes, the L2 distance ‖a − b‖₂ and the largest absolute
 * difference, plus the same over all tensors present in both with equal shapes. Pure.
 */
import type { Weights } from '../core/tensor.ts';
import type { ModelVersion } from './model-versions.ts';

export interface LineageDifference {
  readonly field: string;
  readonly a: unknown;
  readonly b: unknown;
}

export interface TensorDifference {
  readonly name: string;
  /** Null where the tensor is absent from that model. */
  readonly shapeA: readonly number[] | null;
  readonly shapeB: readonly number[] | null;
  /** Null unless both have the tensor with the same shape. */
  readonly l2: number | null;
  readonly maxAbs: number | null;
}

export interface ModelDiff {
  readonly a: string;
  readonly b: string;
  readonly lineage: readonly LineageDifference[];
  /** Null when the weights of either model were not given. */
  readonly tensors: readonly TensorDifference[] | null;
  /** Over every tensor both have with the same shape (null without weights). */
  readonly total: { readonly l2: number; readonly maxAbs: number; readonly comparable: boolean } | null;
}

const lineageFields = [
  'kind',
  'run',
  'round',
  'parent',
  'configSha256',
  'policySha256',
  'dataSchemaDigest',
  'modelSpecSha256',
  'provenanceSha256',
] as const;

const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Per-tensor differences of two weight lists, by tensor name (a's order, then b's extra tensors). */
export function diffWeights(a: Weights, b: Weights): TensorDifference[] {
  const byName = new Map(b.map((t) => [t.name, t] as const));
  const out: TensorDifference[] = [];
  for (const ta of a) {
    const tb = byName.get(ta.name);
    byName.delete(ta.name);
    if (!tb || !sameShape(ta.shape, tb.shape)) {
      out.push({
        name: ta.name,
        shapeA: [...ta.shape],
        shapeB: tb ? [...tb.shape] : null,
        l2: null,
        maxAbs: null,
      });
      continue;
    }
    let sum = 0;
    let maxAbs = 0;
    for (let i = 0; i < ta.data.length; i++) {
      const d = Math.abs(ta.data[i]! - tb.data[i]!);
      sum += d * d;
      if (d > maxAbs) maxAbs = d;
    }
    out.push({ name: ta.name, shapeA: [...ta.shape], shapeB: [...tb.shape], l2: Math.sqrt(sum), maxAbs });
  }
  for (const tb of byName.values())
    out.push({ name: tb.name, shapeA: null, shapeB: [...tb.shape], l2: null, maxAbs: null });
  return out;
}

/** Compares two versions' lineage and, when given, their weights. */
export function diffModelVersions(
  a: ModelVersion,
  b: ModelVersion,
  weights?: { readonly a: Weights; readonly b: Weights },
): ModelDiff {
  const lineage: LineageDifference[] = [];
  for (const field of lineageFields)
    if (a[field] !== b[field]) lineage.push({ field, a: a[field], b: b[field] });
  if (!weights) return { a: a.id, b: b.id, lineage, tensors: null, total: null };
  const tensors = diffWeights(weights.a, weights.b);
  let sum = 0;
  let maxAbs = 0;
  for (const t of tensors) {
    if (t.l2 === null || t.maxAbs === null) continue;
    sum += t.l2 * t.l2;
    maxAbs = Math.max(maxAbs, t.maxAbs);
  }
  const comparable = tensors.every((t) => t.l2 !== null);
  return { a: a.id, b: b.id, lineage, tensors, total: { l2: Math.sqrt(sum), maxAbs, comparable } };
}
