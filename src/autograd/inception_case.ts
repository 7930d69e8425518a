/**
 * A tiny FaceNet-style inception block built from raw ops, used to gradcheck the ops composed end to end
 * (and by the memory test): branches 1x1; 1x1->3x3; 1x1->5x5; L2 pool->1x1; each conv followed by
 * training-mode batchnorm and ReLU; channel concat; global average pool; L2 normalize.
 */
import { Rng } from '../util/random.js';
import { randn, rand } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { GradcheckCase } from './cases.js';

interface ConvBnParams { w: Tensor; b: Tensor; gamma: Tensor; beta: Tensor; mean: Tensor; variance: Tensor; pad: number }

/** conv (kernel k, out channels) + BN params; running statistics are state, not gradchecked inputs. */
function convBn(rng: Rng, inC: number, outC: number, k: number, dtype: 'float32' | 'float64'): ConvBnParams {
  const o = { dtype, seed: rng };
  return {
    w: randn([outC, inC, k, k], { ...o, std: 1 / Math.sqrt(inC * k * k) }),
    b: randn([outC], o),
    gamma: rand([outC], { ...o, lo: 0.5, hi: 1.5 }),
    beta: randn([outC], o),
    mean: randn([outC], o),
    variance: rand([outC], { ...o, lo: 0.5, hi: 2 }),
    pad: (k - 1) / 2,
  };
}

export interface TinyInception {
  units: ConvBnParams[];
  /** The tensors that receive gradients, in a fixed order. */
  parameters: Tensor[];
  forward: (x: Tensor, params?: readonly Tensor[]) => Tensor;
}

export function tinyInception(rng: Rng, inC: number, dtype: 'float32' | 'float64' = 'float64'): TinyInception {
  const units = [
    convBn(rng, inC, 2, 1, dtype), // 1x1 branch
    convBn(rng, inC, 2, 1, dtype), convBn(rng, 2, 3, 3, dtype), // 3x3 branch
    convBn(rng, inC, 1, 1, dtype), convBn(rng, 1, 2, 5, dtype), // 5x5 branch
    convBn(rng, inC, 2, 1, dtype), // after the L2 pool
  ];
  const parameters = units.flatMap((u) => [u.w, u.b, u.gamma, u.beta]);
  const forward = (x: Tensor, params: readonly Tensor[] = parameters): Tensor => {
    const unit = (i: number, input: Tensor): Tensor => {
      const [w, b, gamma, beta] = params.slice(4 * i, 4 * i + 4);
      const u = units[i]!;
      const y = ops.conv2d(input, w!, b!, { padding: u.pad });
      return ops.relu(ops.batchNorm(y, { gamma: gamma!, beta: beta!, runningMean: ops.cast(u.mean, y.dtype), runningVar: ops.cast(u.variance, y.dtype), training: true }));
    };
    const branches = [
      unit(0, x),
      unit(2, unit(1, x)),
      unit(4, unit(3, x)),
      unit(5, ops.l2Pool2d(x, { kernel: 3, stride: 1, padding: 1 })),
    ];
    return ops.l2Normalize(ops.flatten(ops.globalAvgPool(ops.concat(branches, 1))));
  };
  return { units, parameters, forward };
}

export function inceptionBlockCase(rng: Rng): GradcheckCase {
  const inC = rng.int(2, 3);
  const block = tinyInception(rng, inC);
  const x = randn([2, inC, rng.int(4, 5), rng.int(4, 5)], { dtype: 'float64', seed: rng });
  const names = ['x', ...block.units.flatMap((_, i) => [`w${i}`, `b${i}`, `gamma${i}`, `beta${i}`])];
  return {
    description: `x[${x.shape.join(',')}] -> 1x1 | 1x1>3x3 | 1x1>5x5 | l2pool>1x1, BN(train)+ReLU, concat, GAP, L2 normalize`,
    inputs: [x, ...block.parameters], names,
    fn: (xi, ...params) => block.forward(xi!, params),
  };
}
