/**
 * Batch normalization over the channel axis 1 of [N, C] or [N, C, H, W].
 * Training: normalize with the batch mean and biased variance, update the running statistics in place
 * (running = (1-momentum)*running + momentum*batch, with the unbiased variance, as PyTorch), and
 * differentiate through the statistics:
 *   dx = invstd/M * (M*dxhat - sum(dxhat) - xhat * sum(dxhat*xhat)),  dxhat = dy*gamma, M = N*H*W.
 * Eval: normalize with the running statistics; they are constants, so dx = dy*gamma*invstd.
 * inputBias b (the preceding convolution's bias) normalizes x + b without a pass to add it: in training
 * the batch statistics remove any per-channel constant, so only the running mean sees b, and b's gradient
 * is exactly 0; in eval, b shifts the running mean, and its gradient is sum(dx) = gain * sum(dy).
 * foldBatchNorm merges an eval-mode BN into the preceding convolution's weights for inference.
 */
import { ShapeError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { alloc, allocUnfilled, dtypeOf, Tensor, type TypedArray } from '../tensor/tensor.js';
import { maskByPositive, reluInPlace } from '../backends/cpu/relu_mask.js';
import {
  affinePlanes, batchNormBackward, batchNormCoefficients, batchNormForward, batchNormMoments, batchNormNormalization, batchNormSums,
} from '../backends/cpu/wasm_planes.js';
import { commonDType } from './util.js';
import { relu as reluOp } from './activation.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export interface BatchNormOptions {
  gamma?: Tensor | null;
  beta?: Tensor | null;
  runningMean: Tensor;
  runningVar: Tensor;
  training?: boolean;
  momentum?: number;
  eps?: number;
  /**
   * Apply max(0, .) to the output in the same pass (conv -> BN -> ReLU in training): one output array and
   * one backward pass instead of two, with exactly the values and gradients of relu(batchNorm(x)).
   */
  relu?: boolean;
  /** A per-channel constant [C] added to x first (a convolution's bias), without a pass over x: see above. */
  inputBias?: Tensor | null;
}

export function batchNorm(x: Tensor, options: BatchNormOptions): Tensor {
  const { runningMean, runningVar } = options;
  const gamma = options.gamma ?? null, beta = options.beta ?? null, inputBias = options.inputBias ?? null;
  const dtype = commonDType('batchNorm', x, gamma, beta, runningMean, runningVar, inputBias);
  if (x.rank < 2) throw new ShapeError('batchNorm', 'input [N, C] or [N, C, H, W]', x.shape);
  const N = x.shape[0]!, C = x.shape[1]!, P = x.size / (N * C), M = N * P;
  for (const [name, t] of [['gamma', gamma], ['beta', beta], ['runningMean', runningMean], ['runningVar', runningVar], ['inputBias', inputBias]] as const) {
    if (t && (t.rank !== 1 || t.size !== C)) throw new ShapeError('batchNorm', `${name} [${C}]`, t.shape);
  }
  const eps = options.eps ?? 1e-5;
  const training = options.training ?? false;
  const relu = options.relu ?? false;
  const gpu = gpuFor(x, gamma, beta);
  if (gpu) {
    const y = batchNormGpu(gpu, x, options, training, eps);
    return relu ? reluOp(y) : y;
  }
  if (training && M < 2) throw new ShapeError('batchNorm', 'more than one value per channel in training mode (batch 1 of 1x1 maps)', x.shape);
  const xd = x.data;
  const invstd = alloc(dtype, C), gain = alloc(dtype, C), shift = alloc(dtype, C);
  const y = allocUnfilled(dtype, x.size); // every value written (so are the backward's arrays below)
  let mean: TypedArray, variance: TypedArray;
  if (training) {
    // One WebAssembly pass normalizes as it sums (batchNormForward); else the TypeScript loops sum, then
    // scale and shift. The sums are of x minus each channel's first value (see batchNormMoments).
    const first = Float64Array.from({ length: C }, (_, c) => xd[c * P]!);
    const fused = batchNormForward(xd, y, N, C, P, relu, first, gamma?.data ?? new Float32Array(C).fill(1), beta?.data ?? new Float32Array(C), eps);
    const { s1, s2 } = fused ?? shiftedSumsLoop(xd, N, C, P, first);
    const batchMean = new Float64Array(C), batchVariance = new Float64Array(C);
    batchNormMoments(s1, s2, first, M, batchMean, batchVariance);
    [mean, variance] = [batchMean, batchVariance];
    batchNormNormalization(mean, variance, eps, gamma?.data ?? null, beta?.data ?? null, invstd, gain, shift);
    if (!fused) affine(xd, y, N, C, P, gain, shift, relu);
    updateRunning(runningMean.data, runningVar.data, inputBias ? mean.map((m, c) => m + inputBias.data[c]!) : mean, variance, options.momentum ?? 0.1, M);
  } else {
    mean = inputBias ? runningMean.data.map((m, c) => m - inputBias.data[c]!) : runningMean.data; // x + b - mean
    variance = runningVar.data;
    batchNormNormalization(mean, variance, eps, gamma?.data ?? null, beta?.data ?? null, invstd, gain, shift);
    affine(xd, y, N, C, P, gain, shift, relu);
  }
  // y = x*gain + shift per channel; x̂ = (x - mean)*invstd is recomputed from x in backward rather than
  // stored (one array and one write pass less, and x is kept for backward anyway).
  const params = { gamma, beta, inputBias };
  const name = `${training ? 'batchNormTrain' : 'batchNormEval'}${relu ? 'Relu' : ''}`;
  return record(new Tensor(y, x.shape), name, [x, ...given(params, (p) => params[p]!)], (dyOut, needs) => {
    const dx = needs[0] ? allocUnfilled(dtype, x.size) : null; // every value written
    const { sumDy, sumDyXc } = backward(dyOut, xd, relu ? y : null, dx, N, C, P, mean, gain, invstd, shift, training);
    const sumDyXhat = alloc(dtype, C), betaGrad = alloc(dtype, C); // gradients in the parameters' dtype
    for (let c = 0; c < C; c++) sumDyXhat[c] = sumDyXc[c]! * invstd[c]!;
    betaGrad.set(sumDy);
    return [dx, ...given(params, (p) => (p === 'gamma' ? sumDyXhat : p === 'beta' ? betaGrad : inputBiasGrad(dtype, training, gain, sumDy)))];
  });
}

/**
 * Batchnorm's backward (and channelAffine's, as eval mode with mean 0): per channel sum(dy) and
 * sum(dy * (x - mean)), and dx when given, dy first masked where reluOutput (the forward output
 * max(0, x*gain + shift)) is not > 0. One fused pass in WebAssembly (which recomputes the forward output's
 * sign from x); otherwise the sums, then dx from them (the masked dy is made in dx's array).
 */
function backward(
  dyOut: TypedArray, x: TypedArray, reluOutput: TypedArray | null, dx: TypedArray | null, N: number, C: number, P: number,
  mean: TypedArray, gain: TypedArray, invstd: TypedArray, shift: TypedArray, training: boolean,
): { sumDy: Float64Array; sumDyXc: Float64Array } {
  const fused = dx && batchNormBackward(dyOut, x, reluOutput !== null, dx, N, C, P, mean, gain, invstd, shift, training);
  if (fused) return fused;
  // backwardSums runs in WebAssembly when only the sums are asked for (no dx); dx falls to TypeScript only
  // where the fused pass does not run.
  const dy = reluOutput ? (dx ?? allocUnfilled(dtypeOf(dyOut), dyOut.length)) : dyOut;
  const sums = backwardSums(dyOut, x, N, C, P, mean, reluOutput, dy);
  if (dx) batchNormInputGradient(dy, x, mean, invstd, gain, sums.sumDy, sums.sumDyXc, training, N, C, P, dx);
  return sums;
}

type OptionalInputs = { gamma: Tensor | null; beta: Tensor | null; inputBias: Tensor | null };

/** f of each of batchNorm's optional inputs that is given, in the order it records them (after x). */
function given<T>(params: OptionalInputs, f: (name: keyof OptionalInputs) => T): T[] {
  return (['gamma', 'beta', 'inputBias'] as const).filter((p) => params[p]).map(f);
}

/** The gradient of batchNorm's inputBias: 0 with batch statistics, sum(dx) = gain * sum(dy) with running ones. */
function inputBiasGrad(dtype: Tensor['dtype'], training: boolean, gain: TypedArray, sumDy: ArrayLike<number>): TypedArray {
  const g = alloc(dtype, gain.length);
  if (!training) for (let c = 0; c < g.length; c++) g[c] = gain[c]! * sumDy[c]!;
  return g;
}

/**
 * y = x * scale[c] + shift[c] over the channel axis 1 (then ReLU when asked): a batchnorm folded into
 * constants (dlib's ResNet), so it runs eval-mode batchnorm's passes with scale as the gain. Forward one
 * pass; backward one for the sums (dshift = sum(dy), dscale = sum(dy * x), through the ReLU's mask) and
 * one for dx = dy * scale. (As mul, add and relu it took four passes forward and six backward.)
 */
export function channelAffine(x: Tensor, scale: Tensor, shift: Tensor, options: { relu?: boolean } = {}): Tensor {
  const dtype = commonDType('channelAffine', x, scale, shift);
  if (x.rank < 2) throw new ShapeError('channelAffine', 'input [N, C] or [N, C, H, W]', x.shape);
  const N = x.shape[0]!, C = x.shape[1]!, P = x.size / (N * C), relu = options.relu ?? false;
  for (const [name, t] of [['scale', scale], ['shift', shift]] as const) {
    if (t.rank !== 1 || t.size !== C) throw new ShapeError('channelAffine', `${name} [${C}]`, t.shape);
  }
  const zeros = new Float64Array(C);
  const gpu = gpuFor(x, scale, shift);
  if (gpu) {
    const gain = Float32Array.from(scale.data);
    const y = record(gpuOps.channelAffine(gpu, x, gain, Float32Array.from(shift.data), false), 'channelAffine', [x, scale, shift], (dy, needs) => {
      const { dx, sumDy, sumDyXhat } = gpuOps.batchNormBackward(gpu, dy, x, new Float32Array(C), new Float32Array(C).fill(1), gain, false, needs[0]!);
      return [dx, sumDyXhat, sumDy];
    });
    return relu ? reluOp(y) : y;
  }
  // The forward's constants, kept: backward's dx = gain*dy, and its ReLU mask recomputed from x, must use them.
  const xd = x.data, gain = scale.data.slice(), bias = shift.data.slice(), y = allocUnfilled(dtype, x.size);
  affine(xd, y, N, C, P, gain, bias, relu);
  return record(new Tensor(y, x.shape), relu ? 'channelAffineRelu' : 'channelAffine', [x, scale, shift], (dyOut, needs) => {
    const dx = needs[0] ? allocUnfilled(dtype, x.size) : null;
    const { sumDy, sumDyXc } = backward(dyOut, xd, relu ? y : null, dx, N, C, P, zeros, gain, zeros, bias, false); // eval mode: dx = gain * dy
    const inDtype = (sums: Float64Array): TypedArray => { const g = alloc(dtype, C); g.set(sums); return g; };
    return [dx, inDtype(sumDyXc), inDtype(sumDy)];
  });
}

/** y = x * gain[c] + shift[c] per channel, then ReLU when asked. */
function affine(x: TypedArray, y: TypedArray, N: number, C: number, P: number, gain: TypedArray, shift: TypedArray, relu: boolean): void {
  if (affinePlanes(x, y, N, C, P, gain, shift, relu)) return;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const k = gain[c]!, b = shift[c]!;
      for (let i = (n * C + c) * P, end = i + P; i < end; i++) y[i] = x[i]! * k + b;
    }
  }
  if (relu) reluInPlace(y);
}

/**
 * Per channel, sum(dy) and sum(dy * (x - mean)) in float64. With reluOutput, dy is first masked where the
 * forward output was not > 0, into `masked`.
 */
function backwardSums(
  dy: TypedArray, x: TypedArray, N: number, C: number, P: number, mean: TypedArray, reluOutput: TypedArray | null, masked: TypedArray,
): { sumDy: Float64Array; sumDyXc: Float64Array } {
  const viaWasm = batchNormSums(dy, x, N, C, P, mean, reluOutput, masked);
  if (viaWasm) return viaWasm;
  if (reluOutput) {
    maskByPositive(dy, reluOutput, masked);
    dy = masked;
  }
  const sumDy = new Float64Array(C), sumDyXc = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const m = mean[c]!;
      let a = 0, b = 0;
      for (let i = (n * C + c) * P, end = i + P; i < end; i++) { a += dy[i]!; b += dy[i]! * (x[i]! - m); }
      sumDy[c]! += a;
      sumDyXc[c]! += b;
    }
  }
  return { sumDy, sumDyXc };
}

/**
 * The TypeScript path (float64, or no WebAssembly SIMD: float32 takes the fused pass otherwise):
 * dx = gain/M * (M*dy - sum(dy) - x̂*sum(dy*x̂)) in training (the statistics depend on x), gain*dy in eval.
 * In training that is a[c]*dy - b[c]*(x - mean) - d[c] with a = gain, b = gain*invstd*sum(dy*x̂)/M,
 * d = gain*sum(dy)/M (batchNormCoefficients). dx may be dy's array (each element is read before it is written).
 */
function batchNormInputGradient(
  dy: TypedArray, x: TypedArray, mean: TypedArray, invstd: TypedArray, gain: TypedArray,
  sumDy: Float64Array, sumDyXc: Float64Array, training: boolean, N: number, C: number, P: number, dx: TypedArray,
): void {
  const zeros = new Float64Array(C), inGainDtype = (): TypedArray => alloc(dtypeOf(gain), C);
  const [b, d] = training ? [inGainDtype(), inGainDtype()] : [zeros, zeros];
  if (training) batchNormCoefficients(gain, invstd, sumDy, sumDyXc, N * P, inGainDtype(), b, d);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const k = gain[c]!, m = mean[c]!, bc = b[c]!, dc = d[c]!;
      const i0 = (n * C + c) * P, end = i0 + P;
      if (!training) for (let i = i0; i < end; i++) dx[i] = k * dy[i]!;
      else for (let i = i0; i < end; i++) dx[i] = k * dy[i]! - bc * (x[i]! - m) - dc;
    }
  }
}

/** The same on the GPU: statistics reduced on the device (read back: C values), y = x * scale + shift there. */
function batchNormGpu(gpu: NonNullable<ReturnType<typeof gpuFor>>, x: Tensor, options: BatchNormOptions, training: boolean, eps: number): Tensor {
  const { runningMean, runningVar } = options;
  const gamma = options.gamma ?? null, beta = options.beta ?? null, inputBias = options.inputBias ?? null;
  const M = x.size / x.shape[1]!;
  if (training && M < 2) throw new ShapeError('batchNorm', 'more than one value per channel in training mode (batch 1 of 1x1 maps)', x.shape);
  const b = (c: number): number => (inputBias ? inputBias.data[c]! : 0);
  const stats = training ? gpuOps.channelMoments(gpu, x) : { mean: Float32Array.from(runningMean.data, (m, c) => m - b(c)), variance: Float32Array.from(runningVar.data) };
  if (training) updateRunning(runningMean.data, runningVar.data, stats.mean.map((m, c) => m + b(c)), stats.variance, options.momentum ?? 0.1, M);
  const invstd = stats.variance.map((v) => 1 / Math.sqrt(v + eps));
  const gain = invstd.map((s, c) => (gamma ? gamma.data[c]! : 1) * s);
  const shift = gain.map((k, c) => (beta ? beta.data[c]! : 0) - stats.mean[c]! * k);
  const y = gpuOps.channelAffine(gpu, x, gain, shift, false);
  const params = { gamma, beta, inputBias };
  return record(y, training ? 'batchNormTrain' : 'batchNormEval', [x, ...given(params, (p) => params[p]!)], (dy, needs) => {
    const { dx, sumDy, sumDyXhat } = gpuOps.batchNormBackward(gpu, dy, x, stats.mean, invstd, gain, training, needs[0]!);
    return [dx, ...given(params, (p) => (p === 'gamma' ? sumDyXhat : p === 'beta' ? sumDy : inputBiasGrad(x.dtype, training, gain, sumDy)))];
  });
}

/** Per channel, float64 sums of x - shift[c] and of its square (channel planes are contiguous runs of P). */
function shiftedSumsLoop(x: TypedArray, N: number, C: number, P: number, shift: Float64Array): { s1: Float64Array; s2: Float64Array } {
  const s1 = new Float64Array(C), s2 = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const sh = shift[c]!;
      let a = 0, b = 0;
      for (let i = (n * C + c) * P, end = i + P; i < end; i++) { const d = x[i]! - sh; a += d; b += d * d; }
      s1[c]! += a;
      s2[c]! += b;
    }
  }
  return { s1, s2 };
}

function updateRunning(rm: TypedArray, rv: TypedArray, mean: TypedArray, variance: TypedArray, momentum: number, M: number): void {
  for (let c = 0; c < rm.length; c++) {
    rm[c] = (1 - momentum) * rm[c]! + momentum * mean[c]!;
    rv[c] = (1 - momentum) * rv[c]! + momentum * variance[c]! * (M / (M - 1));
  }
}

export interface FoldableBatchNorm {
  gamma: Tensor | null;
  beta: Tensor | null;
  runningMean: Tensor;
  runningVar: Tensor;
  eps: number;
}

/**
 * Folds eval-mode BN into the convolution before it: with s = gamma/sqrt(var+eps),
 * W' = W * s (per output channel) and b' = (b - mean) * s + beta. Returns new, non-differentiable tensors.
 */
export function foldBatchNorm(weight: Tensor, bias: Tensor | null, bn: FoldableBatchNorm): { weight: Tensor; bias: Tensor } {
  const O = weight.shape[0]!;
  if (bn.runningMean.size !== O) throw new ShapeError('foldBatchNorm', `batchnorm statistics of ${O} channels (the conv's outputs)`, bn.runningMean.shape);
  const perOut = weight.size / O;
  const w = weight.data.slice(), b = alloc(weight.dtype, O);
  for (let o = 0; o < O; o++) {
    const s = (bn.gamma ? bn.gamma.data[o]! : 1) / Math.sqrt(bn.runningVar.data[o]! + bn.eps);
    for (let k = 0; k < perOut; k++) w[o * perOut + k]! *= s;
    b[o] = ((bias ? bias.data[o]! : 0) - bn.runningMean.data[o]!) * s + (bn.beta ? bn.beta.data[o]! : 0);
  }
  return { weight: new Tensor(w, weight.shape), bias: new Tensor(b, [O]) };
}
