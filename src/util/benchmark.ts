/**
 * Whole-model timing shared by `facenet bench` and `npm run bench` (which adds TF.js rows): the median of
 * timed runs after a warm-up, reported per image as ms, images/s and GFLOP/s (2 x MACs x images/s, MACs
 * counted by our ops). CPU rows (ours and, in `npm run bench`, TF.js's) get all their runs; GPU rows, which
 * may run on a CPU emulating a GPU at minutes a run, get fewer when slow (about 60 s each at most); every
 * row says how many.
 */
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { noGrad } from '../autograd/tape.js';
import { clearPool, tidy, tidyAndRecycle } from '../autograd/memory.js';
import { useBackend } from '../backends/backend.js';
import type { GpuMode } from '../backends/gpu/device.js';
import { setNumThreads } from '../backends/cpu/threads.js';
import { gemmFused, gemmKernel } from '../backends/cpu/gemm_fast.js';
import { buildModel, type AnyModel } from '../models/factory.js';
import { loadModelFile } from '../models/load.js';
import { fetchModel } from '../io/registry.js';
import { randn } from '../tensor/creation.js';
import { sum } from '../ops/reduce.js';
import type { Tensor } from '../tensor/tensor.js';
import { countMacs } from './flops.js';

export interface BenchRow {
  model: string;
  batch: number;
  /** facenet-cpu, facenet-cpu-train, facenet-gpu-MODE, tfjs-cpu, tfjs-wasm */
  backend: string;
  threads: number;
  ms_per_image: number;
  img_per_s: number;
  gflops: number;
  runs: number;
  /** headless-gl on Mesa's CPU rasterizer, or Chromium on SwiftShader: a CPU emulating a GPU. */
  software_gl?: boolean;
}

/** The models the benchmark knows, with their input sides. */
export const BENCH_MODELS: Record<string, [number, number]> = { 'nn4.small2': [96, 96], mobilefacenet: [112, 112], 'dlib-resnet34': [150, 150], 'inception-resnet-v1': [160, 160] };

/** The table's first line: the machine, Node, the date, and which float32 GEMM kernel runs. */
export function machineLine(): string {
  const kernel = gemmKernel() === 'js' ? 'TypeScript' : gemmFused() ? 'WebAssembly SIMD, fused multiply-add' : 'WebAssembly SIMD';
  return `facenet-ts benchmark: ${cpus()[0]?.model ?? 'cpu'} x ${availableParallelism()} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, GEMM: ${kernel}`;
}

export function formatHeader(): string {
  return `${'model'.padEnd(20)} ${'batch'.padStart(5)}  ${'backend'.padEnd(23)} ${'threads'.padStart(7)} ${'ms/image'.padStart(10)} ${'images/s'.padStart(9)} ${'GFLOP/s'.padStart(8)} ${'runs'.padStart(5)}`;
}

export function formatRow(r: BenchRow): string {
  const backend = r.backend + (r.software_gl ? '*' : '');
  return `${r.model.padEnd(20)} ${String(r.batch).padStart(5)}  ${backend.padEnd(23)} ${String(r.threads).padStart(7)} ${r.ms_per_image.toFixed(1).padStart(10)} ${r.img_per_s.toFixed(2).padStart(9)} ${r.gflops.toFixed(2).padStart(8)} ${String(r.runs).padStart(5)}`;
}

export const SOFTWARE_GL_NOTE = "* software GL: headless-gl on Mesa's CPU rasterizer (no GPU device under /dev/dri), or Chromium's SwiftShader; not a GPU";

/** Seconds a GPU row may take: slow ones get fewer runs. CPU rows pass Infinity: all their runs. */
export const ROW_SECONDS = 60;

/** How many of `runs` runs fit rowSeconds when one takes `warm` seconds (at least one). */
export const runsWithin = (warm: number, runs: number, rowSeconds = ROW_SECONDS): number => Math.max(1, Math.min(runs, Math.floor(rowSeconds / Math.max(warm, 1e-3))));

/**
 * Warm-up before a row's timed runs: fn runs until this much time has passed (at least once), so that
 * fast rows are timed warm (JIT tiers up, worker threads started: one warm-up run of a 25 ms batch-1
 * forward left them cold).
 */
const WARMUP_SECONDS = 0.5;

/** Median seconds of fn after the warm-up; fewer runs when they would take more than rowSeconds. */
export async function timeRuns(fn: () => Promise<void> | void, runs: number, rowSeconds = ROW_SECONDS): Promise<{ seconds: number; runs: number }> {
  const warmStart = performance.now();
  let warm: number;
  do {
    const start = performance.now();
    await fn();
    warm = (performance.now() - start) / 1000;
  } while ((performance.now() - warmStart) / 1000 < WARMUP_SECONDS);
  const n = runsWithin(warm, runs, rowSeconds);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    times.push((performance.now() - start) / 1000);
  }
  return { seconds: median(times), runs: n };
}

export const median = (v: number[]): number => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;

/** A model ready to time: random weights (speed does not depend on them), MobileFaceNet's real graph. */
export interface BenchModel {
  name: string;
  model: AnyModel;
  height: number;
  width: number;
  /** Multiply-adds of one image's forward pass. */
  macs: number;
}

export function benchModel(name: string): BenchModel {
  const size = BENCH_MODELS[name];
  if (!size) throw new Error(`unknown model ${name}; known: ${Object.keys(BENCH_MODELS).join(', ')}`);
  const [height, width] = size;
  const model = name === 'mobilefacenet' ? loadModelFile(fetchModel('mobilefacenet')).model : buildModel(name, { seed: 1 });
  model.eval();
  const macs = countMacs(() => tidy(() => { noGrad(() => model.forward(randn([1, 3, height, width], { seed: 1 }))); })).macs;
  return { name, model, height, width, macs };
}

export function benchRow(m: BenchModel, batch: number, backend: string, threads: number, t: { seconds: number; runs: number }, flopsPerMac = 2): BenchRow {
  return {
    model: m.name, batch, backend, threads, ms_per_image: (t.seconds * 1000) / batch, img_per_s: batch / t.seconds,
    gflops: (flopsPerMac * m.macs * batch) / t.seconds / 1e9, runs: t.runs,
  };
}

/** Without a render node, Mesa can only rasterize in software. */
export function softwareGl(): boolean {
  return !existsSync('/dev/dri') || !readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
}

/** The gpu.js modes that open here (headlessgl needs the optional gl package and a display, e.g. xvfb-run). */
export async function availableGpuModes(log: (line: string) => void): Promise<GpuMode[]> {
  const modes: GpuMode[] = [];
  for (const mode of ['headlessgl', 'webasm'] as const) {
    try {
      await useBackend(`gpu:${mode}`, { log: () => {} });
      modes.push(mode);
    } catch (e) {
      log(`(no facenet-gpu-${mode} rows: ${(e as Error).message})`);
    }
  }
  await useBackend('cpu');
  return modes;
}

export interface OurBackends {
  runs: number;
  /** CPU thread counts to time (e.g. [1, 2]); empty for no CPU rows. */
  threads: number[];
  gpuModes: GpuMode[];
}

/** Inference rows of our backends for one batch size. */
export async function benchInference(m: BenchModel, batch: number, o: OurBackends, report: (r: BenchRow) => void): Promise<void> {
  const x = randn([batch, 3, m.height, m.width], { seed: 2 });
  // Read the output back: on the GPU that is when the work is known to be done.
  const forward = (): void => { tidyAndRecycle(() => { (m.model.forward(x) as Tensor).data; return null; }); }; // as the pipeline embeds: buffers reused
  for (const threads of o.threads) {
    setNumThreads(threads);
    report(benchRow(m, batch, 'facenet-cpu', threads, await timeRuns(forward, o.runs, Infinity)));
  }
  for (const mode of o.gpuModes) {
    await useBackend(`gpu:${mode}`);
    const row = benchRow(m, batch, `facenet-gpu-${mode}`, 1, await timeRuns(forward, o.runs));
    report(mode === 'headlessgl' && softwareGl() ? { ...row, software_gl: true } : row);
    await useBackend('cpu');
  }
  x.dispose();
}

/**
 * Training-step rows (forward + backward of sum(output), batch 16; GFLOP/s counted as 3x the forward's) on
 * 1 thread and on all. Each step is timed alternately with an inference of the same batch, so that their
 * ratio is not skewed by the machine speeding up or slowing down over a long run (rows timed minutes apart
 * moved it by 0.2-0.3 here); `say` gets that ratio, the median of the per-pair ratios.
 */
export async function benchTraining(m: BenchModel, maxThreads: number, runs: number, report: (r: BenchRow) => void, say?: (line: string) => void): Promise<void> {
  const x = randn([16, 3, m.height, m.width], { seed: 3 });
  clearPool(); // as in a process training this model: the pool holds its own steps' arrays
  const infer = (): void => { m.model.eval(); tidyAndRecycle(() => { (m.model.forward(x) as Tensor).data; return null; }); };
  // As the trainer takes its steps: each step's arrays reused by the next.
  const step = (): void => { m.model.train(); tidyAndRecycle(() => { m.model.zeroGrad(); sum(m.model.forward(x) as Tensor).backward(); }, { training: true }); };
  for (const threads of new Set([1, maxThreads])) {
    setNumThreads(threads);
    const t = timeAlternately(infer, step, runs);
    report(benchRow(m, 16, 'facenet-cpu-train', threads, { seconds: t.b, runs: t.runs }, 6));
    say?.(`  (${m.name}: training step / inference of batch 16 on ${threads} thread${threads > 1 ? 's' : ''}, timed alternately: ${t.ratio.toFixed(2)}x)`);
  }
  m.model.zeroGrad();
  m.model.eval();
  x.dispose();
  clearPool();
}

/** Median seconds of a and of b, run alternately after one warm-up each, and the median of b/a per pair. */
function timeAlternately(a: () => void, b: () => void, runs: number): { a: number; b: number; ratio: number; runs: number } {
  const time = (fn: () => void): number => { const start = performance.now(); fn(); return (performance.now() - start) / 1000; };
  time(a); time(b); // warm-up
  const ta: number[] = [], tb: number[] = [];
  for (let i = 0; i < runs; i++) { ta.push(time(a)); tb.push(time(b)); }
  return { a: median(ta), b: median(tb), ratio: median(tb.map((v, i) => v / ta[i]!)), runs };
}
