/**
 * NN2, the FaceNet paper's Inception network (Schroff et al. 2015, Table 1): 224x224 RGB -> 128-d unit
 * embedding, 7.5M parameters, 1.6 GFLOPs. Same stem as nn4.small2 (to 192x28x28), then inception 3a-3c,
 * 4a-4e, 5a-5b with L2-pool or max-pool branches, avgpool 7, dense 1024 -> 128. No public weights
 * exist: it is built with random initialization, for training.
 */
import type { ModelInit } from '../nn/layers.js';
import type { InceptionSpec } from '../nn/inception.js';
import { InceptionNet } from './inception_net.js';

const max1 = { type: 'max', kernel: 3, stride: 1, padding: 1 } as const;
const max2 = { type: 'max', kernel: 3, stride: 2, padding: 1 } as const;
const l2 = { type: 'l2', kernel: 3, stride: 1, padding: 1 } as const;

/** [name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool branch] exactly as the paper's table. */
const TABLE: [string, number, number, number, number, number, InceptionSpec['pool']][] = [
  ['3a', 64, 96, 128, 16, 32, { ...max1, proj: 32 }],
  ['3b', 64, 96, 128, 32, 64, { ...l2, proj: 64 }],
  ['3c', 0, 128, 256, 32, 64, max2],
  ['4a', 256, 96, 192, 32, 64, { ...l2, proj: 128 }],
  ['4b', 224, 112, 224, 32, 64, { ...l2, proj: 128 }],
  ['4c', 192, 128, 256, 32, 64, { ...l2, proj: 128 }],
  ['4d', 160, 144, 288, 32, 64, { ...l2, proj: 128 }],
  ['4e', 0, 160, 256, 64, 128, max2],
  ['5a', 384, 192, 384, 48, 128, { ...l2, proj: 128 }],
  ['5b', 384, 192, 384, 48, 128, { ...max1, proj: 128 }],
];

function blocks(): [string, InceptionSpec][] {
  let inChannels = 192;
  return TABLE.map(([name, one, r3, c3, r5, c5, pool]) => {
    const stride = pool.stride; // the reduction blocks (3c, 4e) stride every branch
    const spec: InceptionSpec = {
      inChannels,
      branch3x3: { reduce: r3, out: c3, stride },
      branch5x5: { reduce: r5, out: c5, stride },
      pool,
      ...(one > 0 ? { branch1x1: one } : {}),
    };
    inChannels = c3 + c5 + (pool.proj ?? inChannels) + one;
    return [name, spec];
  });
}

export class Nn2 extends InceptionNet {
  constructor(options: ModelInit = {}) {
    super({ blocks: blocks(), lrn: { size: 5, alpha: 1e-4, beta: 0.75, k: 1, convention: 'torch' }, finalPool: 7, embeddingDim: 128, eps: 1e-5 }, options);
  }
}
