/** Constructors: from values, filled, and seeded random (normal / uniform). */
import { ArgumentError } from '../errors.js';
import { Rng } from '../util/random.js';
import { sizeOf, type Shape } from './shape.js';
import { alloc, Tensor, type DType, type TypedArray } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

/** From a flat array (or typed array) of values in row-major order. Typed arrays of the right dtype are copied. */
export function tensor(values: ArrayLike<number>, shape: Shape, options: CreateOptions = {}): Tensor {
  const dtype = options.dtype ?? (values instanceof Float64Array ? 'float64' : 'float32');
  const data = alloc(dtype, values.length);
  data.set(values);
  return new Tensor(data, shape, { requiresGrad: options.requiresGrad ?? false });
}

/** Wraps an existing typed array without copying. */
export function fromTypedArray(data: TypedArray, shape: Shape, options: { requiresGrad?: boolean } = {}): Tensor {
  return new Tensor(data, shape, options);
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  return new Tensor(alloc(options.dtype ?? 'float32', sizeOf(shape)).fill(value), shape, { requiresGrad: options.requiresGrad ?? false });
}

export function zeros(shape: Shape, options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function scalar(value: number, options: CreateOptions = {}): Tensor {
  return full([], value, options);
}

export interface RandomOptions extends CreateOptions {
  /** Seed of a fresh generator, or a generator to draw from (to continue a sequence). */
  seed?: number | Rng;
}

function rngOf(seed: number | Rng | undefined): Rng {
  return seed instanceof Rng ? seed : new Rng(seed ?? 1);
}

/** Normal(mean, std) entries. */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const rng = rngOf(options.seed);
  const mean = options.mean ?? 0;
  const std = options.std ?? 1;
  const data = alloc(options.dtype ?? 'float32', sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
  return new Tensor(data, shape, { requiresGrad: options.requiresGrad ?? false });
}

/** Uniform[lo, hi) entries. */
export function rand(shape: Shape, options: RandomOptions & { lo?: number; hi?: number } = {}): Tensor {
  const rng = rngOf(options.seed);
  const lo = options.lo ?? 0;
  const hi = options.hi ?? 1;
  if (!(hi > lo)) throw new ArgumentError('rand', `need lo < hi, got ${lo}, ${hi}`);
  const data = alloc(options.dtype ?? 'float32', sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform(lo, hi);
  return new Tensor(data, shape, { requiresGrad: options.requiresGrad ?? false });
}
