/**
 * Soak test: embeds many generated images and samples RSS, heap and live tensors, to show that memory is
 * flat after warm-up. Two phases: the full pipeline (detect + landmarks + align + embed) on bbt faces
 * pasted at random positions/scales on random backgrounds, and the embedding model alone on generated
 * aligned crops (--aligned count). Prints a table of samples and, last, one JSON summary line.
 * On the GPU backend (--backend gpu:webasm, gpu:headlessgl...) each sample also records the device's live
 * buffers (textures) and cached kernels.
 * Usage: npm run soak [-- --quick] [--aligned N] [--full N] [--backend cpu|gpu|gpu:MODE] [--model ID | --random-weights ARCH]
 * --random-weights writes a randomly initialized model of that architecture (e.g. nn4.small2, whose real
 * weights are incomplete) to a temporary file and soaks it: weights do not matter for memory.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createPipeline } from '../src/face/pipeline.js';
import { decodeImage, type RgbImage } from '../src/io/image.js';
import { warpAffine } from '../src/io/transform.js';
import { liveTensors } from '../src/autograd/memory.js';
import { Rng } from '../src/util/random.js';
import { buildModel } from '../src/models/factory.js';
import { saveCheckpoint } from '../src/train/checkpoint.js';
import { gpuDevice, type BackendName } from '../src/backends/backend.js';

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : undefined; };
const quick = argv.includes('--quick');
const alignedCount = Number(option('aligned') ?? (quick ? 300 : 10000));
const fullCount = Number(option('full') ?? (quick ? 20 : 300));
const backend = (option('backend') ?? 'cpu') as BackendName;
const randomArchitecture = option('random-weights');
const model = randomArchitecture ? randomModelFile(randomArchitecture) : option('model');
const shared = resolve(process.env.FACENET_SHARED ?? join(process.cwd(), '..', 'shared'));

function randomModelFile(architecture: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'facenet-soak-')), `${architecture}-random.safetensors`);
  saveCheckpoint(file, buildModel(architecture), null, { step: 0 }, { architecture });
  return file;
}

const faces: RgbImage[] = [];
for (const id of readdirSync(join(shared, 'faces', 'bbt')).filter((d) => d !== 'LICENSE')) {
  for (const f of readdirSync(join(shared, 'faces', 'bbt', id))) faces.push(decodeImage(readFileSync(join(shared, 'faces', 'bbt', id, f))));
}
const rng = new Rng(42);

function scene(): RgbImage {
  const W = 320, H = 240;
  const bg = Math.floor(rng.uniform(40, 200));
  const face = rng.pick(faces);
  const s = rng.uniform(0.8, 1.3);
  const x = rng.uniform(0, W - face.width * s), y = rng.uniform(0, H - face.height * s);
  const img = warpAffine(face, [1 / s, 0, -x / s, 0, 1 / s, -y / s], W, H);
  for (let p = 0; p < W * H; p++) if (img.data[p * 3] === 0 && img.data[p * 3 + 1] === 0 && img.data[p * 3 + 2] === 0) img.data.fill(bg, p * 3, p * 3 + 3);
  return img;
}

function crop(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng.next() * 256);
  return { data, width, height };
}

const started = performance.now();
interface Sample { phase: string; done: number; rssMB: number; heapMB: number; liveTensors: number; liveBuffers?: number; kernels?: number }
const samples: Sample[] = [];
const sample = (phase: string, done: number): void => {
  // With --expose-gc, collect first: the samples then show memory that is kept, not when V8 last collected.
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const device = gpuDevice()?.stats();
  const s: Sample = { phase, done, rssMB: Math.round(m.rss / 2 ** 20), heapMB: Math.round(m.heapUsed / 2 ** 20), liveTensors: liveTensors() };
  if (device) Object.assign(s, { liveBuffers: device.liveBuffers, kernels: device.kernels });
  samples.push(s);
  const gpu = device ? `  live buffers ${device.liveBuffers}  kernels ${device.kernels}` : '';
  const elapsed = ((performance.now() - started) / 1000).toFixed(0).padStart(6);
  console.log(`${phase.padEnd(8)} ${String(done).padStart(6)} ${elapsed} s  rss ${String(s.rssMB).padStart(5)} MB  heap ${String(s.heapMB).padStart(5)} MB  live tensors ${s.liveTensors}${gpu}`);
};

const pipeline = await createPipeline({ from: join(shared, 'weights'), backend, ...(model ? { model } : {}), log: (m) => console.log(m) });
console.log(`backend: ${pipeline.backend}, model: ${pipeline.model}`);
const t0 = performance.now();
let found = 0;
for (let i = 0; i < fullCount; i++) {
  const img = scene();
  found += (await pipeline.embed({ ...img, channels: 3 }, { pick: 'largest' })).length;
  if (i % Math.max(1, Math.floor(fullCount / 10)) === 0 || i === fullCount - 1) sample('pipeline', i + 1);
}
for (let i = 0; i < alignedCount; i += 16) {
  const batch = Array.from({ length: Math.min(16, alignedCount - i) }, () => crop(pipeline.spec.inputSize[1], pipeline.spec.inputSize[0]));
  await pipeline.run(batch);
  if ((i / 16) % Math.max(1, Math.floor(alignedCount / 16 / 20)) === 0 || i + 16 >= alignedCount) sample('aligned', Math.min(i + 16, alignedCount));
}
const after = samples.filter((s) => s.phase === 'aligned');
const warm = after[Math.min(2, after.length - 1)]!;
const last = after.at(-1)!;
// Growth is judged on the lowest of the last three samples: a leak raises every later sample, while a
// one-off spike (a large transient buffer the allocator has not returned yet) raises one.
const settledRssMB = Math.min(...after.slice(-3).map((s) => s.rssMB));
console.log(JSON.stringify({
  backend: pipeline.backend, model: pipeline.model, full_pipeline_images: fullCount, faces_found: found, aligned_images: alignedCount, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
  live_tensors_first: samples[0]!.liveTensors, live_tensors_last: last.liveTensors,
  rss_mb_after_warmup: warm.rssMB, rss_mb_last: last.rssMB, rss_growth_mb: settledRssMB - warm.rssMB,
  ...(last.liveBuffers === undefined ? {} : {
    live_buffers_after_warmup: warm.liveBuffers, live_buffers_last: last.liveBuffers, kernels_after_warmup: warm.kernels, kernels_last: last.kernels,
  }),
}));
