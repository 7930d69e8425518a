/**
 * Online triplet mining inside a batch of P identities x K images (FaceNet section 3.2; Hermans et al.
 * 2017 for batch-hard / batch-all). From the squared distances D and the labels, a mode selects the
 * (anchor, positive, negative) triplets the loss is averaged over:
 *   semi-hard   all triplets with D(a,p) < D(a,n) < D(a,p) + margin (FaceNet's choice);
 *   hard        all triplets with D(a,n) < D(a,p) (the negative is closer than the positive);
 *   batch-hard  per anchor: its farthest positive and its nearest negative;
 *   batch-all   every valid triplet (the loss then averages over those with a positive loss).
 * Diagnostics describe the batch: how many triplets are active (positive loss), the mean positive and
 * negative distances, and whether the embeddings have collapsed onto one point.
 */

export type MiningMode = 'semi-hard' | 'hard' | 'batch-hard' | 'batch-all';

export interface Triplets {
  anchor: Int32Array;
  positive: Int32Array;
  negative: Int32Array;
}

export interface MiningDiagnostics {
  /** Triplets the mode selected. */
  selected: number;
  /** Fraction of all valid triplets of the batch whose loss is positive. */
  activeFraction: number;
  meanPositiveDistance: number;
  meanNegativeDistance: number;
  /** All embeddings (nearly) equal: the loss sits at the margin and gives no signal. */
  collapsed: boolean;
}

/** Selects triplets from an N x N distance matrix (row-major) and labels. */
export function mineTriplets(dist: ArrayLike<number>, labels: ArrayLike<number>, mode: MiningMode, margin: number): { triplets: Triplets; diagnostics: MiningDiagnostics } {
  const n = labels.length;
  const D = (i: number, j: number): number => dist[i * n + j]!;
  const a: number[] = [], p: number[] = [], ng: number[] = [];
  let valid = 0, active = 0, posSum = 0, posCount = 0, negSum = 0, negCount = 0, maxD = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      maxD = Math.max(maxD, D(i, j));
      if (labels[i] === labels[j]) { posSum += D(i, j); posCount++; } else { negSum += D(i, j); negCount++; }
    }
  }
  for (let i = 0; i < n; i++) {
    let hardestPos = -1, hardestNeg = -1;
    for (let j = 0; j < n; j++) {
      if (j === i || labels[j] !== labels[i]) continue;
      if (hardestPos < 0 || D(i, j) > D(i, hardestPos)) hardestPos = j;
      for (let k = 0; k < n; k++) {
        if (labels[k] === labels[i]) continue;
        if (hardestNeg < 0 || D(i, k) < D(i, hardestNeg)) hardestNeg = k;
        valid++;
        const dap = D(i, j), dan = D(i, k);
        if (dap - dan + margin > 0) active++;
        const take = mode === 'semi-hard' ? dap < dan && dan < dap + margin
          : mode === 'hard' ? dan < dap
          : mode === 'batch-all';
        if (take) { a.push(i); p.push(j); ng.push(k); }
      }
    }
    if (mode === 'batch-hard' && hardestPos >= 0 && hardestNeg >= 0) { a.push(i); p.push(hardestPos); ng.push(hardestNeg); }
  }
  return {
    triplets: { anchor: Int32Array.from(a), positive: Int32Array.from(p), negative: Int32Array.from(ng) },
    diagnostics: {
      selected: a.length,
      activeFraction: valid ? active / valid : 0,
      meanPositiveDistance: posCount ? posSum / posCount : 0,
      meanNegativeDistance: negCount ? negSum / negCount : 0,
      collapsed: maxD < 1e-6,
    },
  };
}
