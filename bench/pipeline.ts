/**
 * `npm run bench:pipeline`: the face pipeline's time per photo (decode, detect, 68 landmarks, align, embed)
 * with the default models, on a folder of photos (default: the OpenFace example photos in
 * FACENET_SHARED), once the models are loaded and warm. Rows:
 *   1 thread                 everything on the calling thread
 *   N threads                the networks' products split over N threads (FACENET_THREADS)
 *   N-1 threads + read-ahead the CLI's setting: files decoded on a worker thread (pipeline.readAhead) while
 *                            the networks run on the other threads
 * and, on one thread, the time of each stage. Median of --runs passes over the folder.
 *   npm run bench:pipeline [-- --photos DIR] [--runs 5] [--json]
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createPipeline, type FacePipeline } from '../src/face/pipeline.js';
import { readImage, type RgbImage } from '../src/io/image.js';
import { getNumThreads, setNumThreads } from '../src/backends/cpu/threads.js';
import { machineLine, median } from '../src/util/benchmark.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => { const i = argv.indexOf(`--${name}`); return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback; };
const shared = resolve(process.env.FACENET_SHARED ?? join(process.cwd(), '..', 'shared'));
const dir = arg('photos', join(shared, 'faces', 'openface-examples', 'raw'));
const runs = Number(arg('runs', '5'));
const json = argv.includes('--json');
if (!existsSync(dir)) throw new Error(`no folder ${dir}: pass --photos DIR, or set FACENET_SHARED to the shared data (faces/openface-examples/raw)`);
const photos = readdirSync(dir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => join(dir, f));
if (photos.length === 0) throw new Error(`no PNG or JPEG photos in ${dir} (--photos DIR, or set FACENET_SHARED)`);

const pixels = (img: RgbImage): RgbImage & { channels: 3 } => ({ ...img, channels: 3 });

/** ms per photo of one pass over the folder, each photo embedded from its file. */
async function pass(p: FacePipeline, readAhead: boolean): Promise<number> {
  if (readAhead) p.readAhead(photos);
  const t = performance.now();
  for (const f of photos) await p.embed(f);
  const ms = (performance.now() - t) / photos.length;
  p.readAhead([]);
  return ms;
}

async function rowFor(p: FacePipeline, label: string, threads: number, readAhead: boolean): Promise<{ setting: string; ms: number }> {
  setNumThreads(threads);
  await pass(p, readAhead); // warm-up: this setting's workers, buffers and code paths
  const times: number[] = [];
  for (let r = 0; r < runs; r++) times.push(await pass(p, readAhead));
  return { setting: label, ms: median(times) };
}

/** On one thread: ms per photo decoding, detecting (with landmarks), and aligning + embedding. */
async function stages(p: FacePipeline): Promise<Record<string, number>> {
  setNumThreads(1);
  const per: Record<string, number[]> = { decode: [], detect: [], 'align+embed': [] };
  for (let r = 0; r <= runs; r++) {
    let decode = 0, detect = 0, embed = 0;
    for (const f of photos) {
      let t = performance.now();
      const img = pixels(readImage(f));
      decode += performance.now() - t;
      t = performance.now();
      await p.detect(img);
      detect += performance.now() - t;
      t = performance.now();
      await p.embed(img); // detects again, then aligns and embeds
      embed += performance.now() - t;
    }
    if (r === 0) continue; // warm-up
    per.decode!.push(decode / photos.length);
    per.detect!.push(detect / photos.length);
    per['align+embed']!.push((embed - detect) / photos.length);
  }
  return Object.fromEntries(Object.entries(per).map(([k, v]) => [k, median(v)]));
}

const p = await createPipeline({ from: process.env.FACENET_WEIGHTS_MIRROR ?? join(shared, 'weights') });
const all = Math.max(1, getNumThreads());
const settings: [string, number, boolean][] = [['1 thread', 1, false]];
if (all > 1) settings.push([`${all} threads`, all, false], [`${all - 1} thread${all > 2 ? 's' : ''} + read-ahead`, all - 1, true]);
const rows = [];
for (const [label, threads, readAhead] of settings) rows.push(await rowFor(p, label, threads, readAhead));
const perStage = await stages(p);
setNumThreads(all);
if (json) {
  for (const r of rows) console.log(JSON.stringify({ photos: photos.length, setting: r.setting, ms_per_photo: +r.ms.toFixed(1), photos_per_s: +(1000 / r.ms).toFixed(2) }));
  console.log(JSON.stringify({ photos: photos.length, setting: '1 thread, by stage', ...Object.fromEntries(Object.entries(perStage).map(([k, v]) => [`${k}_ms`, +v.toFixed(1)])) }));
} else {
  console.log(machineLine());
  console.log(`${photos.length} photos from ${dir}, median of ${runs} passes, models loaded and warm`);
  console.log(`${'setting'.padEnd(26)} ${'ms/photo'.padStart(9)} ${'photos/s'.padStart(9)}`);
  for (const r of rows) console.log(`${r.setting.padEnd(26)} ${r.ms.toFixed(1).padStart(9)} ${(1000 / r.ms).toFixed(2).padStart(9)}`);
  console.log(`1 thread by stage (ms/photo): ${Object.entries(perStage).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
}
process.exit(0);
