/**
 * Reductions over a set of axes (default: all): sum, mean, max. keepDims keeps reduced axes as size 1.
 * Each input element maps to one output element (through broadcastIndex), so the backward is a gather:
 * sum: dx = dy[out(i)], mean: dy/count, max: dy to the first maximal element of each group.
 */
import { record } from '../autograd/tape.js';
import { broadcastIndex, normAxis } from '../tensor/shape.js';
import { alloc, Tensor } from '../tensor/tensor.js';

export interface ReduceOptions {
  axes?: number | readonly number[];
  keepDims?: boolean;
}

function plan(op: string, x: Tensor, options: ReduceOptions): { keptShape: number[]; outShape: number[]; outIndex: Int32Array; count: number } {
  const axes = options.axes === undefined ? x.shape.map((_, i) => i) : [options.axes].flat().map((a) => normAxis(op, a, x.rank));
  const reduced = new Set(axes);
  const keptShape = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const outShape = options.keepDims ? keptShape : x.shape.filter((_, i) => !reduced.has(i));
  const count = axes.reduce((c, a) => c * x.shape[a]!, 1);
  return { keptShape, outShape, outIndex: broadcastIndex(keptShape, x.shape), count };
}

function sumLike(op: 'sum' | 'mean', x: Tensor, options: ReduceOptions): Tensor {
  const { outShape, outIndex, count } = plan(op, x, options);
  const divisor = op === 'mean' ? count : 1;
  const xd = x.data;
  const y = alloc(x.dtype, x.size / Math.max(count, 1));
  for (let i = 0; i < xd.length; i++) y[outIndex[i]!]! += xd[i]!;
  for (let j = 0; j < y.length; j++) y[j]! /= divisor;
  return record(new Tensor(y, outShape), op, [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let i = 0; i < dx.length; i++) dx[i] = dy[outIndex[i]!]! / divisor;
    return [dx];
  });
}

export const sum = (x: Tensor, options: ReduceOptions = {}): Tensor => sumLike('sum', x, options);
export const mean = (x: Tensor, options: ReduceOptions = {}): Tensor => sumLike('mean', x, options);

export function max(x: Tensor, options: ReduceOptions = {}): Tensor {
  const { outShape, outIndex, count } = plan('max', x, options);
  const xd = x.data;
  const y = alloc(x.dtype, x.size / Math.max(count, 1)).fill(-Infinity);
  const winner = new Int32Array(y.length).fill(-1);
  for (let i = 0; i < xd.length; i++) {
    const j = outIndex[i]!;
    if (winner[j]! < 0 || xd[i]! > y[j]!) { y[j] = xd[i]!; winner[j] = i; }
  }
  return record(new Tensor(y, outShape), 'max', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let j = 0; j < winner.length; j++) dx[winner[j]!] = dy[j]!;
    return [dx];
  });
}
