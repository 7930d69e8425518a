/**
 * softmax and logSoftmax along an axis (default: the last), computed with the max subtracted for stability.
 * Backward: softmax dx = y (dy - <dy, y>); logSoftmax dx = dy - softmax(x) * sum(dy).
 */
import { record } from '../autograd/tape.js';
import { normAxis, splitAtAxis } from '../tensor/shape.js';
import { alloc, Tensor, type TypedArray } from '../tensor/tensor.js';

/** Calls fn(indexOf) once per 1-D slice along the axis; indexOf(a) is the flat index of entry a. */
function forEachSlice(shape: readonly number[], axis: number, fn: (indexOf: (a: number) => number, n: number) => void): void {
  const { outer, axisLen, inner } = splitAtAxis(shape, axis);
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) fn((a) => (o * axisLen + a) * inner + i, axisLen);
}

/** Writes log-softmax of every slice of x into out. */
function logSoftmaxInto(x: TypedArray, shape: readonly number[], axis: number, out: TypedArray): void {
  forEachSlice(shape, axis, (at, n) => {
    let max = -Infinity;
    for (let a = 0; a < n; a++) max = Math.max(max, x[at(a)]!);
    let sum = 0;
    for (let a = 0; a < n; a++) sum += Math.exp(x[at(a)]! - max);
    const logZ = max + Math.log(sum);
    for (let a = 0; a < n; a++) out[at(a)] = x[at(a)]! - logZ;
  });
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const ax = normAxis('logSoftmax', axis, x.rank);
  const y = alloc(x.dtype, x.size);
  logSoftmaxInto(x.data, x.shape, ax, y);
  return record(new Tensor(y, x.shape), 'logSoftmax', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    forEachSlice(x.shape, ax, (at, n) => {
      let sum = 0;
      for (let a = 0; a < n; a++) sum += dy[at(a)]!;
      for (let a = 0; a < n; a++) dx[at(a)] = dy[at(a)]! - Math.exp(y[at(a)]!) * sum;
    });
    return [dx];
  });
}

export function softmax(x: Tensor, axis = -1): Tensor {
  const ax = normAxis('softmax', axis, x.rank);
  const y = alloc(x.dtype, x.size);
  logSoftmaxInto(x.data, x.shape, ax, y);
  for (let i = 0; i < y.length; i++) y[i] = Math.exp(y[i]!);
  return record(new Tensor(y, x.shape), 'softmax', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    forEachSlice(x.shape, ax, (at, n) => {
      let dot = 0;
      for (let a = 0; a < n; a++) dot += dy[at(a)]! * y[at(a)]!;
      for (let a = 0; a < n; a++) dx[at(a)] = y[at(a)]! * (dy[at(a)]! - dot);
    });
    return [dx];
  });
}
