/**
 * matmul: a [M, K] · b [K, N] -> [M, N].
 * dense (fully connected, PyTorch layout): x [N, in], w [out, in], bias [out] -> x·wᵀ + bias, [N, out].
 * Backward of Y = A·B: dA = dY·Bᵀ, dB = Aᵀ·dY.
 */
import { ShapeError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { gemm, mat } from '../backends/cpu/gemm.js';
import { dims2 } from '../tensor/shape.js';
import { alloc, Tensor } from '../tensor/tensor.js';
import { commonDType } from './util.js';
import { addMacs } from '../util/flops.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export function matmul(a: Tensor, b: Tensor): Tensor {
  const dtype = commonDType('matmul', a, b);
  const [M, K] = dims2('matmul', a.shape, 'left operand');
  const [K2, N] = dims2('matmul', b.shape, 'right operand');
  if (K !== K2) throw new ShapeError('matmul', `right operand [${K}, N] for left [${M}, ${K}]`, b.shape);
  addMacs(M * N * K);
  const gpu = gpuFor(a, b);
  if (gpu) {
    const y = gpuOps.gemm(gpu, a, b, null, { M, N, K, transA: false, transB: false });
    return record(y, 'matmul', [a, b], (dy, needs) => [
      needs[0] ? gpuOps.gemmToHost(gpu, dy, b, { M, N: K, K: N, transA: false, transB: true }) : null,
      needs[1] ? gpuOps.gemmToHost(gpu, a, dy, { M: K, N, K: M, transA: true, transB: false }) : null,
    ]);
  }
  const ad = a.data, bd = b.data;
  const y = alloc(dtype, M * N);
  gemm(false, false, M, N, K, mat(ad, 0, K), mat(bd, 0, N), mat(y, 0, N), false);
  return record(new Tensor(y, [M, N]), 'matmul', [a, b], (dy, needs) => {
    let da = null, db = null;
    if (needs[0]) gemm(false, true, M, K, N, mat(dy, 0, N), mat(bd, 0, N), mat((da = alloc(dtype, M * K)), 0, K), false);
    if (needs[1]) gemm(true, false, K, N, M, mat(ad, 0, K), mat(dy, 0, N), mat((db = alloc(dtype, K * N)), 0, N), false);
    return [da, db];
  });
}

export function dense(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  const dtype = commonDType('dense', x, w, bias);
  const [N, IN] = dims2('dense', x.shape, 'input [N, in]');
  const [OUT, IN2] = dims2('dense', w.shape, 'weight [out, in]');
  if (IN !== IN2) throw new ShapeError('dense', `weight [out, ${IN}] for input [${N}, ${IN}]`, w.shape);
  if (bias && (bias.rank !== 1 || bias.size !== OUT)) throw new ShapeError('dense', `bias [${OUT}]`, bias.shape);
  addMacs(N * OUT * IN);
  const inputs = bias ? [x, w, bias] : [x, w];
  const gpu = gpuFor(x, w, bias);
  if (gpu) {
    const y = gpuOps.gemm(gpu, x, w, bias, { M: N, N: OUT, K: IN, transA: false, transB: true });
    return record(y, 'dense', inputs, (dy, needs) => [
      needs[0] ? gpuOps.gemmToHost(gpu, dy, w, { M: N, N: IN, K: OUT, transA: false, transB: false }) : null,
      needs[1] ? gpuOps.gemmToHost(gpu, dy, x, { M: OUT, N: IN, K: N, transA: true, transB: false }) : null,
      needs[2] ? gpuOps.channelSum(gpu, dy, N, OUT, 1) : null, // column sums of dy
    ]);
  }
  const xd = x.data, wd = w.data;
  const y = alloc(dtype, N * OUT);
  gemm(false, true, N, OUT, IN, mat(xd, 0, IN), mat(wd, 0, IN), mat(y, 0, OUT), false);
  if (bias) {
    const bd = bias.data;
    for (let n = 0; n < N; n++) for (let o = 0; o < OUT; o++) y[n * OUT + o]! += bd[o]!;
  }
  return record(new Tensor(y, [N, OUT]), 'dense', inputs, (dy, needs) => {
    let dx = null, dw = null, db = null;
    if (needs[0]) gemm(false, false, N, IN, OUT, mat(dy, 0, OUT), mat(wd, 0, IN), mat((dx = alloc(dtype, N * IN)), 0, IN), false);
    if (needs[1]) gemm(true, false, OUT, IN, N, mat(dy, 0, OUT), mat(xd, 0, IN), mat((dw = alloc(dtype, OUT * IN)), 0, IN), false);
    if (needs[2]) {
      db = alloc(dtype, OUT);
      for (let n = 0; n < N; n++) for (let o = 0; o < OUT; o++) db[o]! += dy[n * OUT + o]!;
    }
    return [dx, dw, db];
  });
}
