/**
 * Ops that move values without arithmetic: reshape / flatten (free: same buffer order), zero padding of
 * the spatial dims, concatenation and slicing along any axis (channels by default for concat).
 * Each backward moves the gradient back the same way (pad <-> crop, concat <-> split).
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { dims4, formatShape, normAxis, resolvePadding, sizeOf, splitAtAxis, type Shape } from '../tensor/shape.js';
import { alloc, allocUnfilled, Tensor } from '../tensor/tensor.js';
import { commonDType } from './util.js';
import { gpuFor } from '../backends/backend.js';
import * as gpuOps from '../backends/gpu/ops.js';

/** Same elements in a new shape; one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const inferAt = shape.indexOf(-1);
  const known = sizeOf(shape.filter((d) => d !== -1));
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (shape.filter((d) => d === -1).length > 1 || sizeOf(resolved) !== x.size || (inferAt >= 0 && !Number.isInteger(resolved[inferAt]))) {
    throw new ShapeError('reshape', `a shape with ${x.size} elements like ${formatShape(x.shape)}`, shape);
  }
  const onDevice = gpuFor(x) ? x.device : null;
  if (onDevice) onDevice.retain(); // the same device values under a new shape
  return record(new Tensor(onDevice ?? x.data.slice(), resolved), 'reshape', [x], (dy) => [dy]);
}

/** [N, ...] -> [N, prod(...)]. */
export function flatten(x: Tensor): Tensor {
  if (x.rank < 1) throw new ShapeError('flatten', 'a tensor of rank >= 1', x.shape);
  return reshape(x, [x.shape[0]!, x.size / Math.max(x.shape[0]!, 1)]);
}

/** Zero padding of H and W of an NCHW tensor: a number, [h, w] or [top, bottom, left, right]. */
export function pad2d(x: Tensor, padding: number | [number, number] | [number, number, number, number]): Tensor {
  const [N, C, H, W] = dims4('pad2d', x.shape);
  const [top, bottom, left, right] = resolvePadding('pad2d', padding, [H, W], [1, 1], [1, 1]);
  const OH = H + top + bottom, OW = W + left + right;
  const gpu = gpuFor(x);
  if (gpu) {
    const y = new Tensor(gpuOps.window(gpu, x, x.shape, [N, C, OH, OW], [0, 0, -top, -left]), [N, C, OH, OW]);
    return record(y, 'pad2d', [x], (dy) => [gpuOps.windowToHost(gpu, dy, [N, C, OH, OW], x.shape, [0, 0, top, left])]);
  }
  const xd = x.data;
  const y = alloc(x.dtype, N * C * OH * OW);
  const rowPairs = (fn: (src: number, dst: number) => void): void => {
    for (let plane = 0; plane < N * C; plane++) for (let h = 0; h < H; h++) fn((plane * H + h) * W, (plane * OH + h + top) * OW + left);
  };
  rowPairs((src, dst) => y.set(xd.subarray(src, src + W), dst));
  return record(new Tensor(y, [N, C, OH, OW]), 'pad2d', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    rowPairs((src, dst) => dx.set(dy.subarray(dst, dst + W), src));
    return [dx];
  });
}

/** Concatenation along `axis` (default 1, channels). All other dimensions must match. */
export function concat(tensors: readonly Tensor[], axis = 1): Tensor {
  const first = tensors[0];
  if (!first) throw new ArgumentError('concat', 'needs at least one tensor');
  const dtype = commonDType('concat', ...tensors);
  const ax = normAxis('concat', axis, first.rank);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ShapeError('concat', `a shape matching ${formatShape(first.shape)} except along axis ${ax}`, t.shape);
    }
  }
  const lens = tensors.map((t) => t.shape[ax]!);
  const total = lens.reduce((a, b) => a + b, 0);
  const outShape = first.shape.map((d, i) => (i === ax ? total : d));
  const { outer, inner } = splitAtAxis(outShape, ax);
  const gpu = gpuFor(...tensors);
  if (gpu && tensors.length > 1) {
    const y = gpuOps.concat(gpu, tensors, outer, inner, lens, outShape);
    return record(y, 'concat', tensors, (dy, needs) => {
      let start = 0;
      return tensors.map((t, i) => {
        const offset = start;
        start += lens[i]!;
        // Tensor i's block of dy: [outer, lens[i], inner] at `offset` along the axis.
        return needs[i] ? gpuOps.windowToHost(gpu, dy, [1, outer, total, inner], [1, outer, lens[i]!, inner], [0, 0, offset, 0]) : null;
      });
    });
  }
  const y = allocUnfilled(dtype, sizeOf(outShape)); // the blocks cover it, as they do each gradient
  // Block b of tensor t, of length lens[t]*inner, sits at (o*total + start_t)*inner in the output.
  const blocks = (fn: (t: number, src: number, dst: number, len: number) => void): void => {
    let start = 0;
    lens.forEach((len, t) => {
      for (let o = 0; o < outer; o++) fn(t, o * len * inner, (o * total + start) * inner, len * inner);
      start += len;
    });
  };
  blocks((t, src, dst, len) => y.set(tensors[t]!.data.subarray(src, src + len), dst));
  return record(new Tensor(y, outShape), 'concat', tensors, (dy, needs) => {
    const grads = tensors.map((t, i) => (needs[i] ? allocUnfilled(dtype, t.size) : null));
    blocks((t, src, dst, len) => grads[t]?.set(dy.subarray(dst, dst + len), src));
    return grads;
  });
}

/** The block starting at `begin` with extent `size` (-1: to the end) in every dimension. */
export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  if (begin.length !== x.rank || size.length !== x.rank) throw new ArgumentError('slice', `begin and size need ${x.rank} entries for ${formatShape(x.shape)}`);
  const extent = size.map((s, i) => (s === -1 ? x.shape[i]! - begin[i]! : s));
  extent.forEach((e, i) => {
    if (!Number.isInteger(begin[i]) || begin[i]! < 0 || e < 0 || begin[i]! + e > x.shape[i]!) {
      throw new ShapeError('slice', `begin+size within ${formatShape(x.shape)}`, x.shape, `dimension ${i}: begin ${begin[i]}, size ${e}`);
    }
  });
  const gpu = x.rank <= 4 ? gpuFor(x) : null;
  if (gpu) {
    const y = new Tensor(gpuOps.window(gpu, x, x.shape, extent, begin), extent);
    return record(y, 'slice', [x], (dy) => [gpuOps.windowToHost(gpu, dy, extent, x.shape, begin.map((b) => -b))]);
  }
  // Copy row by row along the last dimension.
  const rank = x.rank, last = rank - 1;
  const inStrides = x.shape.map((_, i) => sizeOf(x.shape.slice(i + 1)));
  const rows = sizeOf(extent.slice(0, last));
  const rowLen = extent[last] ?? 1;
  const rowStarts = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let rem = r, off = 0;
    for (let d = last - 1; d >= 0; d--) {
      const idx = rem % extent[d]!;
      rem = Math.floor(rem / extent[d]!);
      off += (idx + begin[d]!) * inStrides[d]!;
    }
    rowStarts[r] = off + (rank > 0 ? begin[last]! : 0);
  }
  const xd = x.data;
  const y = alloc(x.dtype, sizeOf(extent));
  for (let r = 0; r < rows; r++) y.set(xd.subarray(rowStarts[r]!, rowStarts[r]! + rowLen), r * rowLen);
  return record(new Tensor(y, extent), 'slice', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let r = 0; r < rows; r++) dx.set(dy.subarray(r * rowLen, (r + 1) * rowLen), rowStarts[r]!);
    return [dx];
  });
}

/** Permutes dimensions: output dimension i is input dimension perm[i] (e.g. NCHW -> NHWC is [0, 2, 3, 1]). */
export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new ArgumentError('transpose', `perm [${perm.join(', ')}] is not a permutation of 0..${x.rank - 1}`);
  }
  const outShape = perm.map((p) => x.shape[p]!);
  const inStrides = x.shape.map((_, i) => sizeOf(x.shape.slice(i + 1)));
  // For each output element (row-major), the input index it reads.
  const gather = new Int32Array(x.size);
  const counter = new Array<number>(x.rank).fill(0);
  let src = 0;
  for (let k = 0; k < x.size; k++) {
    gather[k] = src;
    for (let d = x.rank - 1; d >= 0; d--) {
      counter[d]!++;
      src += inStrides[perm[d]!]!;
      if (counter[d]! < outShape[d]!) break;
      src -= inStrides[perm[d]!]! * outShape[d]!;
      counter[d] = 0;
    }
  }
  const xd = x.data;
  const y = alloc(x.dtype, x.size);
  for (let k = 0; k < y.length; k++) y[k] = xd[gather[k]!]!;
  return record(new Tensor(y, outShape), 'transpose', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let k = 0; k < dy.length; k++) dx[gather[k]!] = dy[k]!;
    return [dx];
  });
}

/** Elements of x at flat (row-major) indices, as a 1-D tensor; the gradient scatters back (adding at repeats). */
export function gather(x: Tensor, indices: ArrayLike<number>): Tensor {
  const idx = Int32Array.from(indices);
  for (const i of idx) if (i < 0 || i >= x.size) throw new ArgumentError('gather', `index ${i} is out of range for ${x.size} elements`);
  const xd = x.data;
  const y = alloc(x.dtype, idx.length);
  for (let k = 0; k < idx.length; k++) y[k] = xd[idx[k]!]!;
  return record(new Tensor(y, [idx.length]), 'gather', [x], (dy) => {
    const dx = alloc(x.dtype, x.size);
    for (let k = 0; k < idx.length; k++) dx[idx[k]!]! += dy[k]!;
    return [dx];
  });
}
