/**
 * Angular-margin softmax losses for open-set face recognition. Features x [N, D] and class weights
 * W [C, D] are compared through cos(theta) = (x / |x|) . (w / |w|); the target class gets a margin:
 *   SphereFace (A-Softmax, Liu et al. 2017): psi(theta) = (-1)^k cos(m theta) - 2k on [k pi/m, (k+1) pi/m],
 *     scaled by |x|, blended with the plain cos as (lambda cos + psi) / (1 + lambda), lambda annealed from
 *     1000 down to lambda_min (5) as lambda = max(lambda_min, base (1 + gamma step)^-power) (the paper's
 *     Caffe schedule: base 1000, gamma 0.12, power 1);
 *   ArcFace (Deng et al. 2019): s cos(theta + m), with the usual fallback cos(theta) - m sin(m) where
 *     theta + m > pi;
 *   CosFace (Wang et al. 2018): s (cos(theta) - m).
 * Every piece is a differentiable op of the library, so the gradients come from autograd (and are
 * gradchecked). k = floor(m theta / pi) is piecewise constant and carries no gradient.
 */
import { ArgumentError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';

/** Mean cross-entropy of logits [N, C] against integer labels. */
export function crossEntropy(logits: Tensor, labels: ArrayLike<number>): Tensor {
  const [N, C] = logits.shape as [number, number];
  const idx = Array.from({ length: N }, (_, i) => i * C + labels[i]!);
  return ops.neg(ops.mean(ops.gather(ops.logSoftmax(logits, 1), idx)));
}

function checkInputs(op: string, x: Tensor, w: Tensor, labels: ArrayLike<number>): [number, number] {
  if (x.rank !== 2 || w.rank !== 2 || x.shape[1] !== w.shape[1]) throw new ArgumentError(op, `features [N, D] and weights [C, D] must share D; got [${x.shape.join(', ')}] and [${w.shape.join(', ')}]`);
  const N = x.shape[0]!, C = w.shape[0]!;
  if (labels.length !== N) throw new ArgumentError(op, `${labels.length} labels for ${N} features`);
  for (let i = 0; i < N; i++) if (!Number.isInteger(labels[i]) || labels[i]! < 0 || labels[i]! >= C) throw new ArgumentError(op, `label ${labels[i]} is not a class in [0, ${C})`);
  return [N, C];
}

/** cos(theta) [N, C] between the rows of x and the rows of w. */
export function cosineMatrix(x: Tensor, w: Tensor): Tensor {
  return ops.matmul(ops.l2Normalize(x), ops.transpose(ops.l2Normalize(w), [1, 0]));
}

function oneHot(N: number, C: number, labels: ArrayLike<number>, dtype: 'float32' | 'float64'): Tensor {
  const v = new Array<number>(N * C).fill(0);
  for (let i = 0; i < N; i++) v[i * C + labels[i]!] = 1;
  return tensor(v, [N, C], { dtype });
}

/** Logits with the target entries replaced: cos + onehot * (target - cos). */
function withTargets(cos: Tensor, target: Tensor, mask: Tensor): Tensor {
  return ops.add(cos, ops.mul(mask, ops.sub(target, cos)));
}

export interface SphereFaceOptions {
  /** Angular margin, an integer (default 4). */
  m?: number;
  /** Training step, for the lambda annealing schedule. */
  step?: number;
  lambdaBase?: number;
  lambdaMin?: number;
  gamma?: number;
  power?: number;
}

export function sphereFaceLambda(o: SphereFaceOptions = {}): number {
  return Math.max(o.lambdaMin ?? 5, (o.lambdaBase ?? 1000) * (1 + (o.gamma ?? 0.12) * (o.step ?? 0)) ** -(o.power ?? 1));
}

/** cos(m theta) as the Chebyshev polynomial T_m of cos(theta). */
function cosMultiple(c: Tensor, m: number): Tensor {
  let prev = ops.add(ops.mul(c, 0), 1), cur = c; // T_0 = 1, T_1 = c, T_k+1 = 2 c T_k - T_k-1
  for (let k = 1; k < m; k++) {
    const next = ops.sub(ops.mul(ops.mul(c, cur), 2), prev);
    prev = cur;
    cur = next;
  }
  return cur;
}

export function sphereFaceLoss(x: Tensor, w: Tensor, labels: ArrayLike<number>, o: SphereFaceOptions = {}): { loss: Tensor; lambda: number } {
  const [N, C] = checkInputs('sphereFaceLoss', x, w, labels);
  const m = o.m ?? 4;
  if (!Number.isInteger(m) || m < 1) throw new ArgumentError('sphereFaceLoss', `m must be a positive integer, got ${m}`);
  const cos = cosineMatrix(x, w);
  // k = floor(m theta / pi) and (-1)^k, constants per entry.
  const { sign, k } = noGrad(() => {
    const s: number[] = [], kk: number[] = [];
    for (const c of cos.data) {
      const theta = Math.acos(Math.min(1, Math.max(-1, c)));
      const ki = Math.min(m - 1, Math.floor((m * theta) / Math.PI));
      s.push(ki % 2 === 0 ? 1 : -1);
      kk.push(-2 * ki);
    }
    return { sign: tensor(s, [N, C], { dtype: x.dtype }), k: tensor(kk, [N, C], { dtype: x.dtype }) };
  });
  const psi = ops.add(ops.mul(cosMultiple(cos, m), sign), k);
  const lambda = sphereFaceLambda(o);
  const blended = ops.div(ops.add(ops.mul(cos, lambda), psi), 1 + lambda);
  const norms = ops.sqrt(ops.sum(ops.square(x), { axes: 1, keepDims: true }));
  const logits = ops.mul(withTargets(cos, blended, oneHot(N, C, labels, x.dtype)), norms);
  return { loss: crossEntropy(logits, labels), lambda };
}

export function arcFaceLoss(x: Tensor, w: Tensor, labels: ArrayLike<number>, o: { s?: number; m?: number } = {}): Tensor {
  const [N, C] = checkInputs('arcFaceLoss', x, w, labels);
  const s = o.s ?? 64, m = o.m ?? 0.5;
  const cos = cosineMatrix(x, w);
  const sin = ops.sqrt(ops.maximum(ops.add(ops.neg(ops.square(cos)), 1), 1e-12));
  const cosPlus = ops.sub(ops.mul(cos, Math.cos(m)), ops.mul(sin, Math.sin(m)));
  // Where theta + m would pass pi, cos(theta + m) stops decreasing; use the linear fallback there.
  const beyond = noGrad(() => tensor(Array.from(cos.data, (c) => (c > Math.cos(Math.PI - m) ? 0 : 1)), [N, C], { dtype: x.dtype }));
  const fallback = ops.sub(cos, m * Math.sin(m));
  const target = ops.add(cosPlus, ops.mul(beyond, ops.sub(fallback, cosPlus)));
  return crossEntropy(ops.mul(withTargets(cos, target, oneHot(N, C, labels, x.dtype)), s), labels);
}

export function cosFaceLoss(x: Tensor, w: Tensor, labels: ArrayLike<number>, o: { s?: number; m?: number } = {}): Tensor {
  const [N, C] = checkInputs('cosFaceLoss', x, w, labels);
  const s = o.s ?? 30, m = o.m ?? 0.35;
  const cos = cosineMatrix(x, w);
  return crossEntropy(ops.mul(withTargets(cos, ops.sub(cos, m), oneHot(N, C, labels, x.dtype)), s), labels);
}
