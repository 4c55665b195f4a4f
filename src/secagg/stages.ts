/**
 * The stages of one secure-aggregation round, shared by the participant and the coordinator
 * (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017,
 * Fig. 4, actively secure variant): Round 0 AdvertiseKeys, Round 1 ShareKeys, Round 2
 * MaskedInputCollection, Round 3 ConsistencyCheck, Round 4 Unmasking.
 */

export const SECAGG_STAGES = [
  'advertise-keys',
  'share-keys',
  'masked-input',
  'consistency-check',
  'unmasking',
] as const;

export type SecAggStage = (typeof SECAGG_STAGES)[number];

/** The default threshold: floor(2n/3)+1 (DESIGN.md §4), never below 3. */
export function computeDefaultThreshold(cohortSize: number): number {
  return Math.max(3, Math.floor((2 * cohortSize) / 3) + 1);
}

/**
 * The smallest threshold a participant accepts for a cohort of `cohortSize`: more than half of the
 * cohort (so two disjoint survivor views cannot both reach the threshold) and at least 3 (with 2,
 * each learns the other's update from the sum).
 */
export function computeMinimumThreshold(cohortSize: number): number {
  return Math.max(3, Math.floor(cohortSize / 2) + 1);
}
