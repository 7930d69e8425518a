/**
 * Open-set verification on Fashion-MNIST with FaceNet's recipe: a small Inception network trained with
 * triplet loss on classes 0-6 of the training split, evaluated on classes 7-9 of the test split, which it
 * never saw: 6,000 pairs (half same class, half different, fixed seed), 10-fold accuracy with the
 * threshold chosen on 9 folds. Prints progress, then as its last line one JSON object
 *   {"untrained": acc, "trained": acc, "seconds": s, ...}
 * Usage: npm run demo:fashion [-- --quick] [--steps N] [--mining batch-all|batch-hard|semi-hard|hard] [--lr X] [--k K]
 * Data: the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or --data DIR.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../src/autograd/tape.js';
import { tidy } from '../src/autograd/memory.js';
import { Tensor } from '../src/tensor/tensor.js';
import { readIdxImages, readIdxLabels, type IdxImages } from '../src/io/idx.js';
import { SmallInception } from '../src/models/small_inception.js';
import { tripletLoss } from '../src/losses/triplet.js';
import type { MiningMode } from '../src/losses/mining.js';
import { Adam, schedules } from '../src/train/optim.js';
import { PKSampler } from '../src/train/sampler.js';
import { train } from '../src/train/trainer.js';
import { tenFold, type ScoredPair } from '../src/face/evaluate.js';
import { distance } from '../src/face/pipeline.js';
import { Rng } from '../src/util/random.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => { const i = argv.indexOf(`--${name}`); return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback; };
const quick = argv.includes('--quick');
const steps = Number(arg('steps', quick ? '150' : '1800'));
const mining = arg('mining', 'batch-all') as MiningMode;
const dataDir = arg('data', '/usr/share/datasets/fashion-mnist');
const seed = Number(arg('seed', '1'));

for (const f of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']) {
  if (!existsSync(join(dataDir, f))) {
    console.error(`demo:fashion: ${join(dataDir, f)} not found. Install the data with: sudo apt-get install dataset-fashion-mnist (or pass --data DIR)`);
    process.exit(2);
  }
}

const trainImages = readIdxImages(join(dataDir, 'train-images-idx3-ubyte.gz'));
const trainLabels = readIdxLabels(join(dataDir, 'train-labels-idx1-ubyte.gz'));
const testImages = readIdxImages(join(dataDir, 't10k-images-idx3-ubyte.gz'));
const testLabels = readIdxLabels(join(dataDir, 't10k-labels-idx1-ubyte.gz'));

/** Images [N, 1, 28, 28] scaled to [0, 1] and standardized with the training mean/std. */
const MEAN = 0.286, STD = 0.353;
function batch(images: IdxImages, indices: number[]): Tensor {
  const px = images.rows * images.cols;
  const out = new Float32Array(indices.length * px);
  indices.forEach((idx, n) => { for (let p = 0; p < px; p++) out[n * px + p] = (images.data[idx * px + p]! / 255 - MEAN) / STD; });
  return new Tensor(out, [indices.length, 1, images.rows, images.cols]);
}

// Seen classes 0-6 (training split) for training; unseen classes 7-9 (test split) for evaluation.
const seen = Array.from(trainLabels.keys()).filter((i) => trainLabels[i]! <= 6);
const unseen = Array.from(testLabels.keys()).filter((i) => testLabels[i]! >= 7);

/** 6,000 pairs over the unseen test images: 3,000 same-class, 3,000 different-class, fixed seed. */
function makePairs(): [number, number, boolean][] {
  const rng = new Rng(2024);
  const byClass = new Map<number, number[]>();
  for (const i of unseen) { const l = testLabels[i]!; if (!byClass.has(l)) byClass.set(l, []); byClass.get(l)!.push(i); }
  const classes = [...byClass.keys()];
  const pairs: [number, number, boolean][] = [];
  while (pairs.length < 6000) {
    const same = pairs.length % 2 === 0;
    const c1 = rng.pick(classes);
    let c2 = c1;
    while (!same && c2 === c1) c2 = rng.pick(classes);
    const a = rng.pick(byClass.get(c1)!);
    let b = rng.pick(byClass.get(c2)!);
    while (b === a) b = rng.pick(byClass.get(c2)!);
    pairs.push([a, b, same]);
  }
  // Shuffle so that each of the 10 folds mixes same and different pairs.
  for (let i = pairs.length - 1; i > 0; i--) { const j = Math.floor(rng.next() * (i + 1)); [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!]; }
  return pairs;
}
const pairs = makePairs();

function verificationAccuracy(model: SmallInception): number {
  model.eval();
  const emb = new Map<number, Float32Array>();
  const ids = [...new Set(pairs.flatMap(([a, b]) => [a, b]))];
  for (let s = 0; s < ids.length; s += 500) {
    const chunk = ids.slice(s, s + 500);
    noGrad(() => tidy(() => {
      const out = model.forward(batch(testImages, chunk));
      const d = out.shape[1]!;
      chunk.forEach((id, n) => emb.set(id, Float32Array.from(out.data.subarray(n * d, (n + 1) * d))));
    }));
  }
  const scored: ScoredPair[] = pairs.map(([a, b, same]) => ({ distance: distance(emb.get(a)!, emb.get(b)!, 'squared-euclidean'), same }));
  return tenFold(scored).mean;
}

const t0 = performance.now();
const model = new SmallInception({ seed });
const untrained = verificationAccuracy(model);
console.log(`untrained (seed ${seed}): 10-fold verification accuracy on unseen classes 7-9 = ${untrained.toFixed(4)}`);

const P = 7, K = Number(arg('k', '8'));
const seenLabels = Int32Array.from(seen, (i) => trainLabels[i]!);
const sampler = new PKSampler(seenLabels, P, K, seed);
const optimizer = new Adam(model.parameters(), 1e-3);
const lastDiag: Record<string, unknown> = {};
const summary = train({
  model, optimizer, steps,
  schedule: schedules.cosine(Number(arg('lr', '5e-3')), steps, 1e-5, Math.min(20, Math.floor(steps / 10))),
  lossFn: () => {
    const { indices, labels } = sampler.next();
    const r = tripletLoss(model.forward(batch(trainImages, indices.map((i) => seen[i]!))), labels, { mining, margin: 0.2 });
    return { loss: r.loss, diagnostics: r.diagnostics as unknown as Record<string, unknown> };
  },
  logEvery: quick ? 10 : 25,
  log: ({ step, loss, lr, ms, diagnostics }) => {
    Object.assign(lastDiag, diagnostics);
    const d = diagnostics as { activeFraction: number; meanPositiveDistance: number; meanNegativeDistance: number; warning?: string } | undefined;
    console.log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}  active ${(d?.activeFraction ?? 0).toFixed(3)}  d+ ${(d?.meanPositiveDistance ?? 0).toFixed(3)}  d- ${(d?.meanNegativeDistance ?? 0).toFixed(3)}  ${ms.toFixed(0)} ms${d?.warning ? `  WARNING: ${d.warning}` : ''}`);
  },
});
const trained = verificationAccuracy(model);
const seconds = (performance.now() - t0) / 1000;
console.log(`trained ${summary.steps} steps (${summary.seconds.toFixed(1)} s of training): accuracy ${trained.toFixed(4)}`);
console.log(JSON.stringify({
  untrained: Number(untrained.toFixed(4)), trained: Number(trained.toFixed(4)), seconds: Number(seconds.toFixed(1)),
  train_seconds: Number(summary.seconds.toFixed(1)), steps: summary.steps, batch: `${P}x${K}`, mining, margin: 0.2,
  optimizer: 'adam', seed, pairs: pairs.length, protocol: 'train classes 0-6 (train split), 10-fold pair verification on classes 7-9 (test split)',
}));
