/**
 * Which backend the ops run on. The CPU backend is the default and needs nothing; the GPU backend
 * (gpu.js) is loaded on demand by useBackend('gpu'), which is async because loading gpu.js is.
 * Ops ask gpuFor(...inputs): the open GPU device when the GPU backend is active and every input is
 * float32 (the GPU computes in float32 only; float64 gradient checks always run on the CPU).
 */
import { ArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { GPU_MODES, GpuDevice, type GpuMode, type OpenOptions } from './gpu/device.js';

export type BackendName = 'cpu' | 'gpu' | `gpu:${GpuMode}`;

let device: GpuDevice | null = null;
let active: 'cpu' | 'gpu' = 'cpu';

/**
 * Switches the backend; returns what actually runs ('cpu', 'gpu:headlessgl', 'gpu:webasm', ...).
 * 'gpu' picks the best gpu.js mode available (and says why when it falls back); 'gpu:MODE' insists.
 */
export async function useBackend(name: BackendName, options: Omit<OpenOptions, 'mode'> = {}): Promise<string> {
  if (name === 'cpu') {
    active = 'cpu';
    return 'cpu';
  }
  const mode = name === 'gpu' ? 'auto' : name.slice(4);
  if (mode !== 'auto' && !GPU_MODES.includes(mode as GpuMode)) {
    throw new ArgumentError('useBackend', `unknown backend '${name}'; use cpu, gpu, or gpu:MODE with MODE one of ${GPU_MODES.join(', ')}`);
  }
  if (!device || (mode !== 'auto' && device.mode !== mode)) {
    device?.destroy();
    device = null;
    device = await GpuDevice.open({ ...options, mode: mode as GpuMode | 'auto' });
  }
  active = 'gpu';
  return device.name;
}

/** The backend ops run on now: 'cpu' or 'gpu:MODE'. */
export function activeBackend(): string {
  return active === 'gpu' && device ? device.name : 'cpu';
}

/** The GPU device when ops on these inputs should run on it. */
export function gpuFor(...inputs: readonly (Tensor | null | undefined)[]): GpuDevice | null {
  if (active !== 'gpu' || !device) return null;
  return inputs.every((t) => !t || t.dtype === 'float32') ? device : null;
}

/**
 * Runs fn where values can be read synchronously: on the active backend, or on the CPU while the active
 * device is asynchronous (WebGPU), for code that reads values mid-graph (the face detectors).
 */
export function synchronously<T>(fn: () => T): T {
  if (active !== 'gpu' || !device?.isAsync) return fn();
  active = 'cpu';
  try {
    return fn();
  } finally {
    active = 'gpu';
  }
}

/** The open GPU device (for its counters), or null. */
export function gpuDevice(): GpuDevice | null {
  return device;
}

/** Back to the CPU, and the GPU device's kernels and context freed. */
export function closeGpu(): void {
  device?.destroy();
  device = null;
  active = 'cpu';
}
