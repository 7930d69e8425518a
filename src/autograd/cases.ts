/**
 * Randomized gradcheck cases, one per op name, shared by `facenet gradcheck --op NAME` and the test suite.
 * Each case draws its shapes and attributes from the generator, so different seeds cover different
 * geometries (odd sizes, stride 2 with padding, 1x1, asymmetric padding, batch 1...).
 */
import { Rng } from '../util/random.js';
import { randn, rand } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { inceptionBlockCase } from './inception_case.js';
import { tripletLoss } from '../losses/triplet.js';
import type { MiningMode } from '../losses/mining.js';
import { arcFaceLoss, cosFaceLoss, sphereFaceLoss } from '../losses/margin_softmax.js';

export interface GradcheckCase {
  /** What was drawn, for the report: e.g. "x[2,3,7,5] k3x3 s2 pad[1,0,1,1]". */
  description: string;
  inputs: Tensor[];
  names: string[];
  fn: (...inputs: Tensor[]) => Tensor;
}

type CaseMaker = (rng: Rng) => GradcheckCase;

const f64 = { dtype: 'float64' as const };
const normal = (shape: number[], rng: Rng): Tensor => randn(shape, { ...f64, seed: rng });
const positive = (shape: number[], rng: Rng, lo = 0.5, hi = 2): Tensor => rand(shape, { ...f64, seed: rng, lo, hi });
const fmt = (shape: readonly number[]): string => `[${shape.join(',')}]`;

function convCase(rng: Rng, depthwise: boolean): GradcheckCase {
  const N = rng.int(1, 2), H = rng.int(3, 7), W = rng.int(3, 7);
  const groups = depthwise ? rng.int(2, 3) : rng.pick([1, 1, 2]);
  const C = groups * (depthwise ? 1 : rng.int(1, 2)), O = groups * rng.int(1, 2);
  const KH = rng.int(1, 3), KW = rng.int(1, 3);
  const stride: [number, number] = [rng.int(1, 2), rng.int(1, 2)];
  const dilation: [number, number] = [rng.pick([1, 1, 2]), 1];
  const padding: [number, number, number, number] = [rng.int(0, 2), rng.int(0, 1), rng.int(0, 2), rng.int(0, 1)];
  const x = normal([N, C, H, W], rng), w = normal([O, C / groups, KH, KW], rng), b = normal([O], rng);
  const options = { stride, padding, dilation, groups };
  return {
    description: `x${fmt(x.shape)} w${fmt(w.shape)} s${stride.join('x')} d${dilation.join('x')} pad${fmt(padding)} groups ${groups}`,
    inputs: [x, w, b], names: ['x', 'w', 'bias'],
    fn: (xi, wi, bi) => ops.conv2d(xi!, wi!, bi!, options),
  };
}

function poolCase(rng: Rng, kind: 'max' | 'avg' | 'l2'): GradcheckCase {
  const k = rng.int(2, 3);
  const stride = rng.int(1, 3);
  const padding = rng.int(0, k - 1);
  const ceilMode = rng.next() < 0.5;
  const x = normal([rng.int(1, 2), rng.int(1, 3), rng.int(k, 7), rng.int(k, 7)], rng);
  const options = { kernel: k, stride, padding, ceilMode };
  const op = kind === 'max' ? ops.maxPool2d : kind === 'l2' ? ops.l2Pool2d : (t: Tensor) => ops.avgPool2d(t, { ...options, countIncludePad: padding % 2 === 0 });
  return { description: `x${fmt(x.shape)} k${k} s${stride} p${padding}${ceilMode ? ' ceil' : ''}`, inputs: [x], names: ['x'], fn: (xi) => op(xi!, options) };
}

function batchNormCase(rng: Rng, training: boolean): GradcheckCase {
  const image = rng.next() < 0.7;
  const C = rng.int(1, 4);
  const shape = image ? [rng.int(1, 3), C, rng.int(2, 4), rng.int(1, 4)] : [rng.int(2, 5), C];
  const x = normal(shape, rng), gamma = normal([C], rng), beta = normal([C], rng);
  const runningMean = normal([C], rng), runningVar = positive([C], rng);
  const inputBias = rng.next() < 0.5 ? normal([C], rng) : null; // a convolution's bias, folded in
  return {
    description: `x${fmt(shape)} ${training ? 'training (batch statistics)' : 'eval (running statistics)'}${inputBias ? ' + input bias' : ''}`,
    inputs: inputBias ? [x, gamma, beta, inputBias] : [x, gamma, beta], names: inputBias ? ['x', 'gamma', 'beta', 'inputBias'] : ['x', 'gamma', 'beta'],
    // Statistics follow the input's dtype (float32 in the GPU parity runs).
    fn: (xi, g, b, ib) => ops.batchNorm(xi!, { gamma: g!, beta: b!, runningMean: ops.cast(runningMean, xi!.dtype), runningVar: ops.cast(runningVar, xi!.dtype), training, eps: 1e-3, inputBias: ib ?? null }),
  };
}

export const GRADCHECK_CASES: Record<string, CaseMaker> = {
  conv2d: (rng) => convCase(rng, false),
  depthwise: (rng) => convCase(rng, true),
  dense: (rng) => {
    const x = normal([rng.int(1, 4), rng.int(1, 6)], rng), w = normal([rng.int(1, 5), x.shape[1]!], rng), b = normal([w.shape[0]!], rng);
    return { description: `x${fmt(x.shape)} w${fmt(w.shape)}`, inputs: [x, w, b], names: ['x', 'w', 'bias'], fn: (xi, wi, bi) => ops.dense(xi!, wi!, bi!) };
  },
  matmul: (rng) => {
    const a = normal([rng.int(1, 5), rng.int(1, 5)], rng), b = normal([a.shape[1]!, rng.int(1, 5)], rng);
    return { description: `a${fmt(a.shape)} b${fmt(b.shape)}`, inputs: [a, b], names: ['a', 'b'], fn: (x, y) => ops.matmul(x!, y!) };
  },
  batchnorm: (rng) => batchNormCase(rng, true),
  'batchnorm-eval': (rng) => batchNormCase(rng, false),
  channelaffine: (rng) => {
    const C = rng.int(1, 4), relu = rng.next() < 0.5;
    const shape = rng.next() < 0.7 ? [rng.int(1, 3), C, rng.int(1, 4), rng.int(1, 4)] : [rng.int(1, 5), C];
    const x = normal(shape, rng), scale = normal([C], rng), shift = normal([C], rng);
    return { description: `x${fmt(shape)}${relu ? ' relu' : ''}`, inputs: [x, scale, shift], names: ['x', 'scale', 'shift'], fn: (xi, s, t) => ops.channelAffine(xi!, s!, t!, { relu }) };
  },
  lrn: (rng) => {
    const size = rng.pick([1, 3, 5]), convention = rng.pick(['torch', 'tf'] as const);
    const x = normal([rng.int(1, 2), rng.int(1, 7), rng.int(1, 3), rng.int(1, 3)], rng);
    const options = { size, alpha: 0.5, beta: 0.75, k: 1.5, convention };
    return { description: `x${fmt(x.shape)} size ${size} ${convention}`, inputs: [x], names: ['x'], fn: (xi) => ops.lrn(xi!, options) };
  },
  maxpool: (rng) => poolCase(rng, 'max'),
  avgpool: (rng) => poolCase(rng, 'avg'),
  l2pool: (rng) => poolCase(rng, 'l2'),
  globalavgpool: (rng) => {
    const x = normal([rng.int(1, 2), rng.int(1, 3), rng.int(1, 4), rng.int(1, 4)], rng);
    return { description: `x${fmt(x.shape)}`, inputs: [x], names: ['x'], fn: (xi) => ops.globalAvgPool(xi!) };
  },
  prelu: (rng) => {
    const C = rng.int(1, 4);
    const x = normal([rng.int(1, 2), C, rng.int(1, 3), rng.int(1, 3)], rng), alpha = normal([C], rng);
    return { description: `x${fmt(x.shape)}`, inputs: [x, alpha], names: ['x', 'alpha'], fn: (xi, a) => ops.prelu(xi!, a!) };
  },
  relu: (rng) => unaryCase(rng, ops.relu),
  leakyrelu: (rng) => unaryCase(rng, (x) => ops.leakyRelu(x, 0.1)),
  sigmoid: (rng) => unaryCase(rng, ops.sigmoid),
  tanh: (rng) => unaryCase(rng, ops.tanh),
  exp: (rng) => unaryCase(rng, ops.exp),
  log: (rng) => ({ ...unaryCase(rng, ops.log), inputs: [positive([rng.int(1, 3), rng.int(1, 5)], rng)] }),
  sqrt: (rng) => ({ ...unaryCase(rng, ops.sqrt), inputs: [positive([rng.int(1, 3), rng.int(1, 5)], rng)] }),
  l2normalize: (rng) => {
    const rank4 = rng.next() < 0.5;
    const x = normal(rank4 ? [rng.int(1, 2), rng.int(1, 5), rng.int(1, 3), rng.int(1, 2)] : [rng.int(1, 4), rng.int(1, 8)], rng);
    return { description: `x${fmt(x.shape)} axis 1`, inputs: [x], names: ['x'], fn: (xi) => ops.l2Normalize(xi!) };
  },
  softmax: (rng) => {
    const x = normal([rng.int(1, 3), rng.int(1, 6)], rng);
    return { description: `x${fmt(x.shape)}`, inputs: [x], names: ['x'], fn: (xi) => ops.softmax(xi!) };
  },
  logsoftmax: (rng) => {
    const x = normal([rng.int(1, 3), rng.int(2, 4), rng.int(1, 3)], rng);
    return { description: `x${fmt(x.shape)} axis 1`, inputs: [x], names: ['x'], fn: (xi) => ops.logSoftmax(xi!, 1) };
  },
  add: (rng) => binaryCase(rng, ops.add),
  sub: (rng) => binaryCase(rng, ops.sub),
  mul: (rng) => binaryCase(rng, ops.mul),
  div: (rng) => {
    const c = binaryCase(rng, ops.div);
    const b = c.inputs[1]!;
    return { ...c, inputs: [c.inputs[0]!, positive([...b.shape], rng)] };
  },
  pad: (rng) => {
    const x = normal([rng.int(1, 2), rng.int(1, 3), rng.int(1, 4), rng.int(1, 4)], rng);
    const p: [number, number, number, number] = [rng.int(0, 2), rng.int(0, 2), rng.int(0, 2), rng.int(0, 2)];
    return { description: `x${fmt(x.shape)} pad${fmt(p)}`, inputs: [x], names: ['x'], fn: (xi) => ops.pad2d(xi!, p) };
  },
  concat: (rng) => {
    const base = [rng.int(1, 2), rng.int(1, 3), rng.int(1, 3), rng.int(1, 3)];
    const axis = rng.int(0, 3);
    const parts = [0, 1, 2].map(() => normal(base.map((d, i) => (i === axis ? rng.int(1, 3) : d)), rng));
    return { description: `${parts.map((p) => fmt(p.shape)).join(' + ')} axis ${axis}`, inputs: parts, names: ['a', 'b', 'c'], fn: (...ts) => ops.concat(ts, axis) };
  },
  slice: (rng) => {
    const x = normal([rng.int(1, 3), rng.int(2, 4), rng.int(2, 5)], rng);
    const begin = x.shape.map((d) => rng.int(0, d - 1));
    const size = x.shape.map((d, i) => rng.int(1, d - begin[i]!));
    return { description: `x${fmt(x.shape)} begin${fmt(begin)} size${fmt(size)}`, inputs: [x], names: ['x'], fn: (xi) => ops.slice(xi!, begin, size) };
  },
  transpose: (rng) => {
    const x = normal([rng.int(1, 3), rng.int(1, 3), rng.int(1, 4), rng.int(1, 3)], rng);
    const perm = rng.pick([[0, 2, 3, 1], [0, 3, 2, 1], [3, 1, 0, 2], [1, 0, 2, 3]]);
    return { description: `x${fmt(x.shape)} perm${fmt(perm)}`, inputs: [x], names: ['x'], fn: (xi) => ops.transpose(xi!, perm) };
  },
  sum: (rng) => reduceCase(rng, ops.sum),
  mean: (rng) => reduceCase(rng, ops.mean),
  max: (rng) => reduceCase(rng, ops.max),
  'squared-distances': (rng) => {
    const D = rng.int(1, 5);
    const a = normal([rng.int(1, 4), D], rng), b = normal([rng.int(1, 4), D], rng);
    return { description: `a${fmt(a.shape)} b${fmt(b.shape)}`, inputs: [a, b], names: ['a', 'b'], fn: (x, y) => ops.squaredDistances(x!, y!) };
  },
  'euclidean-distances': (rng) => {
    const a = normal([rng.int(2, 5), rng.int(1, 5)], rng);
    // Self-distances: the zero diagonal exercises the clamp (gradient 0 there).
    return { description: `a${fmt(a.shape)} vs itself`, inputs: [a], names: ['a'], fn: (x) => ops.euclideanDistances(x!) };
  },
  dropout: (rng) => {
    const x = normal([rng.int(1, 3), rng.int(2, 6)], rng);
    const seed = rng.int(1, 1000);
    // A fresh generator per call: the mask must be the same in every evaluation of the check.
    return { description: `x${fmt(x.shape)} p 0.3`, inputs: [x], names: ['x'], fn: (xi) => ops.dropout(xi!, 0.3, new Rng(seed)) };
  },
  gather: (rng) => {
    const x = normal([rng.int(1, 3), rng.int(2, 5)], rng);
    const idx = Array.from({ length: rng.int(1, 8) }, () => rng.int(0, x.size - 1)); // repeats accumulate
    return { description: `x${fmt(x.shape)} ${idx.length} indices`, inputs: [x], names: ['x'], fn: (xi) => ops.gather(xi!, idx) };
  },
  triplet: (rng) => tripletCase(rng, rng.pick(['semi-hard', 'hard', 'batch-hard', 'batch-all'] as const)),
  'triplet-semi-hard': (rng) => tripletCase(rng, 'semi-hard'),
  'triplet-hard': (rng) => tripletCase(rng, 'hard'),
  'triplet-batch-hard': (rng) => tripletCase(rng, 'batch-hard'),
  'triplet-batch-all': (rng) => tripletCase(rng, 'batch-all'),
  sphereface: (rng) => marginCase(rng, 'sphereface'),
  arcface: (rng) => marginCase(rng, 'arcface'),
  cosface: (rng) => marginCase(rng, 'cosface'),
  inception: inceptionBlockCase,
};

function tripletCase(rng: Rng, mining: MiningMode): GradcheckCase {
  const P = rng.int(2, 3), K = rng.int(2, 3), D = rng.int(2, 4);
  const x = normal([P * K, D], rng);
  const labels = Array.from({ length: P * K }, (_, i) => Math.floor(i / K));
  // Unit embeddings and margin 0.5: random batches then hold triplets of every kind.
  return {
    description: `${P} identities x ${K}, D ${D}, ${mining}, margin 0.5`, inputs: [x], names: ['embeddings'],
    fn: (xi) => tripletLoss(ops.l2Normalize(xi!), labels, { mining, margin: 0.5 }).loss,
  };
}

function marginCase(rng: Rng, kind: 'sphereface' | 'arcface' | 'cosface'): GradcheckCase {
  const N = rng.int(2, 4), C = rng.int(2, 4), D = rng.int(2, 4);
  const x = normal([N, D], rng), w = normal([C, D], rng);
  const labels = Array.from({ length: N }, () => rng.int(0, C - 1));
  const step = rng.int(0, 2000);
  const fn = (xi: Tensor | undefined, wi: Tensor | undefined): Tensor =>
    kind === 'sphereface' ? sphereFaceLoss(xi!, wi!, labels, { m: 4, step }).loss
    : kind === 'arcface' ? arcFaceLoss(xi!, wi!, labels, { s: 8, m: 0.5 })
    : cosFaceLoss(xi!, wi!, labels, { s: 8, m: 0.35 });
  return { description: `x${fmt(x.shape)} w${fmt(w.shape)}${kind === 'sphereface' ? ` m 4, step ${step}` : ''}`, inputs: [x, w], names: ['x', 'w'], fn };
}

function unaryCase(rng: Rng, op: (x: Tensor) => Tensor): GradcheckCase {
  const x = normal([rng.int(1, 3), rng.int(1, 5)], rng);
  return { description: `x${fmt(x.shape)}`, inputs: [x], names: ['x'], fn: (xi) => op(xi!) };
}

function binaryCase(rng: Rng, op: (a: Tensor, b: Tensor) => Tensor): GradcheckCase {
  const shape = [rng.int(1, 2), rng.int(1, 3), rng.int(1, 3), rng.int(1, 3)];
  // b broadcasts along a random subset of dimensions (a [1, C, 1, 1] bias is one such draw).
  const bShape = shape.map((d) => (rng.next() < 0.5 ? 1 : d));
  const a = normal(shape, rng), b = normal(bShape, rng);
  return { description: `a${fmt(shape)} b${fmt(bShape)}`, inputs: [a, b], names: ['a', 'b'], fn: (x, y) => op(x!, y!) };
}

function reduceCase(rng: Rng, op: (x: Tensor, o: { axes: number[]; keepDims: boolean }) => Tensor): GradcheckCase {
  const x = normal([rng.int(1, 3), rng.int(1, 4), rng.int(1, 3)], rng);
  const axes = [0, 1, 2].filter(() => rng.next() < 0.5);
  const keepDims = rng.next() < 0.5;
  return { description: `x${fmt(x.shape)} axes${fmt(axes)}${keepDims ? ' keepDims' : ''}`, inputs: [x], names: ['x'], fn: (xi) => op(xi!, { axes, keepDims }) };
}

export const GRADCHECK_OP_NAMES = Object.keys(GRADCHECK_CASES);

export function makeCase(op: string, seed: number): GradcheckCase | null {
  const maker = GRADCHECK_CASES[op];
  return maker ? maker(new Rng(seed)) : null;
}
