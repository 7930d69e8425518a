/**
 * Local response normalization across channels (AlexNet, GoogLeNet, OpenFace), NCHW:
 *   s_c = k + scale * sum_{|j-c| <= r} x_j²,   y_c = x_c * s_c^(-beta),   r = (size-1)/2
 * Two conventions differ only in `scale`: Torch/PyTorch divide alpha by the window size
 * (scale = alpha/size), TensorFlow's tf.nn.lrn does not (scale = alpha, size = 2*depth_radius+1).
 * Backward: dx_c = dy_c s_c^-beta - 2 beta scale x_c sum_{|j-c| <= r} dy_j x_j s_j^(-beta-1).
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { needsGrad, record } from '../autograd/tape.js';
import { lrnGradImages, lrnImages } from '../backends/cpu/wasm_lrn.js';
import { alloc, allocUnfilled, dtypeOf, Tensor, type TypedArray } from '../tensor/tensor.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export interface LrnOptions {
  /** Window length across channels (odd). */
  size: number;
  alpha: number;
  beta: number;
  k?: number;
  /** 'torch': scale = alpha/size (default); 'tf': scale = alpha. */
  convention?: 'torch' | 'tf';
}

export function lrn(x: Tensor, options: LrnOptions): Tensor {
  if (x.rank !== 4) throw new ShapeError('lrn', 'input of rank 4 [N, C, H, W]', x.shape);
  const { size, alpha, beta } = options;
  const k = options.k ?? 1;
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) throw new ArgumentError('lrn', `size must be a positive odd integer, got ${size}`);
  const scale = (options.convention ?? 'torch') === 'torch' ? alpha / size : alpha;
  const [N, C] = [x.shape[0]!, x.shape[1]!];
  const P = x.shape[2]! * x.shape[3]!;
  const r = (size - 1) / 2;
  const gpu = gpuFor(x);
  if (gpu) {
    const out = gpuOps.lrn(gpu, x, r, k, scale, beta);
    return record(out, 'lrn', [x], (dy) => [gpuOps.lrnBackward(gpu, dy, x, r, k, scale, beta)]);
  }
  const xd = x.data;
  const y = allocUnfilled(x.dtype, x.size); // every value written, as are s, sPow and dx
  // The denominators' bases s and s^-beta are kept for backward; without one, nothing needs them.
  const s = needsGrad(x) ? allocUnfilled(x.dtype, x.size) : null, sPow = s && allocUnfilled(x.dtype, x.size);
  if (!(beta === 0.75 && lrnImages(xd, y, s, sPow, N, C, P, r, k, scale))) normalize(xd, y, s, sPow, N, C, P, r, k, scale, beta);
  if (!s || !sPow) return new Tensor(y, x.shape);
  return record(new Tensor(y, x.shape), 'lrn', [x], (dy) => {
    const dx = allocUnfilled(x.dtype, x.size);
    if (lrnGradImages(dy, xd, s, sPow, dx, N, C, P, r, 2 * beta * scale)) return [dx];
    const t = alloc(x.dtype, x.size); // dy_j x_j s_j^(-beta-1)
    for (let i = 0; i < t.length; i++) t[i] = (dy[i]! * xd[i]! * sPow[i]!) / s[i]!;
    const windows = alloc(x.dtype, x.size);
    windowSums(t, windows, N, C, P, r);
    for (let i = 0; i < dx.length; i++) dx[i] = dy[i]! * sPow[i]! - 2 * beta * scale * xd[i]! * windows[i]!;
    return [dx];
  }, { saved: [s, sPow] });
}

/**
 * y = x * s^-beta with s = k + scale * (window sums of x²), into s and sPow when given (the same
 * values as lrnImages, which runs this in WebAssembly for beta = 0.75).
 */
function normalize(x: TypedArray, y: TypedArray, s: TypedArray | null, sPow: TypedArray | null, N: number, C: number, P: number, r: number, k: number, scale: number, beta: number): void {
  const dtype = dtypeOf(x), squares = alloc(dtype, x.length), sums = s ?? alloc(dtype, x.length), pows = sPow ?? alloc(dtype, x.length);
  for (let i = 0; i < x.length; i++) squares[i] = x[i]! * x[i]!;
  windowSums(squares, sums, N, C, P, r);
  for (let i = 0; i < x.length; i++) {
    sums[i] = k + scale * sums[i]!;
    pows[i] = negPow(sums[i]!, beta);
    y[i] = x[i]! * pows[i]!;
  }
}

/**
 * out[n, c, p] = sum of v[n, j, p] over channels |j - c| <= r. Channel planes are contiguous, so the sum
 * runs plane by plane over whole rows of pixels instead of striding across channels pixel by pixel.
 */
function windowSums(v: TypedArray, out: TypedArray, N: number, C: number, P: number, r: number): void {
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const o = (n * C + c) * P;
      out.fill(0, o, o + P);
      for (let j = Math.max(0, c - r); j <= Math.min(C - 1, c + r); j++) {
        const from = (n * C + j) * P;
        for (let p = 0; p < P; p++) out[o + p]! += v[from + p]!;
      }
    }
  }
}

/** s^(-beta), with the common beta = 0.75 as two square roots (several times faster than Math.pow). */
function negPow(s: number, beta: number): number {
  return beta === 0.75 ? 1 / Math.sqrt(s * Math.sqrt(s)) : s ** -beta;
}
