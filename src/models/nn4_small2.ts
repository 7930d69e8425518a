/**
 * OpenFace nn4.small2: a small FaceNet Inception network, 96x96 RGB in [0, 1] -> 128-d unit embedding.
 * Stem to 192x12x12, inception 3a 3b 3c (12 -> 6), 4a 4e (6 -> 3), 5a 5b, avgpool 3, dense 736 -> 128.
 * Two behaviours share the same weights (see shared/goldens/README.md):
 *   'torch': the canonical OpenFace Torch7 network;
 *   'keras': the Keras-OpenFace port the CSV weights come from (TF-style LRN, strided pools + zero padding).
 */
import type { ModelInit } from '../nn/layers.js';
import type { InceptionSpec, PoolBranchSpec } from '../nn/inception.js';
import type { LrnOptions } from '../ops/lrn.js';
import { InceptionNet } from './inception_net.js';

export type { Taps } from './inception_net.js';
export type Nn4Variant = 'torch' | 'keras';

type Pool = Omit<PoolBranchSpec, 'proj'>;
const pad = (t: number, b = t): [number, number, number, number] => [t, b, t, b];

/** The pool branches: with the LRN, the only place where the two behaviours differ. */
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

function blocks(variant: Nn4Variant): [string, InceptionSpec][] {
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

export class Nn4Small2 extends InceptionNet {
  readonly variant: Nn4Variant;
  constructor(options: ModelInit & { variant?: Nn4Variant } = {}) {
    const variant = options.variant ?? 'torch';
    super({ blocks: blocks(variant), lrn: LRN[variant], finalPool: 3, embeddingDim: 128, eps: 1e-5 }, options);
    this.variant = variant;
  }
}
