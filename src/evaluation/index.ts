export type * from './evaluation-metrics.ts';
export {
  accumulateEvaluation,
  addEvaluationSums,
  type EvaluationRows,
} from './accumulate-evaluation.ts';
export {
  createEvaluationLayout,
  type EvaluationLayout,
  findSegment,
  LOG_LOSS_EPS,
  MAX_ROW_LOG_LOSS,
  type SumSegment,
} from './evaluation-layout.ts';
export {
  evaluationSpecSchema,
  evaluationSumCount,
  MAX_EVALUATION_SUMS,
  parseEvaluationSpec,
} from './evaluation-spec.ts';
export { aucBinningBound, computeAucBinningBound, finalizeEvaluation } from './finalize-evaluation.ts';
export { binBounds, binIndex, innerBinEdges } from './probability-bins.ts';
