/**
 * L2 normalization along an axis (the FaceNet embedding's last step): y = x / max(||x||, eps),
 * PyTorch's F.normalize. Backward where ||x|| > eps: dx = (dy - y <y, dy>) / ||x||; below eps the
 * divisor is the constant eps, so dx = dy / eps.
 */
import { record } from '../autograd/tape.js';
import { normAxis, splitAtAxis } from '../tensor/shape.js';
import { alloc, Tensor } from '../tensor/tensor.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

export function l2Normalize(x: Tensor, options: { axis?: number; eps?: number } = {}): Tensor {
  const axis = normAxis('l2Normalize', options.axis ?? 1, x.rank);
  const eps = options.eps ?? 1e-12;
  const { outer, axisLen, inner } = splitAtAxis(x.shape, axis);
  const gpu = gpuFor(x);
  if (gpu) {
    const out = gpuOps.l2Normalize(gpu, x, axisLen, inner, eps);
    return record(out, 'l2Normalize', [x], (dy) => [gpuOps.l2NormalizeBackward(gpu, dy, x, axisLen, inner, eps)]);
  }
  const xd = x.data;
  const y = alloc(x.dtype, x.size);
  const norms = new Float64Array(outer * inner);
  const at = (o: number, a: number, i: number): number => (o * axisLen + a) * inner + i;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let ss = 0;
      for (let a = 0; a < axisLen; a++) ss += xd[at(o, a, i)]! ** 2;
      const norm = Math.max(Math.sqrt(ss), eps);
      norms[o * inner + i] = norm;
      for (let a = 0; a < axisLen; a++) y[at(o, a, i)] = xd[at(o, a, i)]! / norm;
    }
  }
  return record(new Tensor(y, x.shape), 'l2Normalize', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const norm = norms[o * inner + i]!;
        let dot = 0;
        if (norm > eps) for (let a = 0; a < axisLen; a++) dot += y[at(o, a, i)]! * dy[at(o, a, i)]!;
        for (let a = 0; a < axisLen; a++) dx[at(o, a, i)] = (dy[at(o, a, i)]! - y[at(o, a, i)]! * dot) / norm;
      }
    }
    return [dx];
  });
}
