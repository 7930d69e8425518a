/**
 * Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p), so that
 * inference needs no rescaling. The mask is drawn from the given seeded generator; backward reuses it.
 */
import { ArgumentError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { alloc, Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/random.js';

export function dropout(x: Tensor, p: number, rng: Rng): Tensor {
  if (!(p >= 0 && p < 1)) throw new ArgumentError('dropout', `p must be in [0, 1), got ${p}`);
  const keep = 1 / (1 - p);
  const mask = alloc(x.dtype, x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < p ? 0 : keep;
  const xd = x.data;
  const y = alloc(x.dtype, x.size);
  for (let i = 0; i < y.length; i++) y[i] = xd[i]! * mask[i]!;
  return record(new Tensor(y, x.shape), 'dropout', [x], (dy) => [dy.map((g, i) => g * mask[i]!)]);
}
