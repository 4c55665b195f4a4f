/**
 * What a private evaluation declares and what it reports. Every figure is computed from sums that
 * combine across sites by adding (counts, sums of per-row losses, histograms), so the same code gives
 * the centralized figure on the union of the sites' rows and the federated one from a secure sum.
 */

/** What is measured: declared in an evaluation plan (or a run) before any row is touched. */
export interface EvaluationSpec {
  /** Number of label classes (2 for a binary model; the positive class is index 1). */
  readonly numClasses: number;
  /** Equal-width bins of a predicted probability in [0, 1] for ROC AUC and average precision. */
  readonly scoreBins: number;
  /** Equal-width bins for calibration (ECE, MCE, reliability diagram); 10 by default. */
  readonly calibrationBins: number;
  /** The sensitive attribute: a column the data schema declares, with its values in order. */
  readonly sensitive?: { readonly attribute: string; readonly values: readonly string[] };
  /** Named subsets of rows evaluated separately (covariate-shifted slices included), in order. */
  readonly slices?: readonly string[];
  /**
   * Differential privacy on the sums: each site adds its share of discrete Gaussian noise with this
   * noise multiplier z (ρ ≈ 1/(2z²) per evaluation for one of its records; protocol/secure-sum-noise.ts).
   * The figures are then noisy estimates (finalizeNoisyEvaluation). Per-row log loss is clipped at
   * maxRowLogLoss (default 34.6, the −ln 1e-15 of the exact figure): a lower clip means less noise.
   */
  readonly dp?: { readonly noiseMultiplier: number; readonly maxRowLogLoss: number };
}

/**
 * One bin of a reliability diagram: (lower, upper] except the first, which is [0, upper] (scikit-learn's
 * calibration_curve rule: a value on an inner edge belongs to the lower bin).
 */
export interface ReliabilityBin {
  readonly lower: number;
  readonly upper: number;
  readonly count: number;
  /** Mean predicted probability in the bin (null when empty). */
  readonly meanPredicted: number | null;
  /** Fraction of positives (binary) or of correct top labels (multi-class) in the bin (null when empty). */
  readonly fractionPositive: number | null;
}

export interface ClassMetrics {
  readonly precision: number | null;
  readonly recall: number | null;
  readonly f1: number | null;
  readonly support: number;
}

/** The metrics of one set of rows (all rows, or one slice). */
export interface ClassificationMetrics {
  readonly rows: number;
  readonly accuracy: number | null;
  /** Mean cross-entropy of the true class, probabilities clipped to [1e-15, 1 − 1e-15] (as scikit-learn). */
  readonly logLoss: number | null;
  /** Binary: mean (p₁ − y)² (scikit-learn's brier_score_loss). Multi-class: mean Σₖ (pₖ − 1[y=k])². */
  readonly brier: number | null;
  /** confusion[true][predicted], predicted = argmax (lowest index on ties). */
  readonly confusion: readonly (readonly number[])[];
  readonly perClass: readonly ClassMetrics[];
  readonly macro: {
    readonly precision: number | null;
    readonly recall: number | null;
    readonly f1: number | null;
  };
  readonly micro: {
    readonly precision: number | null;
    readonly recall: number | null;
    readonly f1: number | null;
  };
  /** Binary: of the positive class. Multi-class: the unweighted mean of one-vs-rest AUCs. Null if undefined. */
  readonly rocAuc: number | null;
  /**
   * Bound on |rocAuc − the AUC of the unbinned scores| from rows sharing a score bin:
   * Σ_b pos_b·neg_b / (2PN) (multi-class: mean over classes). Null when rocAuc is.
   */
  readonly rocAucBinningBound?: number | null;
  /** Binary: of the positive class. Multi-class: macro one-vs-rest. Null if undefined. */
  readonly averagePrecision: number | null;
  /** ROC curve points (binary: positive class; multi-class: class 0 vs rest is NOT given, only binary). */
  readonly rocCurve: { readonly fpr: readonly number[]; readonly tpr: readonly number[] } | null;
  readonly ece: number | null;
  readonly mce: number | null;
  readonly reliability: readonly ReliabilityBin[];
}

/** Per-group figures over the sensitive attribute (binary models; predicted positive = class 1). */
export interface GroupMetrics {
  readonly rows: number;
  readonly selectionRate: number | null;
  readonly truePositiveRate: number | null;
  readonly falsePositiveRate: number | null;
  readonly accuracy: number | null;
}

/** Fairlearn's definitions (between-group differences, worst case over groups with rows). */
export interface FairnessMetrics {
  readonly attribute: string;
  readonly groups: Readonly<Record<string, GroupMetrics>>;
  /** max − min selection rate. */
  readonly demographicParityDifference: number | null;
  /** min / max selection rate. */
  readonly demographicParityRatio: number | null;
  /** max(TPR difference, FPR difference). */
  readonly equalizedOddsDifference: number | null;
  /** TPR difference. */
  readonly equalOpportunityDifference: number | null;
}

export interface EvaluationMetrics {
  readonly overall: ClassificationMetrics;
  readonly fairness: FairnessMetrics | null;
  readonly slices: Readonly<Record<string, ClassificationMetrics>>;
}
