/**
 * `npm run bench`: whole-model inference speed of the facenet-ts CPU backend (1 thread and all threads)
 * and GPU backend (every gpu.js mode that runs here: headlessgl, webasm) against TF.js's cpu and wasm
 * backends, same networks and weights, in the same run. headlessgl without a GPU device (/dev/dri) is
 * Mesa's software rasterizer: those rows are marked software GL. For each model and
 * batch (1: latency, 16: throughput): median of the timed runs after a warm-up, as ms/image, images/s and
 * GFLOP/s (2 x MACs x images/s, MACs counted by our ops). Also the cost of a training step
 * (forward + backward) per image. Slow combinations get fewer runs (at most ~60 s each); the table shows
 * how many.
 *   npm run bench [-- --json] [--model nn4.small2,inception-resnet-v1,mobilefacenet,dlib-resnet34]
 *                 [--runs 5] [--backends facenet-cpu,facenet-gpu,tfjs-cpu,tfjs-wasm] [--batches 1,16] [--ops]
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import { noGrad, randn, sum, tidy, type Tensor } from '../src/index.js';
import { buildModel } from '../src/models/factory.js';
import { loadModelFile } from '../src/models/load.js';
import { fetchModel } from '../src/io/registry.js';
import { countMacs } from '../src/util/flops.js';
import { getNumThreads, setNumThreads, shutdownThreads } from '../src/backends/cpu/threads.js';
import { closeGpu, useBackend } from '../src/backends/backend.js';
import { GPU_MODES, type GpuMode } from '../src/backends/gpu/device.js';
import { irv1Tfjs, nn4Tfjs, resnet34Tfjs } from './tfjs_models.js';
import { runOpBench } from './ops.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => { const i = argv.indexOf(`--${name}`); return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback; };
if (argv.includes('--ops')) { runOpBench(); process.exit(0); }
const json = argv.includes('--json');
const runs = Number(arg('runs', '5'));
const models = arg('model', 'nn4.small2,mobilefacenet,dlib-resnet34,inception-resnet-v1').split(',');
const backends = arg('backends', 'facenet-cpu,facenet-gpu,tfjs-cpu,tfjs-wasm').split(',');
const batches = arg('batches', '1,16').split(',').map(Number);
const maxThreads = Math.max(1, getNumThreads());

interface Row { model: string; batch: number; backend: string; threads: number; ms_per_image: number; img_per_s: number; gflops: number; runs: number; software_gl?: boolean }
const rows: Row[] = [];

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median seconds of fn after one warm-up; fewer runs when one run is slow (cap ~60 s). */
async function time(fn: () => Promise<void> | void): Promise<{ seconds: number; runs: number }> {
  const t = performance.now();
  await fn();
  const warm = (performance.now() - t) / 1000;
  const n = Math.max(1, Math.min(runs, Math.floor(60 / Math.max(warm, 1e-3))));
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await fn();
    times.push((performance.now() - s) / 1000);
  }
  return { seconds: median(times), runs: n };
}

function report(r: Row): void {
  rows.push(r);
  if (json) console.log(JSON.stringify(r));
  else console.log(`${r.model.padEnd(20)} ${String(r.batch).padStart(5)}  ${(r.backend + (r.software_gl ? '*' : '')).padEnd(23)} ${String(r.threads).padStart(7)} ${r.ms_per_image.toFixed(1).padStart(10)} ${r.img_per_s.toFixed(2).padStart(9)} ${r.gflops.toFixed(2).padStart(8)} ${String(r.runs).padStart(5)}`);
}

const SIZES: Record<string, [number, number]> = { 'nn4.small2': [96, 96], 'inception-resnet-v1': [160, 160], mobilefacenet: [112, 112], 'dlib-resnet34': [150, 150] };

async function benchModel(name: string): Promise<void> {
  const [H, W] = SIZES[name]!;
  const ours = name === 'mobilefacenet' ? loadModelFile(fetchModel('mobilefacenet')).model : buildModel(name, { seed: 1 });
  ours.eval();
  const forward = (x: Tensor): void => { tidy(() => { noGrad(() => ours.forward(x)); }); };
  const macs = countMacs(() => tidy(() => { noGrad(() => ours.forward(randn([1, 3, H, W], { seed: 1 }))); })).macs;
  const row = (batch: number, backend: string, threads: number, t: { seconds: number; runs: number }): Row =>
    ({ model: name, batch, backend, threads, ms_per_image: (t.seconds * 1000) / batch, img_per_s: batch / t.seconds, gflops: (2 * macs * batch) / t.seconds / 1e9, runs: t.runs });

  for (const batch of batches) {
    const x = randn([batch, 3, H, W], { seed: 2 });
    if (backends.includes('facenet-cpu')) {
      for (const threads of [...new Set([1, maxThreads])]) {
        setNumThreads(threads);
        report(row(batch, 'facenet-cpu', threads, await time(() => forward(x))));
      }
      setNumThreads(maxThreads);
    }
    for (const mode of backends.includes('facenet-gpu') ? gpuModes : []) {
      await useBackend(`gpu:${mode}`);
      const read = (): void => { tidy(() => { noGrad(() => (ours.forward(x) as Tensor).data); }); }; // read back: the work is done
      report({ ...row(batch, `facenet-gpu-${mode}`, 1, await time(read)), ...(mode === 'headlessgl' && softwareGl ? { software_gl: true } : {}) });
      await useBackend('cpu');
    }
    for (const backend of backends.filter((b) => b.startsWith('tfjs-'))) {
      await tf.setBackend(backend === 'tfjs-cpu' ? 'cpu' : 'wasm');
      await tf.ready();
      const fn = await tfjsForward(name, ours.stateDict());
      const xt = tf.tensor4d(Float32Array.from({ length: batch * H * W * 3 }, (_, i) => Math.sin(i)), [batch, H, W, 3]);
      report(row(batch, backend, 1, await time(async () => { const y = fn(xt); await y.data(); y.dispose(); })));
      xt.dispose();
    }
  }
  if (backends.includes('facenet-cpu') && name !== 'mobilefacenet') {
    // Training step: forward + backward of a batch of 16 in training mode, per image.
    ours.train();
    const x = randn([16, 3, H, W], { seed: 3 });
    const t = await time(() => { tidy(() => { ours.zeroGrad(); sum(ours.forward(x) as Tensor).backward(); }); });
    report({ ...row(16, 'facenet-cpu', maxThreads, t), backend: 'facenet-cpu-train', gflops: (2 * 3 * macs * 16) / t.seconds / 1e9 });
    ours.zeroGrad();
    ours.eval();
  }
}

let graphCache: tf.InferenceModel | null = null;
async function tfjsForward(name: string, sd: Map<string, Tensor>): Promise<(x: tf.Tensor4D) => tf.Tensor> {
  if (name === 'nn4.small2') return nn4Tfjs(sd);
  if (name === 'inception-resnet-v1') return irv1Tfjs(sd);
  if (name === 'dlib-resnet34') return resnet34Tfjs(sd);
  // MobileFaceNet: the original TF.js graph (its files sit in the registry's source cache).
  const dir = dirname(fetchModel('mobilefacenet')).replace(/models$/, join('sources', 'mobilefacenet'));
  const modelJson = JSON.parse(readFileSync(join(dir, 'mobilefacenet.json'), 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  const bin = readFileSync(join(dir, 'mobilefacenet.bin'));
  graphCache = await loadGraphModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest.flatMap((g) => g.weights), weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) }));
  const g = graphCache;
  return (x) => tf.tidy(() => g.predict(tf.div(x, 255), {}) as tf.Tensor);
}

/** The gpu.js modes that open here (headlessgl needs the optional gl package and a display, e.g. xvfb-run). */
async function availableGpuModes(): Promise<GpuMode[]> {
  const modes: GpuMode[] = [];
  for (const mode of ['headlessgl', 'webasm'] as const) {
    try {
      await useBackend(`gpu:${mode}`, { log: () => {} });
      modes.push(mode);
    } catch (e) {
      if (!json) console.log(`(no facenet-gpu-${mode} rows: ${(e as Error).message})`);
    }
  }
  await useBackend('cpu');
  return modes.filter((m) => GPU_MODES.includes(m));
}
/** Without a render node, Mesa can only rasterize in software. */
const softwareGl = !existsSync('/dev/dri') || !readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
const gpuModes = backends.includes('facenet-gpu') ? await availableGpuModes() : [];

const require = createRequire(import.meta.url);
setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
if (!json) {
  console.log(`facenet-ts benchmark: ${cpus()[0]?.model ?? 'cpu'} x ${availableParallelism()} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
  console.log(`${'model'.padEnd(20)} ${'batch'.padStart(5)}  ${'backend'.padEnd(23)} ${'threads'.padStart(7)} ${'ms/image'.padStart(10)} ${'images/s'.padStart(9)} ${'GFLOP/s'.padStart(8)} ${'runs'.padStart(5)}`);
}
for (const m of models) {
  if (!SIZES[m]) throw new Error(`unknown model ${m}; known: ${Object.keys(SIZES).join(', ')}`);
  await benchModel(m);
}
if (!json && gpuModes.includes('headlessgl') && softwareGl) console.log('* software GL: headless-gl on Mesa\'s CPU rasterizer (no GPU device under /dev/dri), not a GPU');
closeGpu();
shutdownThreads();
