/**
 * `npm run bench`: whole-model inference speed of the facenet-ts CPU backend (1 thread and all threads)
 * and GPU backend (every gpu.js mode that runs here: headlessgl, webasm) against TF.js's cpu and wasm
 * backends, same networks and weights, in the same run; plus a training step per image on the CPU. Our own
 * rows come from src/util/benchmark.ts (also behind `facenet bench`); this script adds the TF.js rows, whose
 * packages are devDependencies. headlessgl without a GPU device (/dev/dri) is Mesa's software rasterizer:
 * those rows are marked software GL. `facenet-gpu-browser` (not in the default set: slow without a GPU)
 * adds the browser-only modes, webgpu and webgl2, timed in headless Chromium (bench/browser.ts).
 *   npm run bench [-- --json] [--model nn4.small2,inception-resnet-v1,mobilefacenet,dlib-resnet34]
 *                 [--runs 5] [--backends facenet-cpu,facenet-gpu,facenet-gpu-browser,tfjs-cpu,tfjs-wasm]
 *                 [--batches 1,16] [--ops]
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import type { Tensor } from '../src/index.js';
import { fetchModel } from '../src/io/registry.js';
import { getNumThreads, setNumThreads, shutdownThreads } from '../src/backends/cpu/threads.js';
import { closeGpu } from '../src/backends/backend.js';
import {
  availableGpuModes, benchInference, benchModel, benchRow, benchTraining, BENCH_MODELS, formatHeader, formatRow, machineLine,
  softwareGl, SOFTWARE_GL_NOTE, timeRuns, type BenchModel, type BenchRow,
} from '../src/util/benchmark.js';
import { irv1Tfjs, nn4Tfjs, resnet34Tfjs } from './tfjs_models.js';
import { runOpBench } from './ops.js';
import { benchBrowserGpu } from './browser.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => { const i = argv.indexOf(`--${name}`); return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback; };
if (argv.includes('--ops')) { runOpBench(); process.exit(0); }
const json = argv.includes('--json');
const runs = Number(arg('runs', '5'));
const models = arg('model', Object.keys(BENCH_MODELS).join(',')).split(',');
const backends = arg('backends', 'facenet-cpu,facenet-gpu,tfjs-cpu,tfjs-wasm').split(',');
const batches = arg('batches', '1,16').split(',').map(Number);
const maxThreads = Math.max(1, getNumThreads());

const report = (r: BenchRow): void => console.log(json ? JSON.stringify(r) : formatRow(r));

async function benchAll(name: string, gpuModes: Awaited<ReturnType<typeof availableGpuModes>>): Promise<void> {
  const m = benchModel(name);
  const threads = backends.includes('facenet-cpu') ? [...new Set([1, maxThreads])] : [];
  for (const batch of batches) {
    await benchInference(m, batch, { runs, threads, gpuModes }, report);
    setNumThreads(maxThreads);
    for (const backend of backends.filter((b) => b.startsWith('tfjs-'))) await benchTfjs(m, batch, backend, report);
  }
  if (backends.includes('facenet-cpu') && name !== 'mobilefacenet') await benchTraining(m, maxThreads, runs, report, json ? undefined : (line) => console.log(line));
}

/** The same network and weights on TF.js (NHWC input). */
async function benchTfjs(m: BenchModel, batch: number, backend: string, out: (r: BenchRow) => void): Promise<void> {
  await tf.setBackend(backend === 'tfjs-cpu' ? 'cpu' : 'wasm');
  await tf.ready();
  const fn = await tfjsForward(m.name, m.model.stateDict());
  const xt = tf.tensor4d(Float32Array.from({ length: batch * m.height * m.width * 3 }, (_, i) => Math.sin(i)), [batch, m.height, m.width, 3]);
  out(benchRow(m, batch, backend, 1, await timeRuns(async () => { const y = fn(xt); await y.data(); y.dispose(); }, runs, Infinity)));
  xt.dispose();
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

const require = createRequire(import.meta.url);
setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
const gpuModes = backends.includes('facenet-gpu') ? await availableGpuModes((line) => { if (!json) console.log(line); }) : [];
if (!json) {
  console.log(machineLine());
  console.log(formatHeader());
}
for (const name of models) await benchAll(name, gpuModes);
let softwareRows = gpuModes.includes('headlessgl') && softwareGl();
if (backends.includes('facenet-gpu-browser')) {
  const say = (line: string): void => { if (!json) console.log(line); };
  await benchBrowserGpu(models.filter((n) => n !== 'mobilefacenet').map(benchModel), batches, runs, (r) => { softwareRows ||= r.software_gl === true; report(r); }, say);
}
if (!json && softwareRows) console.log(SOFTWARE_GL_NOTE);
closeGpu();
shutdownThreads();
