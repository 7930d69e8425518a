/**
 * gradcheck: compares reverse-mode gradients with central finite differences, in float64.
 * For a function f of tensors with any output shape, both sides differentiate the scalar
 * L = sum(v * f(inputs)) for a fixed random v, which tests the whole vector-Jacobian product.
 *
 * Error per element: abs = |analytic - numeric|, rel = abs / max(|analytic|, |numeric|, floor), where
 * floor = 1e-3 * (largest |numeric| over all inputs) keeps entries far below the gradient's own scale
 * (exact zeros, round-off) from dominating. An element passes when abs <= atol or rel <= rtol.
 * The report gives the worst element of every input.
 */
import { ArgumentError } from '../errors.js';
import { Rng } from '../util/random.js';
import { Tensor } from '../tensor/tensor.js';
import { noGrad } from './tape.js';
import { tidy } from './memory.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-5: in float64 it balances round-off, ~1e-16/eps, against truncation, ~eps²). */
  eps?: number;
  /** Absolute tolerance (default 1e-8). */
  atol?: number;
  /** Relative tolerance (default 1e-6). */
  rtol?: number;
  /** Seed of the random output weights v (default 1). */
  seed?: number;
  /** Names of the inputs, for the report. */
  names?: readonly string[];
}

export interface InputReport {
  name: string;
  shape: readonly number[];
  /** Flat index of the worst element (-1 for an empty input). */
  worstIndex: number;
  analytic: number;
  numeric: number;
  absError: number;
  relError: number;
  ok: boolean;
}

export interface GradcheckReport {
  ok: boolean;
  inputs: InputReport[];
  maxAbsError: number;
  maxRelError: number;
}

function weightedSum(out: Tensor, v: Float64Array): number {
  const d = out.data;
  if (d.length !== v.length) throw new ArgumentError('gradcheck', 'fn must return outputs of the same shape on every call');
  let s = 0;
  for (let i = 0; i < d.length; i++) s += v[i]! * d[i]!;
  return s;
}

export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], options: GradcheckOptions = {}): GradcheckReport {
  const eps = options.eps ?? 1e-5, atol = options.atol ?? 1e-8, rtol = options.rtol ?? 1e-6;
  // Float64 leaf copies, so the check is independent of the caller's dtype and graph.
  const xs = inputs.map((t) => new Tensor(Float64Array.from(t.data), t.shape, { requiresGrad: true, tracked: false }));
  try {
    const analytic = tidy(() => {
      const out = fn(...xs);
      const rng = new Rng(options.seed ?? 1);
      const v = new Float64Array(out.size).map(() => rng.uniform(-1, 1));
      out.backward(new Tensor(v, out.shape));
      return { v, grads: xs.map((x) => (x.grad ? Float64Array.from(x.grad.data) : new Float64Array(x.size))) };
    });
    const lossAt = (): number => tidy(() => noGrad(() => weightedSum(fn(...xs), analytic.v)));
    const numeric = xs.map((x) => centralDifferences(x, lossAt, eps));
    let floor = 0;
    for (const n of numeric) for (const v of n) floor = Math.max(floor, Math.abs(v));
    floor = Math.max(floor * 1e-3, 1e-12);
    const reports = xs.map((x, i) => compare(analytic.grads[i]!, numeric[i]!, { atol, rtol, floor, name: options.names?.[i] ?? `input${i}`, shape: x.shape }));
    return {
      ok: reports.every((r) => r.ok),
      inputs: reports,
      maxAbsError: Math.max(0, ...reports.map((r) => r.absError)),
      maxRelError: Math.max(0, ...reports.map((r) => r.relError)),
    };
  } finally {
    for (const x of xs) x.dispose();
  }
}

/** d(loss)/dx_j by central differences, perturbing x in place and restoring it. */
function centralDifferences(x: Tensor, lossAt: () => number, eps: number): Float64Array {
  const data = x.data;
  const numeric = new Float64Array(x.size);
  for (let j = 0; j < data.length; j++) {
    const saved = data[j]!;
    data[j] = saved + eps;
    const plus = lossAt();
    data[j] = saved - eps;
    const minus = lossAt();
    data[j] = saved;
    numeric[j] = (plus - minus) / (2 * eps);
  }
  return numeric;
}

function compare(analytic: Float64Array, numeric: Float64Array, o: { atol: number; rtol: number; floor: number; name: string; shape: readonly number[] }): InputReport {
  const report: InputReport = { name: o.name, shape: o.shape, worstIndex: -1, analytic: 0, numeric: 0, absError: 0, relError: 0, ok: true };
  for (let j = 0; j < numeric.length; j++) {
    const a = analytic[j]!, n = numeric[j]!;
    const absError = Math.abs(a - n);
    const relError = absError / Math.max(Math.abs(a), Math.abs(n), o.floor);
    if (!Number.isFinite(relError) || relError > report.relError || report.worstIndex < 0) {
      Object.assign(report, { worstIndex: j, analytic: a, numeric: n, absError, relError });
    }
    if (!(absError <= o.atol || relError <= o.rtol)) report.ok = false;
  }
  return report;
}
