/**
 * The sum that closes a residual block: act(shortcut + scale * branch). A ResNet adds its block's output
 * to the shortcut and applies ReLU (scale 1); Inception-ResNet scales the branch down first (0.1-0.2,
 * Szegedy et al. 2016: it keeps the sum of many blocks from blowing up in training). One pass where
 * multiply, add and ReLU took three, with their float32 roundings (the product rounded, then the sum: no
 * fused multiply-add), so the values are those of the three ops. Both operands have one shape.
 */
import { handOver, record } from '../autograd/tape.js';
import { ShapeError } from '../errors.js';
import { shapesEqual } from '../tensor/shape.js';
import { allocUnfilled, dtypeOf, Tensor, type TypedArray } from '../tensor/tensor.js';
import { gpuFor } from '../backends/backend.js';
import { maskByPositive, reluInPlace } from '../backends/cpu/relu_mask.js';
import { affineValues, residualValues } from '../backends/cpu/wasm_planes.js';
import { add, mul } from './elementwise.js';
import { relu as reluOp } from './activation.js';
import { commonDType } from './util.js';

export interface ResidualOptions {
  /** The branch's factor (default 1). */
  scale?: number;
  /** max(0, .) on the sum (default false). */
  relu?: boolean;
}

export function residual(shortcut: Tensor, branch: Tensor, options: ResidualOptions = {}): Tensor {
  const { scale = 1, relu = false } = options;
  const dtype = commonDType('residual', shortcut, branch);
  if (!shapesEqual(shortcut.shape, branch.shape)) throw new ShapeError('residual', `a branch of the shortcut's shape [${shortcut.shape.join(', ')}]`, branch.shape);
  if (gpuFor(shortcut, branch)) { // the three ops, one kernel each
    const sum = add(shortcut, scale === 1 ? branch : mul(branch, scale));
    return relu ? reluOp(sum) : sum;
  }
  const y = allocUnfilled(dtype, shortcut.size); // every value written
  residualForward(shortcut.data, branch.data, scale, relu, y);
  return record(new Tensor(y, shortcut.shape), 'residual', [shortcut, branch], (dy, needs) => {
    // Through the ReLU: dy where the output is > 0 (where its input was), in a new array for the tape alone.
    const dSum = relu ? handOver(maskedBy(y, dy)) : dy;
    const dBranch = needs[1] && scale !== 1 ? handOver(scaled(dSum, scale)) : dSum;
    return [needs[0] ? dSum : null, needs[1] ? dBranch : null];
  });
}

function residualForward(x: TypedArray, branch: TypedArray, scale: number, relu: boolean, y: TypedArray): void {
  if (residualValues(x, branch, scale, relu, y)) return; // WebAssembly SIMD, where it runs
  const round = y instanceof Float32Array ? Math.fround : (v: number): number => v;
  for (let i = 0; i < y.length; i++) y[i] = x[i]! + round(scale * branch[i]!); // stored: the sum rounded
  if (relu) reluInPlace(y);
}

/** dy where y > 0, else 0 (ReLU's gradient), in a new array. */
function maskedBy(y: TypedArray, dy: TypedArray): TypedArray {
  const out = allocUnfilled(dtypeOf(dy), dy.length);
  maskByPositive(dy, y, out);
  return out;
}

/** scale * g, as mul's gradient computes it, in a new array. */
function scaled(g: TypedArray, scale: number): TypedArray {
  const out = allocUnfilled(dtypeOf(g), g.length);
  if (!affineValues(g, out, scale, 0)) for (let i = 0; i < out.length; i++) out[i] = g[i]! * scale;
  return out;
}
