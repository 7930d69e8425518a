/**
 * Optimizers over a module's parameters, each updating the tensors in place from their .grad:
 *   SGD with momentum (and optional Nesterov), AdaGrad (the FaceNet paper's optimizer), Adam.
 * Weight decay is the classic L2 term (added to the gradient); AdamW-style decoupled decay is
 * available with `decoupled: true`. State is a few typed arrays per parameter, saved with checkpoints.
 */
import type { Tensor } from '../tensor/tensor.js';
import { ArgumentError, FacenetError } from '../errors.js';

export interface OptimizerState {
  kind: string;
  step: number;
  /** Per-parameter buffers, by parameter index then buffer name. */
  buffers: Record<string, Float64Array>[];
}

/** The domains of hyperparameters: a rate that is negative or NaN would train toward nothing without a word. */
const finiteAtLeast0 = (v: number): boolean => Number.isFinite(v) && v >= 0;
const inUnitInterval = (v: number): boolean => v >= 0 && v < 1;

/** ARGUMENT naming the optimizer and the hyperparameter when `value` (if given) is outside its domain. */
function checkHyperparameter(optimizer: string, name: string, value: unknown, ok: (v: number) => boolean, domain: string): void {
  if (value !== undefined && !(typeof value === 'number' && ok(value))) throw new ArgumentError(optimizer, `${name} must be ${domain}, got ${String(value)}`);
}

export abstract class Optimizer {
  step = 0;
  protected buffers: Record<string, Float64Array>[];
  constructor(readonly params: Tensor[], public lr: number, readonly weightDecay = 0) {
    checkHyperparameter(new.target.name, 'lr', lr, finiteAtLeast0, 'a finite number >= 0');
    checkHyperparameter(new.target.name, 'weightDecay', weightDecay, finiteAtLeast0, 'a finite number >= 0');
    this.buffers = params.map(() => ({}));
  }

  protected buffer(i: number, name: string): Float64Array {
    return (this.buffers[i]![name] ??= new Float64Array(this.params[i]!.size));
  }

  /** Applies one update with the current gradients (parameters without a gradient are left alone). */
  update(): void {
    this.step++;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      this.updateParam(i, p.data, p.grad.data);
    });
  }

  protected abstract updateParam(i: number, w: Float32Array | Float64Array, g: Float32Array | Float64Array): void;

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  abstract get kind(): string;

  state(): OptimizerState {
    return { kind: this.kind, step: this.step, buffers: this.buffers.map((b) => ({ ...b })) };
  }

  load(state: OptimizerState): void {
    if (state.kind !== this.kind) throw new FacenetError('OPTIMIZER_STATE', `the checkpoint holds ${state.kind} state, the optimizer is ${this.kind}: resume with the same optimizer`);
    if (state.buffers.length !== this.params.length) throw new FacenetError('OPTIMIZER_STATE', `the checkpoint has state for ${state.buffers.length} parameters, the model has ${this.params.length}`);
    this.step = state.step;
    this.buffers = state.buffers.map((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float64Array.from(v)])));
  }
}

export class SGD extends Optimizer {
  constructor(params: Tensor[], lr: number, readonly options: { momentum?: number; nesterov?: boolean; weightDecay?: number } = {}) {
    super(params, lr, options.weightDecay ?? 0);
    checkHyperparameter('SGD', 'momentum', options.momentum, inUnitInterval, 'in [0, 1)');
  }
  get kind(): string { return 'sgd'; }
  protected updateParam(i: number, w: Float32Array | Float64Array, g: Float32Array | Float64Array): void {
    const mu = this.options.momentum ?? 0;
    const v = mu ? this.buffer(i, 'velocity') : null;
    for (let k = 0; k < w.length; k++) {
      const grad = g[k]! + this.weightDecay * w[k]!;
      if (!v) { w[k]! -= this.lr * grad; continue; }
      v[k] = mu * v[k]! + grad;
      w[k]! -= this.lr * (this.options.nesterov ? grad + mu * v[k]! : v[k]!);
    }
  }
}

export class AdaGrad extends Optimizer {
  constructor(params: Tensor[], lr: number, readonly options: { eps?: number; initialAccumulator?: number; weightDecay?: number } = {}) {
    super(params, lr, options.weightDecay ?? 0);
    checkHyperparameter('AdaGrad', 'eps', options.eps, finiteAtLeast0, 'a finite number >= 0');
    checkHyperparameter('AdaGrad', 'initialAccumulator', options.initialAccumulator, finiteAtLeast0, 'a finite number >= 0');
  }
  get kind(): string { return 'adagrad'; }
  protected updateParam(i: number, w: Float32Array | Float64Array, g: Float32Array | Float64Array): void {
    const acc = this.buffer(i, 'sum_sq');
    if (this.step === 1 && this.options.initialAccumulator) acc.fill(this.options.initialAccumulator);
    const eps = this.options.eps ?? 1e-10;
    for (let k = 0; k < w.length; k++) {
      const grad = g[k]! + this.weightDecay * w[k]!;
      acc[k]! += grad * grad;
      w[k]! -= (this.lr * grad) / (Math.sqrt(acc[k]!) + eps);
    }
  }
}

export class Adam extends Optimizer {
  constructor(params: Tensor[], lr: number, readonly options: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean } = {}) {
    super(params, lr, options.weightDecay ?? 0);
    checkHyperparameter('Adam', 'beta1', options.beta1, inUnitInterval, 'in [0, 1)');
    checkHyperparameter('Adam', 'beta2', options.beta2, inUnitInterval, 'in [0, 1)');
    checkHyperparameter('Adam', 'eps', options.eps, finiteAtLeast0, 'a finite number >= 0');
  }
  get kind(): string { return this.options.decoupled ? 'adamw' : 'adam'; }
  protected updateParam(i: number, w: Float32Array | Float64Array, g: Float32Array | Float64Array): void {
    const b1 = this.options.beta1 ?? 0.9, b2 = this.options.beta2 ?? 0.999, eps = this.options.eps ?? 1e-8;
    const m = this.buffer(i, 'm'), v = this.buffer(i, 'v');
    const c1 = 1 - b1 ** this.step, c2 = 1 - b2 ** this.step;
    for (let k = 0; k < w.length; k++) {
      if (this.options.decoupled) w[k]! -= this.lr * this.weightDecay * w[k]!;
      const grad = g[k]! + (this.options.decoupled ? 0 : this.weightDecay * w[k]!);
      m[k] = b1 * m[k]! + (1 - b1) * grad;
      v[k] = b2 * v[k]! + (1 - b2) * grad * grad;
      w[k]! -= (this.lr * (m[k]! / c1)) / (Math.sqrt(v[k]! / c2) + eps);
    }
  }
}

/** Learning-rate schedules: lr at a given step. */
export type Schedule = (step: number) => number;

export const schedules = {
  constant: (lr: number): Schedule => () => lr,
  /** lr * gamma^floor(step / every). */
  step: (lr: number, every: number, gamma: number): Schedule => (s) => lr * gamma ** Math.floor(s / every),
  /** lr * gamma^step. */
  exponential: (lr: number, gamma: number): Schedule => (s) => lr * gamma ** s,
  /** Cosine from lr to minLr over total steps, after a linear warm-up. */
  cosine: (lr: number, total: number, minLr = 0, warmup = 0): Schedule => (s) =>
    s < warmup ? (lr * (s + 1)) / warmup : minLr + 0.5 * (lr - minLr) * (1 + Math.cos((Math.PI * Math.min(s - warmup, total - warmup)) / Math.max(1, total - warmup))),
};
