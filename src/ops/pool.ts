/**
 * Pooling over NCHW: max, average, L2 (the FaceNet paper's sqrt of the window's sum of squares) and global
 * average. Window options follow PyTorch: stride defaults to the kernel, padding may be asymmetric
 * [top, bottom, left, right] or 'same', ceilMode rounds the output size up, countIncludePad counts
 * padded zeros in the average's divisor (true by default, as in PyTorch and Torch7; TF excludes them).
 */
import { ArgumentError } from '../errors.js';
import { needsGrad, record } from '../autograd/tape.js';
import { avgPoolBackward, avgPoolForward, l2PoolBackward, l2PoolForward, maxPoolBackward, maxPoolForward, type PoolGeometry } from '../backends/cpu/pool.js';
import { checkPositiveInts, dims4, pair, resolvePadding, windowOutputSize, type PaddingSpec } from '../tensor/shape.js';
import { alloc, indicesStorage, Tensor } from '../tensor/tensor.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export interface PoolOptions {
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: PaddingSpec;
  ceilMode?: boolean;
}

export function poolGeometry(op: string, xShape: readonly number[], options: PoolOptions): PoolGeometry {
  const [N, C, H, W] = dims4(op, xShape);
  const [KH, KW] = pair(options.kernel, op, 'kernel');
  const [strideH, strideW] = pair(options.stride ?? options.kernel, op, 'stride');
  checkPositiveInts(op, 'kernel and stride', [KH, KW, strideH, strideW]);
  const [padTop, padBottom, padLeft, padRight] = resolvePadding(op, options.padding ?? 0, [H, W], [KH, KW], [strideH, strideW]);
  if (Math.max(padTop, padBottom) >= KH || Math.max(padLeft, padRight) >= KW) {
    throw new ArgumentError(op, `padding [${padTop}, ${padBottom}, ${padLeft}, ${padRight}] must be smaller than the kernel ${KH}x${KW}, or a window could see only padding`);
  }
  const ceil = options.ceilMode ?? false;
  const OH = windowOutputSize(H, KH, strideH, padTop, padBottom, 1, ceil);
  const OW = windowOutputSize(W, KW, strideW, padLeft, padRight, 1, ceil);
  if (OH < 1 || OW < 1) throw new ArgumentError(op, `input ${H}x${W} is smaller than the ${KH}x${KW} window after padding`);
  return { N, C, H, W, KH, KW, OH, OW, strideH, strideW, padTop, padBottom, padLeft, padRight };
}

const outShape = (g: PoolGeometry): number[] => [g.N, g.C, g.OH, g.OW];

/** Pooling on the GPU: the forward stays on the device, the backward gathers per input pixel. */
function gpuPool(name: string, x: Tensor, g: PoolGeometry, mode: number, includePad: boolean): Tensor | null {
  const gpu = gpuFor(x);
  if (!gpu) return null;
  const y = gpuOps.pool2d(gpu, x, g, mode, includePad);
  return record(y, name, [x], (dy) => [gpuOps.pool2dBackward(gpu, dy, x, y, g, mode, includePad)]);
}

export function maxPool2d(x: Tensor, options: PoolOptions): Tensor {
  const g = poolGeometry('maxPool2d', x.shape, options);
  const onGpu = gpuPool('maxPool2d', x, g, gpuOps.POOL_MODE.max, false);
  if (onGpu) return onGpu;
  const { y, argmax } = maxPoolForward(x.data, g, needsGrad(x)); // the argmax only for a backward
  if (!argmax) return new Tensor(y, outShape(g));
  const storage = indicesStorage(argmax);
  return record(new Tensor(y, outShape(g)), 'maxPool2d', [x], (dy) => [maxPoolBackward(dy, argmax, g)], { saved: storage ? [storage] : undefined });
}

export function avgPool2d(x: Tensor, options: PoolOptions & { countIncludePad?: boolean }): Tensor {
  const g = poolGeometry('avgPool2d', x.shape, options);
  const includePad = options.countIncludePad ?? true;
  const onGpu = gpuPool('avgPool2d', x, g, gpuOps.POOL_MODE.avg, includePad);
  if (onGpu) return onGpu;
  const y = avgPoolForward(x.data, g, includePad);
  return record(new Tensor(y, outShape(g)), 'avgPool2d', [x], (dy) => [avgPoolBackward(dy, g, includePad)]);
}

export function l2Pool2d(x: Tensor, options: PoolOptions): Tensor {
  const g = poolGeometry('l2Pool2d', x.shape, options);
  const onGpu = gpuPool('l2Pool2d', x, g, gpuOps.POOL_MODE.l2, false);
  if (onGpu) return onGpu;
  const xd = x.data;
  const y = l2PoolForward(xd, g);
  if (!needsGrad(x)) return new Tensor(y, outShape(g));
  return record(new Tensor(y, outShape(g)), 'l2Pool2d', [x], (dy) => [l2PoolBackward(dy, xd, y, g)]);
}

/** Mean over H and W: [N, C, H, W] -> [N, C, 1, 1]. */
export function globalAvgPool(x: Tensor): Tensor {
  const [N, C, H, W] = dims4('globalAvgPool', x.shape);
  if (gpuFor(x)) return avgPool2d(x, { kernel: [H, W] }); // one H x W window per plane
  const P = H * W, xd = x.data;
  const y = alloc(x.dtype, N * C);
  for (let p = 0; p < N * C; p++) {
    let s = 0;
    for (let i = 0; i < P; i++) s += xd[p * P + i]!;
    y[p] = s / P;
  }
  return record(new Tensor(y, [N, C, 1, 1]), 'globalAvgPool', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let p = 0; p < N * C; p++) dx.fill(dy[p]! / P, p * P, (p + 1) * P);
    return [dx];
  });
}
