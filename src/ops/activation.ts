/**
 * Activations: relu, relu6, sigmoid, tanh, and prelu with a learned slope per channel
 * (x [N, C, ...], alpha [C]; channel axis 1 as in PyTorch).
 */
import { ShapeError } from '../errors.js';
import { handOver, record } from '../autograd/tape.js';
import { alloc, allocUnfilled, Tensor } from '../tensor/tensor.js';
import { unary } from './elementwise.js';
import { maskByPositive, preluBackward, preluForward, reluInPlace } from '../backends/cpu/relu_mask.js';
import { leakyValues, reluValues, wasmPlanesAvailable } from '../backends/cpu/wasm_planes.js';
import { commonDType } from './util.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

/** The activation on the GPU when it is active (null otherwise): f and f' are one kernel each. */
function onGpu(name: gpuOps.UnaryName, x: Tensor, alpha = 0): Tensor | null {
  const gpu = gpuFor(x);
  if (!gpu) return null;
  const y = gpuOps.unary(gpu, name, x, alpha);
  return record(y, name, [x], (dy) => [gpuOps.unaryBackward(gpu, name, dy, x, y, alpha)]);
}

/** max(x, 0); the gradient at exactly 0 is taken as 0, as in PyTorch. Branch-free (relu_mask.ts): it runs after every conv. */
export function relu(x: Tensor): Tensor {
  const viaGpu = onGpu('relu', x);
  if (viaGpu) return viaGpu;
  const xd = x.data;
  const y = allocUnfilled(x.dtype, x.size); // every value written, as is dx's
  if (!reluValues(xd, y)) { // WebAssembly SIMD straight from x into y, where it runs
    y.set(xd);
    reluInPlace(y);
  }
  return record(new Tensor(y, x.shape), 'relu', [x], (dy) => {
    const dx = allocUnfilled(x.dtype, x.size);
    maskByPositive(dy, xd, dx);
    return [handOver(dx)]; // new, for the tape alone: in a residual block, the sum's dy that the block's convolutions add onto
  });
}
export const relu6 = (x: Tensor): Tensor => onGpu('relu6', x) ?? unary('relu6', x, (v) => (v > 0 ? (v < 6 ? v : 6) : 0), (v) => (v > 0 && v < 6 ? 1 : 0));
export const sigmoid = (x: Tensor): Tensor => onGpu('sigmoid', x) ?? unary('sigmoid', x, (v) => 1 / (1 + Math.exp(-v)), (_v, y) => y * (1 - y));
export const tanh = (x: Tensor): Tensor => onGpu('tanh', x) ?? unary('tanh', x, Math.tanh, (_v, y) => 1 - y * y);

/** PReLU: x for x > 0, alpha[c] * x otherwise. */
export function prelu(x: Tensor, alpha: Tensor): Tensor {
  const dtype = commonDType('prelu', x, alpha);
  if (x.rank < 2) throw new ShapeError('prelu', 'input [N, C, ...]', x.shape);
  const C = x.shape[1]!;
  if (alpha.rank !== 1 || alpha.size !== C) throw new ShapeError('prelu', `alpha [${C}] (one slope per channel)`, alpha.shape);
  const gpu = gpuFor(x, alpha);
  if (gpu) {
    const out = gpuOps.prelu(gpu, x, alpha);
    return record(out, 'prelu', [x, alpha], (dy, needs) => gpuOps.preluBackward(gpu, dy, x, alpha, needs));
  }
  const N = x.shape[0]!, P = x.size / (N * C);
  const xd = x.data, ad = alpha.data;
  const y = allocUnfilled(dtype, x.size); // every value written
  preluForward(xd, ad, N, C, P, y);
  return record(new Tensor(y, x.shape), 'prelu', [x, alpha], (dy, needs) => {
    const dx = needs[0] ? alloc(dtype, x.size) : null;
    const da = needs[1] ? alloc(dtype, C) : null;
    preluBackward(dy, xd, ad, N, C, P, dx, da);
    return [dx, da];
  });
}

/** Leaky ReLU: x for x > 0, alpha * x otherwise (tiny face detector: alpha 0.1). */
export function leakyRelu(x: Tensor, alpha = 0.01): Tensor {
  const viaGpu = onGpu('leakyRelu', x, alpha);
  if (viaGpu) return viaGpu;
  const xd = x.data;
  if (!(xd instanceof Float32Array && wasmPlanesAvailable())) return unary('leakyRelu', x, (v) => (v > 0 ? v : alpha * v), (v) => (v > 0 ? 1 : alpha));
  const y = allocUnfilled(x.dtype, x.size); // every value written, as is dx's
  leakyValues(xd, alpha, y);
  return record(new Tensor(y, x.shape), 'leakyRelu', [x], (dy) => {
    const dx = allocUnfilled(x.dtype, x.size);
    if (!leakyValues(xd, alpha, dx, dy)) for (let i = 0; i < dx.length; i++) dx[i] = xd[i]! > 0 ? dy[i]! : alpha * dy[i]!;
    return [dx];
  });
}
