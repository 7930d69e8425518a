/**
 * OpenFace nn4.small2: a small FaceNet Inception network, 96x96 RGB in [0, 1] -> 128-d unit embedding.
 *   stem: conv1 7x7/2 -> maxpool 3/2 -> LRN -> conv2 1x1 -> conv3 3x3 -> LRN -> maxpool 3/2   (192x12x12)
 *   inception 3a 3b 3c (12 -> 6), 4a 4e (6 -> 3), 5a 5b -> avgpool 3 -> dense 736->128 -> L2 normalize
 * Two behaviours share the same weights (see shared/goldens/README.md):
 *   'torch': the canonical OpenFace Torch7 network;
 *   'keras': the Keras-OpenFace port the CSV weights come from (TF-style LRN, strided pools + zero padding).
 */
import { Rng } from '../util/random.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module } from '../nn/module.js';
import { ConvBnAct, Linear } from '../nn/layers.js';
import { Inception, type InceptionSpec, type PoolBranchSpec } from '../nn/inception.js';
import type { LrnOptions } from '../ops/lrn.js';

export type Nn4Variant = 'torch' | 'keras';

/** Tensors recorded during a forward pass, by name (conv1_relu, lrn1, stem, inception_3a, ..., pre_norm). */
export type Taps = Map<string, Tensor>;

type Pool = Omit<PoolBranchSpec, 'proj'>;
const pad = (t: number, b = t): [number, number, number, number] => [t, b, t, b];

/** The pool branches, the only place where the two behaviours differ apart from the LRN. */
const POOLS: Record<Nn4Variant, Record<string, Pool>> = {
  torch: {
    '3a': { type: 'max', kernel: 3, stride: 1, padding: 1 },
    '3b': { type: 'l2', kernel: 3, stride: 1, padAfter: pad(1) },
    '3c': { type: 'max', kernel: 3, stride: 2, padding: 1 },
    '4a': { type: 'l2', kernel: 3, stride: 1, padAfter: pad(1) },
    '4e': { type: 'max', kernel: 3, stride: 2, padding: 1 },
    '5a': { type: 'l2', kernel: 3, stride: 1, padAfter: pad(1) },
    '5b': { type: 'max', kernel: 3, stride: 1, padding: 1 },
  },
  keras: {
    '3a': { type: 'max', kernel: 3, stride: 2, padAfter: pad(3, 4) },
    '3b': { type: 'l2', kernel: 3, stride: 3, padAfter: pad(4) },
    '3c': { type: 'max', kernel: 3, stride: 2, padAfter: pad(0, 1) },
    '4a': { type: 'l2', kernel: 3, stride: 3, padAfter: pad(2) },
    '4e': { type: 'max', kernel: 3, stride: 2, padAfter: pad(0, 1) },
    '5a': { type: 'l2', kernel: 3, stride: 3, padAfter: pad(1) },
    '5b': { type: 'max', kernel: 3, stride: 2, padAfter: pad(1) },
  },
};

const LRN: Record<Nn4Variant, LrnOptions> = {
  torch: { size: 5, alpha: 1e-4, beta: 0.75, k: 1, convention: 'torch' },
  keras: { size: 11, alpha: 1e-4, beta: 0.75, k: 1, convention: 'tf' },
};

function blockSpecs(variant: Nn4Variant): [string, InceptionSpec][] {
  const pool = (name: string, proj?: number): PoolBranchSpec => ({ ...POOLS[variant][name]!, ...(proj ? { proj } : {}) });
  return [
    ['3a', { inChannels: 192, branch3x3: { reduce: 96, out: 128 }, branch5x5: { reduce: 16, out: 32 }, pool: pool('3a', 32), branch1x1: 64 }],
    ['3b', { inChannels: 256, branch3x3: { reduce: 96, out: 128 }, branch5x5: { reduce: 32, out: 64 }, pool: pool('3b', 64), branch1x1: 64 }],
    ['3c', { inChannels: 320, branch3x3: { reduce: 128, out: 256, stride: 2 }, branch5x5: { reduce: 32, out: 64, stride: 2 }, pool: pool('3c') }],
    ['4a', { inChannels: 640, branch3x3: { reduce: 96, out: 192 }, branch5x5: { reduce: 32, out: 64 }, pool: pool('4a', 128), branch1x1: 256 }],
    ['4e', { inChannels: 640, branch3x3: { reduce: 160, out: 256, stride: 2 }, branch5x5: { reduce: 64, out: 128, stride: 2 }, pool: pool('4e') }],
    ['5a', { inChannels: 1024, branch3x3: { reduce: 96, out: 384 }, pool: pool('5a', 96), branch1x1: 256 }],
    ['5b', { inChannels: 736, branch3x3: { reduce: 96, out: 384 }, pool: pool('5b', 96), branch1x1: 256 }],
  ];
}

export interface Nn4Options {
  variant?: Nn4Variant;
  dtype?: DType;
  seed?: number;
}

export class Nn4Small2 extends Module {
  readonly variant: Nn4Variant;
  private readonly conv1: ConvBnAct;
  private readonly conv2: ConvBnAct;
  private readonly conv3: ConvBnAct;
  private readonly blocks: [string, Inception][];
  private readonly dense: Linear;

  constructor(options: Nn4Options = {}) {
    super();
    this.variant = options.variant ?? 'torch';
    const unit = { dtype: options.dtype, rng: new Rng(options.seed ?? 1), eps: 1e-5 };
    this.conv1 = this.child('conv1', new ConvBnAct(3, 64, 7, { ...unit, stride: 2, padding: 3 }));
    this.conv2 = this.child('conv2', new ConvBnAct(64, 64, 1, unit));
    this.conv3 = this.child('conv3', new ConvBnAct(64, 192, 3, { ...unit, padding: 1 }));
    this.blocks = blockSpecs(this.variant).map(([name, spec]) => [name, this.child(`inception_${name}`, new Inception(spec, unit))]);
    this.dense = this.child('dense', new Linear(736, 128, unit));
  }

  /** x: [N, 3, 96, 96] RGB in [0, 1] -> [N, 128] unit vectors. */
  forward(x: Tensor, taps?: Taps): Tensor {
    const tap = (name: string, t: Tensor): Tensor => (taps?.set(name, t), t);
    const lrn = (t: Tensor): Tensor => ops.lrn(t, LRN[this.variant]);
    const pool = (t: Tensor): Tensor => ops.maxPool2d(t, { kernel: 3, stride: 2, padding: 1 });
    let y = tap('conv1_relu', this.conv1.forward(x));
    y = tap('lrn1', lrn(pool(y)));
    y = tap('stem', pool(lrn(this.conv3.forward(this.conv2.forward(y)))));
    for (const [name, block] of this.blocks) y = tap(`inception_${name}`, block.forward(y));
    y = ops.flatten(ops.avgPool2d(y, { kernel: 3, stride: 1 }));
    y = tap('pre_norm', this.dense.forward(y));
    return tap('embedding', ops.l2Normalize(y));
  }
}
