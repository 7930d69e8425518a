/**
 * Activations. One kernel for the pointwise functions, chosen by the constant OP (see UNARY_OPS), with
 * its derivative beside it; PReLU has its own, with a slope per channel.
 */
import type { KernelThis, Values } from './types.js';

/** OP codes shared with the backend. */
export const UNARY_OPS = { relu: 0, relu6: 1, leakyRelu: 2, sigmoid: 3, tanh: 4 } as const;

export interface UnaryConstants { OP: number; ALPHA: number }

function unaryForward(this: KernelThis<UnaryConstants>, x: Values): number {
  const v = x[this.thread.x]!;
  if (this.constants.OP === 0) {
    return Math.max(v, 0.0);
  }
  if (this.constants.OP === 1) {
    return Math.min(Math.max(v, 0.0), 6.0);
  }
  if (this.constants.OP === 2) {
    if (v > 0) {
      return v;
    }
    return this.constants.ALPHA * v;
  }
  if (this.constants.OP === 3) {
    return 1.0 / (1.0 + Math.exp(-v));
  }
  // tanh from exp(-2|v|), which cannot overflow.
  const e = Math.exp(-2.0 * Math.abs(v));
  const t = (1.0 - e) / (1.0 + e);
  if (v < 0) {
    return -t;
  }
  return t;
}

/** dx = dy * f'(x), with f' taken at the input x or the output y, as on the CPU (0 at relu's kink). */
function unaryBackward(this: KernelThis<UnaryConstants>, dy: Values, x: Values, y: Values): number {
  const i = this.thread.x;
  const v = x[i]!;
  const g = dy[i]!;
  if (this.constants.OP === 0) {
    if (v > 0) {
      return g;
    }
    return 0.0;
  }
  if (this.constants.OP === 1) {
    if (v > 0 && v < 6) {
      return g;
    }
    return 0.0;
  }
  if (this.constants.OP === 2) {
    if (v > 0) {
      return g;
    }
    return this.constants.ALPHA * g;
  }
  const out = y[i]!;
  if (this.constants.OP === 3) {
    return g * out * (1.0 - out);
  }
  return g * (1.0 - out * out);
}

// PReLU's slope gradient is a per-channel sum: channelReduce (norm.ts), mode dotNegative.
export interface PreluConstants { C: number; INNER: number; N: number }

function preluForward(this: KernelThis<PreluConstants>, x: Values, alpha: Values): number {
  const i = this.thread.x;
  const v = x[i]!;
  if (v > 0) {
    return v;
  }
  const q = Math.floor((i + 0.5) / this.constants.INNER);
  return alpha[q - Math.floor((q + 0.5) / this.constants.C) * this.constants.C]! * v;
}

function preluBackwardInput(this: KernelThis<PreluConstants>, dy: Values, x: Values, alpha: Values): number {
  const i = this.thread.x;
  if (x[i]! > 0) {
    return dy[i]!;
  }
  const q = Math.floor((i + 0.5) / this.constants.INNER);
  return alpha[q - Math.floor((q + 0.5) / this.constants.C) * this.constants.C]! * dy[i]!;
}

export const ACTIVATION_KERNELS = {
  unaryForward: { fn: unaryForward, outputSize: (c: UnaryConstants & { SIZE: number }) => c.SIZE },
  unaryBackward: { fn: unaryBackward, outputSize: (c: UnaryConstants & { SIZE: number }) => c.SIZE },
  preluForward: { fn: preluForward, outputSize: (c: PreluConstants) => c.N * c.C * c.INNER },
  preluBackwardInput: { fn: preluBackwardInput, outputSize: (c: PreluConstants) => c.N * c.C * c.INNER },
};
