/**
 * Local response normalization across channels (AlexNet, GoogLeNet, OpenFace), NCHW:
 *   s_c = k + scale * sum_{|j-c| <= r} x_j²,   y_c = x_c * s_c^(-beta),   r = (size-1)/2
 * Two conventions differ only in `scale`: Torch/PyTorch divide alpha by the window size
 * (scale = alpha/size), TensorFlow's tf.nn.lrn does not (scale = alpha, size = 2*depth_radius+1).
 * Backward: dx_c = dy_c s_c^-beta - 2 beta scale x_c sum_{|j-c| <= r} dy_j x_j s_j^(-beta-1).
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { alloc, Tensor } from '../tensor/tensor.js';
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
  const s = alloc(x.dtype, x.size); // the denominators' bases, kept for backward
  const y = alloc(x.dtype, x.size);
  // Each (n, pixel) is an independent 1-D problem over channels with stride P.
  const windowSum = (values: (i: number) => number, base: number, c: number): number => {
    let acc = 0;
    for (let j = Math.max(0, c - r); j <= Math.min(C - 1, c + r); j++) acc += values(base + j * P);
    return acc;
  };
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < P; p++) {
      const base = n * C * P + p;
      for (let c = 0; c < C; c++) {
        const i = base + c * P;
        s[i] = k + scale * windowSum((t) => xd[t]! * xd[t]!, base, c);
        y[i] = xd[i]! * s[i]! ** -beta;
      }
    }
  }
  return record(new Tensor(y, x.shape), 'lrn', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    const t = alloc(x.dtype, x.size); // dy_j x_j s_j^(-beta-1)
    for (let i = 0; i < t.length; i++) t[i] = dy[i]! * xd[i]! * s[i]! ** (-beta - 1);
    for (let n = 0; n < N; n++) {
      for (let p = 0; p < P; p++) {
        const base = n * C * P + p;
        for (let c = 0; c < C; c++) {
          const i = base + c * P;
          dx[i] = dy[i]! * s[i]! ** -beta - 2 * beta * scale * xd[i]! * windowSum((q) => t[q]!, base, c);
        }
      }
    }
    return [dx];
  });
}
