/**
 * FaceNet's triplet loss (Schroff et al. 2015, eq. 1) on squared L2 distances:
 *   L = mean over mined triplets of max(0, ||f(a) - f(p)||² - ||f(a) - f(n)||² + margin)
 * Distances come from one differentiable N x N matrix; mining (no gradient) picks the index triplets,
 * which gather the distances the loss uses. batch-all averages over the triplets with a positive loss only
 * (Hermans et al.), so easy triplets do not dilute the gradient.
 */
import { ArgumentError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { mineTriplets, type MiningDiagnostics, type MiningMode } from './mining.js';

export interface TripletOptions {
  margin?: number;
  mining?: MiningMode;
}

export interface TripletResult {
  loss: Tensor;
  diagnostics: MiningDiagnostics & { warning?: string };
}

export function tripletLoss(embeddings: Tensor, labels: ArrayLike<number>, options: TripletOptions = {}): TripletResult {
  const margin = options.margin ?? 0.2;
  const mode = options.mining ?? 'semi-hard';
  if (embeddings.rank !== 2 || embeddings.shape[0] !== labels.length) {
    throw new ArgumentError('tripletLoss', `embeddings must be [N, D] with one label per row; got [${embeddings.shape.join(', ')}] and ${labels.length} labels`);
  }
  const dist = ops.squaredDistances(embeddings);
  const { triplets, diagnostics } = noGrad(() => mineTriplets(dist.data, labels, mode, margin));
  const n = labels.length;
  let warning: string | undefined;
  if (diagnostics.collapsed) warning = 'embeddings collapsed onto one point: the loss sits at the margin (lower the learning rate or check the data)';
  if (triplets.anchor.length === 0) {
    // Nothing to learn from in this batch: a zero loss still connected to the graph.
    return { loss: ops.mul(ops.sum(dist), 0), diagnostics: { ...diagnostics, ...(warning ? { warning } : {}) } };
  }
  const ap = Int32Array.from(triplets.anchor, (a, t) => a * n + triplets.positive[t]!);
  const an = Int32Array.from(triplets.anchor, (a, t) => a * n + triplets.negative[t]!);
  const perTriplet = ops.relu(ops.add(ops.sub(ops.gather(dist, ap), ops.gather(dist, an)), margin));
  let loss: Tensor;
  if (mode === 'batch-all') {
    const positive = Array.from(perTriplet.data).filter((v) => v > 1e-16).length;
    loss = ops.div(ops.sum(perTriplet), Math.max(positive, 1));
  } else {
    loss = ops.mean(perTriplet);
  }
  return { loss, diagnostics: { ...diagnostics, ...(warning ? { warning } : {}) } };
}
