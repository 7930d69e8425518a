/**
 * Pairwise distances between rows of a [N, D] and b [M, D] (b defaults to a), for triplet mining and
 * galleries. Squared distances are summed from differences (not |a|²+|b|²-2ab) so they are exact and >= 0.
 * Backward: d(d²_ij)/da_i = 2(a_i - b_j), d/db_j = -2(a_i - b_j).
 */
import { ShapeError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { dims2 } from '../tensor/shape.js';
import { alloc, Tensor } from '../tensor/tensor.js';
import { maximum, sqrt } from './elementwise.js';
import { commonDType } from './util.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export function squaredDistances(a: Tensor, b: Tensor = a): Tensor {
  const dtype = commonDType('squaredDistances', a, b);
  const [N, D] = dims2('squaredDistances', a.shape, 'a [N, D]');
  const [M, D2] = dims2('squaredDistances', b.shape, 'b [M, D]');
  if (D !== D2) throw new ShapeError('squaredDistances', `b [M, ${D}]`, b.shape);
  const inputs = a === b ? [a] : [a, b];
  const gpu = gpuFor(a, b);
  if (gpu) {
    const y = gpuOps.squaredDistances(gpu, a, b);
    return record(y, 'squaredDistances', inputs, (dy, needs) => {
      const [da, db] = gpuOps.squaredDistancesBackward(gpu, dy, a, b, [needs[0]!, a === b ? needs[0]! : needs[1]!]);
      if (a !== b) return [da, db];
      return [da && db ? da.map((v, i) => v + db[i]!) : null];
    });
  }
  const ad = a.data, bd = b.data;
  const y = alloc(dtype, N * M);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < M; j++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += (ad[i * D + k]! - bd[j * D + k]!) ** 2;
      y[i * M + j] = s;
    }
  }
  return record(new Tensor(y, [N, M]), 'squaredDistances', inputs, (dy, needs) => {
    const da = needs[0] ? alloc(dtype, a.size) : null;
    const db = a === b ? da : needs[1] ? alloc(dtype, b.size) : null;
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < M; j++) {
        const g = 2 * dy[i * M + j]!;
        if (g === 0) continue;
        for (let k = 0; k < D; k++) {
          const diff = ad[i * D + k]! - bd[j * D + k]!;
          if (da) da[i * D + k]! += g * diff;
          if (db) db[j * D + k]! -= g * diff;
        }
      }
    }
    return a === b ? [da] : [da, db];
  });
}

/** Euclidean distances sqrt(max(d², eps)); the clamp keeps the gradient finite at d = 0 (it is 0 there). */
export function euclideanDistances(a: Tensor, b: Tensor = a, eps = 1e-12): Tensor {
  return sqrt(maximum(squaredDistances(a, b), eps));
}
