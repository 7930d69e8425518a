/**
 * The Tensor: a contiguous row-major typed array (float32 for speed, float64 for tight gradient checks),
 * its shape, and, when it was produced by a differentiable op, the autograd node that made it.
 */
import { DisposedError, DTypeError, FacenetError, ShapeError } from '../errors.js';
import { insideRecycling, noteAllocation, onCreate, onDispose, takePooled } from '../autograd/memory.js';
import { sharesArrays } from '../backends/cpu/threads.js';
import { runBackward, type GradNode } from '../autograd/tape.js';
import { assertValidShape, sizeOf, type Shape } from './shape.js';

export type DType = 'float32' | 'float64';
export type TypedArray = Float32Array | Float64Array;

/** A zeroed array of n values: new, or float32 from the buffer pool (see tidyAndRecycle). */
export function alloc(dtype: DType, n: number): TypedArray {
  return (dtype === 'float32' && takePooled(n, true, wantsShared(n))) || newArray(dtype, n);
}

/**
 * An array of n values for an output its caller writes in full: float32 from the buffer pool as it was
 * left (no zeroing pass), or new. Anything that adds into its output, or skips elements, takes alloc().
 */
export function allocUnfilled(dtype: DType, n: number): TypedArray {
  return (dtype === 'float32' && takePooled(n, false, wantsShared(n))) || newArray(dtype, n);
}

/**
 * A new array (counted by allocationStats and the enclosing tidyAndRecycle blocks). An array the engine
 * cannot make (over its length limit, or out of memory) is an OUT_OF_MEMORY error giving the size.
 */
function newArray(dtype: DType, n: number): TypedArray {
  let a: TypedArray;
  try {
    a = dtype === 'float64' ? new Float64Array(n) : wantsShared(n) ? new Float32Array(new SharedArrayBuffer(4 * n)) : new Float32Array(n);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const gb = (n * (dtype === 'float64' ? 8 : 4)) / 2 ** 30;
    throw new FacenetError('OUT_OF_MEMORY', `cannot allocate ${n} ${dtype} values (${gb.toFixed(1)} GB) for a tensor: use a smaller batch or input (${e.message})`);
  }
  noteAllocation(a);
  return a;
}

/**
 * Whether a float32 array of n values is to live in a SharedArrayBuffer: inside tidyAndRecycle blocks,
 * whether the passes around the GEMMs run on several threads (threads.ts), so the workers read and write
 * it in place; outside them (arrays not reused: each new buffer would have to be posted to the workers)
 * new ones are not, and pooled ones of either kind are taken (undefined).
 */
const wantsShared = (n: number): boolean | undefined => (insideRecycling() ? sharesArrays(n) : undefined);

const indexStorage = new WeakMap<Int32Array, Float32Array>();

/**
 * n int32 indices written in full by the caller (max pooling's argmax), over a float32 array from the
 * buffer pool (see allocUnfilled); indicesStorage gives that array, for a graph node's saved arrays.
 */
export function allocIndices(n: number): Int32Array {
  const storage = allocUnfilled('float32', n) as Float32Array;
  const indices = new Int32Array(storage.buffer, storage.byteOffset, n);
  indexStorage.set(indices, storage);
  return indices;
}

export function indicesStorage(indices: Int32Array): Float32Array | undefined {
  return indexStorage.get(indices);
}

export function dtypeOf(data: TypedArray): DType {
  return data instanceof Float64Array ? 'float64' : 'float32';
}

let nextId = 1;

/**
 * Tensor values that live on a device (a GPU texture or buffer). They are copied to the host the first
 * time `.data` (or `dataAsync()`) is read; device ops pass `value` straight to the next kernel. Reference
 * counted, because a reshape shares its input's values. An asynchronous device (WebGPU) can only be read
 * with readAsync: its read() throws.
 */
export interface DeviceData {
  /** Which backend owns it, e.g. 'gpu:headlessgl'. */
  readonly backend: string;
  /** What the backend's kernels take as an argument (a texture, a typed array on webasm, a promise of a buffer on webgpu). */
  readonly value: unknown;
  read(): Float32Array;
  readAsync(): Promise<Float32Array>;
  retain(): void;
  release(): void;
}

function isDeviceData(v: TypedArray | DeviceData): v is DeviceData {
  return !(v instanceof Float32Array || v instanceof Float64Array);
}

export interface TensorOptions {
  requiresGrad?: boolean;
  /** false for tensors that must outlive the current tidy() scope (gradients, running statistics). */
  tracked?: boolean;
}

export class Tensor {
  readonly isTensor = true;
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf tensor (same shape and dtype), filled by backward(). */
  grad: Tensor | null = null;
  /** How this tensor was computed; null for leaves and for tensors made with grad disabled. */
  node: GradNode | null = null;
  private storage: TypedArray | null;
  private deviceData: DeviceData | null;
  private disposed = false;

  /**
   * Values on the host (a typed array the tensor takes ownership of) or on a device (float32; the tensor
   * takes over one reference). A tensor's values never change after creation, except leaves'
   * (parameters, running statistics) updated in place on the host.
   */
  constructor(data: TypedArray | DeviceData, shape: Shape, options: TensorOptions = {}) {
    assertValidShape('tensor', shape);
    const size = sizeOf(shape);
    this.storage = isDeviceData(data) ? null : data;
    this.deviceData = isDeviceData(data) ? data : null;
    if (this.storage && this.storage.length !== size) throw new ShapeError('tensor', `${this.storage.length} elements`, shape, `shape holds ${size} elements`);
    this.shape = Object.freeze([...shape]);
    this.size = size;
    this.dtype = this.storage ? dtypeOf(this.storage) : 'float32';
    this.requiresGrad = options.requiresGrad ?? false;
    onCreate(this, options.tracked ?? true);
  }

  /** The values on the host; a device tensor is read back once, on first access. */
  get data(): TypedArray {
    if (this.disposed) throw new DisposedError(`tensor #${this.id} [${this.shape.join(', ')}]`);
    if (this.storage === null) {
      const values = this.deviceData!.read();
      if (values.length !== this.size) throw new ShapeError('tensor', `${values.length} elements read back from ${this.deviceData!.backend}`, this.shape);
      this.storage = values;
    }
    return this.storage;
  }

  /**
   * The values on the host, read back without blocking: the only way to read a tensor that lives on an
   * asynchronous device (gpu:webgpu); on every other backend the same values as `.data`.
   */
  async dataAsync(): Promise<TypedArray> {
    if (this.disposed) throw new DisposedError(`tensor #${this.id} [${this.shape.join(', ')}]`);
    if (this.storage === null) {
      const device = this.deviceData!;
      const values = await device.readAsync();
      if (this.disposed) throw new DisposedError(`tensor #${this.id} [${this.shape.join(', ')}] (disposed while it was read back)`);
      if (values.length !== this.size) throw new ShapeError('tensor', `${values.length} elements read back from ${device.backend}`, this.shape);
      this.storage ??= values;
    }
    return this.storage;
  }

  /** The values on a device, or null for a host tensor. */
  get device(): DeviceData | null {
    if (this.disposed) throw new DisposedError(`tensor #${this.id} [${this.shape.join(', ')}]`);
    return this.deviceData;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Reverse-mode differentiation from this tensor. A scalar needs no seed; otherwise pass dL/dthis.
   * Gradients accumulate (+=) into the .grad of every leaf that requires grad.
   */
  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    if (!this.requiresGrad) throw new FacenetError('NO_GRAD', 'backward(): this tensor does not require grad (no input of its graph has requiresGrad, or it was made under noGrad)');
    let seed: TypedArray;
    if (gradient) {
      if (gradient.size !== this.size) throw new ShapeError('backward', `a gradient of shape [${this.shape.join(', ')}]`, gradient.shape);
      if (gradient.dtype !== this.dtype) throw new DTypeError('backward', [this.dtype, gradient.dtype]);
      seed = gradient.data;
    } else {
      if (this.size !== 1) throw new ShapeError('backward', 'a scalar output (or pass the output gradient)', this.shape);
      seed = alloc(this.dtype, 1).fill(1);
    }
    runBackward(this, seed, options.retainGraph ?? false);
  }

  /** Drops the gradient (set-to-none, as PyTorch's zero_grad does). */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  dispose(): void {
    if (this.disposed) return;
    const storage = this.storage;
    this.disposed = true;
    this.storage = null;
    this.deviceData?.release();
    this.deviceData = null;
    this.node = null;
    this.zeroGrad();
    onDispose(this, storage);
  }

  /** A copy that is a leaf: no history, no grad. */
  detach(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  item(): number {
    if (this.size !== 1) throw new ShapeError('item', 'a tensor with one element', this.shape);
    return this.data[0]!;
  }

  toString(): string {
    return `Tensor(${this.dtype} [${this.shape.join(', ')}]${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}
