/**
 * Verification metrics over pairs (distance, same): accuracy at a threshold, the best threshold, 10-fold
 * accuracy (threshold chosen on 9 folds, measured on the 10th, LFW protocol), and ROC AUC; plus DBSCAN
 * clustering of embeddings at a distance threshold.
 */

export interface ScoredPair { distance: number; same: boolean }

export function accuracyAt(pairs: readonly ScoredPair[], threshold: number): number {
  if (pairs.length === 0) return NaN;
  return pairs.filter((p) => (p.distance <= threshold) === p.same).length / pairs.length;
}

/** The threshold with the highest accuracy (midpoints between sorted distances are the candidates). */
export function bestThreshold(pairs: readonly ScoredPair[]): { threshold: number; accuracy: number } {
  const d = [...new Set(pairs.map((p) => p.distance))].sort((a, b) => a - b);
  const candidates = [d[0]! - 1e-9, ...d.slice(0, -1).map((v, i) => (v + d[i + 1]!) / 2), d[d.length - 1]! + 1e-9];
  let best = { threshold: candidates[0]!, accuracy: -1 };
  for (const t of candidates) {
    const acc = accuracyAt(pairs, t);
    if (acc > best.accuracy) best = { threshold: t, accuracy: acc };
  }
  return best;
}

/** Fold i holds pairs i, i+10, i+20, ...; returns mean and standard deviation of the held-out accuracies. */
export function tenFold(pairs: readonly ScoredPair[], folds = 10): { mean: number; std: number } {
  const accs: number[] = [];
  for (let f = 0; f < folds; f++) {
    const test = pairs.filter((_, i) => i % folds === f);
    const train = pairs.filter((_, i) => i % folds !== f);
    if (test.length === 0 || train.length === 0) continue;
    accs.push(accuracyAt(test, bestThreshold(train).threshold));
  }
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  return { mean, std: Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / accs.length) };
}

/** Probability that a random same pair is closer than a random different pair (ties count half). */
export function rocAuc(pairs: readonly ScoredPair[]): number {
  const sorted = [...pairs].sort((a, b) => a.distance - b.distance);
  let sameSeen = 0, auc = 0, i = 0;
  const nSame = pairs.filter((p) => p.same).length, nDiff = pairs.length - nSame;
  while (i < sorted.length) {
    let j = i, sameHere = 0, diffHere = 0;
    while (j < sorted.length && sorted[j]!.distance === sorted[i]!.distance) { if (sorted[j]!.same) sameHere++; else diffHere++; j++; }
    auc += diffHere * (sameSeen + sameHere / 2);
    sameSeen += sameHere;
    i = j;
  }
  return nSame && nDiff ? auc / (nSame * nDiff) : NaN;
}

/**
 * DBSCAN with eps = threshold and minPoints = 2 (a point and one neighbour form a cluster): returns
 * clusters as index lists and the indices left as noise.
 */
export function dbscan(n: number, dist: (i: number, j: number) => number, eps: number, minPoints = 2): { clusters: number[][]; noise: number[] } {
  const neighbours = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => j).filter((j) => dist(i, j) <= eps));
  const label = new Int32Array(n).fill(-1);
  const clusters: number[][] = [];
  for (let i = 0; i < n; i++) {
    if (label[i] !== -1 || neighbours[i]!.length < minPoints) continue;
    const c = clusters.length;
    const members: number[] = [];
    const queue = [i];
    label[i] = c;
    while (queue.length > 0) {
      const p = queue.shift()!;
      members.push(p);
      if (neighbours[p]!.length < minPoints) continue; // border point: joins, does not expand
      for (const q of neighbours[p]!) if (label[q] === -1) { label[q] = c; queue.push(q); }
    }
    clusters.push(members.sort((a, b) => a - b));
  }
  return { clusters, noise: Array.from({ length: n }, (_, i) => i).filter((i) => label[i] === -1) };
}
