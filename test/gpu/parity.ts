/**
 * GPU-vs-CPU parity for the op zoo of src/autograd/cases.ts: each case's inputs in float32, run forward
 * and backward (with a fixed random output gradient) on the CPU and on the active GPU mode; reports the
 * largest absolute difference and that difference relative to the largest CPU value.
 * Used by test/gpu/gpu.test.ts and scripts/gpu_parity.ts (which prints the README's table).
 */
import { activeBackend, gpuDevice, useBackend, type BackendName } from '../../src/backends/backend.js';
import { makeCase } from '../../src/autograd/cases.js';
import { noGrad } from '../../src/autograd/tape.js';
import { cast } from '../../src/ops/elementwise.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/random.js';

/** Ops that have gpu.js kernels (forward and backward), by their gradcheck case names. */
export const GPU_OPS = [
  'conv2d', 'depthwise', 'dense', 'matmul', 'batchnorm', 'batchnorm-eval', 'channelaffine', 'lrn', 'maxpool', 'avgpool', 'l2pool', 'globalavgpool',
  'prelu', 'relu', 'leakyrelu', 'sigmoid', 'tanh', 'l2normalize', 'add', 'sub', 'mul', 'div', 'pad', 'concat', 'slice', 'inception',
] as const;

/**
 * The ops whose forward runs on WebGPU (asynchronous: no values on the host mid-graph). Training-mode
 * batchnorm reads its batch statistics back for the running averages, so it (and the inception case,
 * which contains it) is not among them.
 */
export const WEBGPU_FORWARD_OPS = GPU_OPS.filter((op) => op !== 'batchnorm' && op !== 'inception');

export interface ParityResult {
  op: string;
  description: string;
  /** max |gpu - cpu| over the output and every input gradient. */
  maxAbs: number;
  /** maxAbs / max(|cpu value|, 1e-3) (of the same tensor). */
  maxRel: number;
  /** Kernel launches on the device: 0 would mean the op silently ran on the host. */
  launches: number;
  /** Every tensor within |gpu - cpu| <= 1e-5 + 1e-4 * max |cpu|. */
  withinTolerance: boolean;
}

function run(op: string, seed: number): { out: Float32Array; grads: Float32Array[]; description: string } {
  const c = makeCase(op, seed);
  if (!c) throw new Error(`no case ${op}`);
  const inputs = c.inputs.map((t) => new Tensor(cast(t, 'float32').data, t.shape, { requiresGrad: true }));
  const out = c.fn(...inputs);
  const rng = new Rng(seed + 1000);
  const dy = new Float32Array(out.size).map(() => rng.uniform(-1, 1));
  out.backward(new Tensor(dy, out.shape));
  return { out: Float32Array.from(out.data), grads: inputs.map((t) => Float32Array.from(t.grad?.data ?? [])), description: c.description };
}

function compare(gpu: Float32Array, cpu: Float32Array): { abs: number; rel: number; ok: boolean } {
  let abs = 0, scale = 0;
  for (let i = 0; i < cpu.length; i++) {
    const d = Math.abs(gpu[i]! - cpu[i]!);
    abs = Number.isNaN(d) ? Infinity : Math.max(abs, d);
    scale = Math.max(scale, Math.abs(cpu[i]!));
  }
  if (gpu.length !== cpu.length) abs = Infinity;
  // A gradient that is exactly 0 in theory (a bias before a training-mode BN) is rounding noise on both sides.
  return { abs, rel: abs / Math.max(scale, 1e-3), ok: abs <= 1e-5 + 1e-4 * scale };
}

/** One case's output only, read back with dataAsync (the way to read an asynchronous device). */
async function runForward(op: string, seed: number): Promise<{ out: Float32Array; description: string }> {
  const c = makeCase(op, seed);
  if (!c) throw new Error(`no case ${op}`);
  const out = noGrad(() => c.fn(...c.inputs.map((t) => cast(t, 'float32'))));
  try {
    return { out: Float32Array.from(await out.dataAsync()), description: c.description };
  } finally {
    out.dispose();
  }
}

/** One case's forward on the CPU, then on `backend` (for webgpu, which runs no gradients); leaves `backend` active. */
export async function parityForward(op: string, seed: number, backend: BackendName): Promise<ParityResult> {
  await useBackend('cpu');
  const cpu = await runForward(op, seed);
  await useBackend(backend);
  const before = gpuDevice()!.stats().launches;
  const gpu = await runForward(op, seed);
  const launches = gpuDevice()!.stats().launches - before;
  const { abs, rel, ok } = compare(gpu.out, cpu.out);
  return { op, description: cpu.description, maxAbs: abs, maxRel: rel, launches, withinTolerance: ok };
}

/** One case on the CPU, then on `backend`; leaves `backend` active. */
export async function parity(op: string, seed: number, backend: BackendName): Promise<ParityResult> {
  await useBackend('cpu');
  const cpu = run(op, seed);
  await useBackend(backend);
  const before = gpuDevice()!.stats().launches;
  const gpu = run(op, seed);
  const launches = gpuDevice()!.stats().launches - before;
  let maxAbs = 0, maxRel = 0, withinTolerance = true;
  for (const [g, c] of [[gpu.out, cpu.out], ...gpu.grads.map((g, i) => [g, cpu.grads[i]!])] as [Float32Array, Float32Array][]) {
    const { abs, rel, ok } = compare(g, c);
    withinTolerance &&= ok;
    maxAbs = Math.max(maxAbs, abs);
    maxRel = Math.max(maxRel, rel);
  }
  if (!activeBackend().startsWith('gpu')) throw new Error('GPU backend not active');
  return { op, description: cpu.description, maxAbs, maxRel, launches, withinTolerance };
}
