/**
 * The GPU device: one gpu.js instance, the mode it runs in, an LRU cache of compiled kernels, and the
 * device buffers (textures on GL, typed arrays on webasm, storage buffers on WebGPU) that tensors hold
 * between ops.
 *
 * Kernels are compiled per (kernel, mode, constants, argument kinds): gpu.js bakes constants into the
 * shader and ignores setConstants() after the first call, so every shape gets its own kernel. Each
 * compiled kernel costs device memory (~8 MB on headless-gl), hence the LRU bound. Outputs are
 * immutable textures that must be deleted by hand; DeviceBuffer counts references and deletes the
 * texture when the last tensor holding it is disposed.
 *
 * WebGPU is asynchronous: a kernel's first call compiles it asynchronously and every call returns a
 * promise of its output buffer. Ops stay synchronous all the same: a launch waits for its inputs'
 * promises and the tensor holds the promise of its output, so a whole forward pass is queued without
 * waiting and only `await tensor.dataAsync()` waits (for one read back at the end). What needs values on
 * the host mid-graph (gradients, which the tape accumulates on the host) cannot run on it.
 */
import { FacenetError } from '../../errors.js';
import type { DeviceData } from '../../tensor/tensor.js';
import { KERNELS, type KernelName } from '../../../kernels/index.js';

/** The gpu.js modes this backend runs on. webgpu runs inference only (see above). */
export type GpuMode = 'headlessgl' | 'webgpu' | 'webgl2' | 'webgl' | 'webasm' | 'cpu';
export const GPU_MODES: readonly GpuMode[] = ['headlessgl', 'webgpu', 'webgl2', 'webgl', 'webasm', 'cpu'];

/** The class gpu.js must have compiled for each mode: webasm can fall back to cpu without failing. */
const KERNEL_CLASS: Record<GpuMode, string> = {
  headlessgl: 'HeadlessGLKernel', webgpu: 'WebGPUKernel', webgl2: 'WebGL2Kernel', webgl: 'WebGLKernel', webasm: 'WebAssemblyKernel', cpu: 'CPUKernel',
};

export class GpuError extends FacenetError {}

/** The slice of gpu.js's API used here. A texture (GL), or a storage buffer read back by a promise (WebGPU). */
interface GpuJsTexture { toArray(): Float32Array | Promise<Float32Array>; delete(): void }
/** A kernel's output as a tensor holds it: a texture, webasm's typed array, or WebGPU's pending buffer. */
type DeviceValue = GpuJsTexture | Float32Array | Promise<GpuJsTexture>;
interface GpuJsKernel {
  (...args: unknown[]): unknown;
  kernel?: { constructor: { name: string }; fallbackReason?: string };
  destroy(removeCanvasReferences?: boolean): void;
}
interface GpuJsInstance {
  createKernel(fn: (...args: never[]) => number, settings: Record<string, unknown>): GpuJsKernel;
  destroy(): void;
}
interface GpuJsClass {
  new (settings: { mode: string }): GpuJsInstance;
  isHeadlessGLSupported: boolean;
  isWebGL2Supported: boolean;
  isWebGLSupported: boolean;
  isWebAssemblySupported: boolean;
  /** gpu.js 2.24: the API exists (navigator.gpu); isWebGPUAvailable() asks for an adapter. */
  isWebGPUSupported?: boolean;
  isWebGPUAvailable?: () => Promise<boolean>;
}

export interface DeviceCounters {
  /** Device buffers (textures) held by live tensors. */
  liveBuffers: number;
  /** Compiled kernels in the cache. */
  kernels: number;
  /** Kernels compiled since the device was opened (cache misses). */
  compiled: number;
  /** Kernel launches since the device was opened. */
  launches: number;
}

export interface OpenOptions {
  /** A gpu.js mode, or 'auto': headlessgl, else webasm in Node; webgpu, else webgl2, else webgl, else webasm in a browser. */
  mode?: GpuMode | 'auto';
  /** Compiled kernels kept (least recently used ones are destroyed). */
  maxKernels?: number;
  /** Told why 'auto' did not pick the first choice. */
  log?: (message: string) => void;
}

/** Which modes run here. WebGPU is asked for an adapter: the API can exist without one. */
export async function supportedModes(GPU: GpuJsClass): Promise<Record<GpuMode, boolean>> {
  let webgpu = false;
  if (GPU.isWebGPUSupported && GPU.isWebGPUAvailable) webgpu = await GPU.isWebGPUAvailable().catch(() => false);
  return {
    headlessgl: GPU.isHeadlessGLSupported, webgpu, webgl2: GPU.isWebGL2Supported, webgl: GPU.isWebGLSupported,
    webasm: GPU.isWebAssemblySupported, cpu: true,
  };
}

const UNAVAILABLE_HINT: Partial<Record<GpuMode, string>> = {
  headlessgl: ' (it needs the optional `gl` package built and an X display: run under `xvfb-run -a`)',
  webgpu: ' (it needs a browser with WebGPU and an adapter; headless Chromium needs --enable-unsafe-webgpu)',
};

/** Chooses a mode among the supported ones; explains a fallback through `log`. */
export function chooseMode(supported: Record<GpuMode, boolean>, requested: GpuMode | 'auto', inBrowser: boolean, log: (m: string) => void): GpuMode {
  if (requested !== 'auto') {
    if (!supported[requested]) {
      throw new GpuError('GPU_UNAVAILABLE', `gpu.js mode '${requested}' is not available here${UNAVAILABLE_HINT[requested] ?? ''}; use --backend gpu to pick the best available mode`);
    }
    return requested;
  }
  const order: GpuMode[] = inBrowser ? ['webgpu', 'webgl2', 'webgl', 'webasm'] : ['headlessgl', 'webasm'];
  const mode = order.find((m) => supported[m]) ?? 'cpu';
  if (mode !== order[0]) {
    const why = inBrowser
      ? 'WebGPU is not available in this browser (no navigator.gpu, or no adapter)'
      : 'headless-gl is not available (the optional `gl` package did not build, or there is no X display: run under `xvfb-run -a`)';
    log(`gpu: ${why}; using gpu.js '${mode}'`);
  }
  return mode;
}

/**
 * A compiled kernel and how many of its outputs are alive or still to be launched: GL reads a texture
 * through its kernel, so a kernel with live outputs is never evicted.
 */
interface CachedKernel { run: GpuJsKernel; liveOutputs: number }

const ASYNC_READ = 'gpu:webgpu computes asynchronously: read results with `await tensor.dataAsync()`. '
  + 'What reads values mid-graph (gradients, training-mode batchnorm, ops without a GPU kernel) cannot run on it: '
  + 'use gpu:webgl2, gpu:webasm or the CPU for those (the face pipeline runs its detectors on the CPU by itself)';

class DeviceBuffer implements DeviceData {
  private refs = 1;
  constructor(private readonly device: GpuDevice, private readonly kernel: CachedKernel, readonly value: DeviceValue, readonly length: number) {
    kernel.liveOutputs++;
  }
  get backend(): string {
    return `gpu:${this.device.mode}`;
  }
  read(): Float32Array {
    this.assertLive();
    if (this.value instanceof Promise) throw new GpuError('GPU_ASYNC', ASYNC_READ);
    if (this.value instanceof Float32Array) return this.value.slice();
    return this.trimmed(this.value.toArray() as Float32Array);
  }
  async readAsync(): Promise<Float32Array> {
    this.assertLive();
    if (!(this.value instanceof Promise)) return this.read();
    this.retain(); // a dispose while the read is in flight must not delete the buffer under it
    try {
      return this.trimmed(await (await this.value).toArray());
    } finally {
      this.release();
    }
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs > 0) return;
    if (this.value instanceof Promise) this.value.then((buffer) => buffer.delete(), () => {});
    else if (!(this.value instanceof Float32Array)) this.value.delete();
    this.kernel.liveOutputs--;
    this.device.bufferReleased();
  }
  private assertLive(): void {
    if (this.refs <= 0) throw new GpuError('INTERNAL', 'read of a released device buffer');
  }
  /** A 1-D output texture may be padded to its 2-D texture size. */
  private trimmed(values: Float32Array): Float32Array {
    return values.length === this.length ? values : values.slice(0, this.length);
  }
}

/** A kernel argument: a device buffer's value, or host values gpu.js uploads on the call. */
export type KernelArg = DeviceData | Float32Array;

export class GpuDevice {
  private readonly cache = new Map<string, CachedKernel>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private counters: DeviceCounters = { liveBuffers: 0, kernels: 0, compiled: 0, launches: 0 };
  private constructor(private readonly gpu: GpuJsInstance, readonly mode: GpuMode, private readonly maxKernels: number) {}

  static async open(options: OpenOptions = {}): Promise<GpuDevice> {
    let GPU: GpuJsClass;
    try {
      // In a browser, gpu.js's browser build (a <script>) defines the global GPU; in Node it is imported.
      const global = (globalThis as unknown as { GPU?: GpuJsClass }).GPU;
      const mod = global ? { GPU: global } : (await import('gpu.js')) as unknown as { GPU?: GpuJsClass; default?: { GPU: GpuJsClass } };
      GPU = (mod.GPU ?? mod.default?.GPU)!;
    } catch (e) {
      throw new GpuError('GPU_UNAVAILABLE', `gpu.js could not be loaded (${(e as Error).message}); reinstall with \`npm ci\``);
    }
    const inBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined';
    const mode = chooseMode(await supportedModes(GPU), options.mode ?? 'auto', inBrowser, options.log ?? ((m) => console.warn(m)));
    const maxKernels = options.maxKernels ?? (mode === 'headlessgl' || mode.startsWith('webgl') ? 160 : 400);
    return new GpuDevice(new GPU({ mode }), mode, maxKernels);
  }

  get name(): string {
    return `gpu:${this.mode}`;
  }

  stats(): DeviceCounters {
    return { ...this.counters, kernels: this.cache.size };
  }

  /** Runs a registered kernel; the result stays on the device. */
  run(name: KernelName, constants: Record<string, number>, args: readonly KernelArg[]): DeviceData {
    const def = KERNELS[name];
    const size = (def.outputSize as unknown as (c: Record<string, number>) => number)(constants);
    if (!(size >= 1 && Number.isSafeInteger(size))) throw new GpuError('INTERNAL', `${name}: output size ${size}`);
    // webasm computes indices in float32: beyond 2^24 they are no longer exact.
    if (size > 2 ** 24 || args.some((a) => length(a) > 2 ** 24)) {
      throw new GpuError('GPU_LIMIT', `${name}: tensors above 2^24 = 16,777,216 elements are not supported on the GPU backend (float32 indices); use a smaller batch`);
    }
    const values = args.map((a) => (a instanceof Float32Array ? a : (a.value as GpuJsTexture | Float32Array)));
    const kinds = values.map((v) => (v instanceof Float32Array ? 'a' : 't')).join('');
    const key = `${name}|${kinds}|${JSON.stringify(constants)}`;
    const cached = this.cache.get(key);
    if (cached) {
      this.cache.delete(key); // re-inserted: Map order is the LRU order
      this.cache.set(key, cached);
    }
    const kernel = cached ?? this.compile(key, name, size, constants);
    this.counters.launches++;
    let out: DeviceValue;
    if (this.isAsync) {
      out = this.launchWhenReady(name, kernel, args, !cached);
    } else {
      out = kernel.run(...values) as GpuJsTexture | Float32Array;
      if (!cached) this.assertMode(name, kernel.run);
    }
    this.counters.liveBuffers++;
    return new DeviceBuffer(this, kernel, out, size);
  }

  /** True on WebGPU: outputs are promises, and values can only be read with `dataAsync()`. */
  get isAsync(): boolean {
    return this.mode === 'webgpu';
  }

  /**
   * WebGPU: launches the kernel once its inputs' buffers exist (and it has compiled); returns the promise
   * of its output buffer. Inputs are held until the launch: a tensor disposed meanwhile keeps its buffer
   * that long. Host values are copied now, since the caller may reuse the array before the launch.
   * WebGPU runs submitted work in order, so a launch queued after its inputs' launches reads their results.
   */
  private launchWhenReady(name: KernelName, kernel: CachedKernel, args: readonly KernelArg[], firstRun: boolean): Promise<GpuJsTexture> {
    const held = args.filter((a): a is DeviceData => !(a instanceof Float32Array));
    held.forEach((b) => b.retain());
    kernel.liveOutputs++; // not evicted before it has run
    const values = args.map((a) => (a instanceof Float32Array ? a.slice() : a.value));
    const launched = Promise.all(values).then(async (ready) => {
      const out = (await kernel.run(...ready)) as GpuJsTexture;
      if (firstRun) this.assertMode(name, kernel.run);
      return out;
    }).finally(() => {
      kernel.liveOutputs--;
      held.forEach((b) => b.release());
    });
    // A failure is reported where the result (or a result computed from it) is read, not as unhandled here.
    this.inFlight.add(launched);
    launched.catch(() => {}).finally(() => this.inFlight.delete(launched));
    return launched;
  }

  /**
   * Resolves once every launch queued so far has been submitted and has let go of its inputs (WebGPU;
   * at once elsewhere): the counters are exact after it.
   */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Runs a kernel and reads its result back (for small results and gradients that go back to the tape). */
  runToHost(name: KernelName, constants: Record<string, number>, args: readonly KernelArg[]): Float32Array {
    return this.toHost(this.run(name, constants, args));
  }

  /** Reads a buffer back and releases it. */
  toHost(buffer: DeviceData): Float32Array {
    try {
      return buffer.read();
    } finally {
      buffer.release();
    }
  }

  bufferReleased(): void {
    this.counters.liveBuffers--;
  }

  destroy(): void {
    for (const k of this.cache.values()) k.run.destroy();
    this.cache.clear();
    this.gpu.destroy();
  }

  private compile(key: string, name: KernelName, size: number, constants: Record<string, number>): CachedKernel {
    this.evict();
    const run = this.gpu.createKernel(KERNELS[name].fn as (...args: never[]) => number, {
      output: [size], constants, precision: 'single', tactic: 'precision', pipeline: true, immutable: true,
    });
    this.counters.compiled++;
    const kernel = { run, liveOutputs: 0 };
    this.cache.set(key, kernel);
    return kernel;
  }

  /** Destroys least recently used kernels down to the bound, skipping any whose outputs are still alive. */
  private evict(): void {
    for (const [key, k] of this.cache) {
      if (this.cache.size < this.maxKernels) return;
      if (k.liveOutputs > 0) continue;
      this.cache.delete(key);
      k.run.destroy();
    }
  }

  /** After a kernel's first run: it must have compiled for our mode, not fallen back to another. */
  private assertMode(name: string, kernel: GpuJsKernel): void {
    const ran = kernel.kernel?.constructor.name;
    if (ran !== undefined && ran !== KERNEL_CLASS[this.mode]) {
      throw new GpuError('GPU_FALLBACK', `${name}: gpu.js ran ${ran} instead of ${KERNEL_CLASS[this.mode]}${kernel.kernel?.fallbackReason ? ` (${kernel.kernel.fallbackReason})` : ''}`);
    }
  }
}

function length(a: KernelArg): number {
  return a instanceof Float32Array ? a.length : (a as DeviceBuffer).length;
}
