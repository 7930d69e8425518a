/**
 * The Inception module with 1x1 reductions (GoogLeNet, FaceNet NN1/NN2, OpenFace nn4.small2):
 * up to four branches computed from the same input and concatenated along channels, in OpenFace's
 * order 3x3, 5x5, pool, 1x1:
 *   3x3:  1x1 conv (reduce) -> 3x3 conv (pad 1, the block's stride)
 *   5x5:  1x1 conv (reduce) -> 5x5 conv (pad 2, the block's stride)
 *   pool: max / L2 / avg pool -> optional 1x1 projection -> optional zero padding
 *   1x1:  1x1 conv
 * Every conv is conv -> batchnorm -> ReLU. Children: 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj, 1x1.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { PaddingSpec } from '../tensor/shape.js';
import * as ops from '../ops/index.js';
import { ConvBnAct, type LayerInit } from './layers.js';
import { Module } from './module.js';

export interface PoolBranchSpec {
  type: 'max' | 'l2' | 'avg';
  kernel: number;
  stride: number;
  padding?: PaddingSpec;
  /** Output channels of the 1x1 projection after the pool; absent: the pooled input passes through. */
  proj?: number;
  /** Zero padding [top, bottom, left, right] applied last, to bring the branch back to the block's size. */
  padAfter?: [number, number, number, number];
}

export interface InceptionSpec {
  inChannels: number;
  branch3x3?: { reduce: number; out: number; stride?: number };
  branch5x5?: { reduce: number; out: number; stride?: number };
  pool: PoolBranchSpec;
  branch1x1?: number;
}

export interface UnitOptions extends LayerInit {
  eps?: number;
}

export class Inception extends Module {
  readonly outChannels: number;
  private readonly branches: ((x: Tensor) => Tensor)[] = [];

  constructor(readonly spec: InceptionSpec, unit: UnitOptions) {
    super();
    const conv = (name: string, inC: number, outC: number, k: number, stride = 1): ConvBnAct =>
      this.child(name, new ConvBnAct(inC, outC, k, { ...unit, stride, padding: (k - 1) / 2 }));
    let out = 0;
    for (const [size, b] of [[3, spec.branch3x3], [5, spec.branch5x5]] as const) {
      if (!b) continue;
      const reduce = conv(`${size}x${size}_reduce`, spec.inChannels, b.reduce, 1);
      const full = conv(`${size}x${size}`, b.reduce, b.out, size, b.stride ?? 1);
      this.branches.push((x) => full.forward(reduce.forward(x)));
      out += b.out;
    }
    const p = spec.pool;
    const proj = p.proj ? conv('pool_proj', spec.inChannels, p.proj, 1) : null;
    this.branches.push((x) => {
      const options = { kernel: p.kernel, stride: p.stride, padding: p.padding ?? 0 };
      let y = p.type === 'max' ? ops.maxPool2d(x, options) : p.type === 'l2' ? ops.l2Pool2d(x, options) : ops.avgPool2d(x, options);
      if (proj) y = proj.forward(y);
      return p.padAfter ? ops.pad2d(y, p.padAfter) : y;
    });
    out += p.proj ?? spec.inChannels;
    if (spec.branch1x1) {
      const one = conv('1x1', spec.inChannels, spec.branch1x1, 1);
      this.branches.push((x) => one.forward(x));
      out += spec.branch1x1;
    }
    this.outChannels = out;
  }

  forward(x: Tensor): Tensor {
    return ops.concat(this.branches.map((b) => b(x)), 1);
  }
}
