/**
 * `facenet train --data DIR --model ARCH --loss triplet --mining semi-hard ...`: trains an embedding model
 * on a folder of aligned face crops (DIR/<identity>/<images>), resized to the model input, with P x K
 * batches, the chosen loss and optimizer; checkpoints go to --out (atomic; --resume continues).
 * Progress lines (loss, active fraction, distances, warnings) go to stderr; the summary is JSON on stdout.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { FacenetError } from '../errors.js';
import { readImage, type RgbImage } from '../io/image.js';
import { imagesToTensor, resizeBilinear } from '../io/transform.js';
import { buildModel, defaultVariant } from '../models/factory.js';
import { MODEL_SPECS } from '../models/specs.js';
import type { Tensor } from '../tensor/tensor.js';
import { randn } from '../tensor/creation.js';
import { Module } from '../nn/module.js';
import { tripletLoss } from '../losses/triplet.js';
import type { MiningMode } from '../losses/mining.js';
import { arcFaceLoss, cosFaceLoss, sphereFaceLoss } from '../losses/margin_softmax.js';
import { Adam, AdaGrad, SGD, schedules, type Optimizer } from '../train/optim.js';
import { PKSampler } from '../train/sampler.js';
import { train } from '../train/trainer.js';
import { formatHelp, numberOption, parseArgs, UsageError, type OptionSpec } from './args.js';
import { listGallery } from './files.js';
import type { Out } from './common.js';

const SPEC: Record<string, OptionSpec> = {
  data: { type: 'string', description: 'folder with one sub-folder of aligned face images per identity' },
  model: { type: 'string', description: 'architecture: nn4.small2 (default), nn2, inception-resnet-v1' },
  variant: { type: 'string', description: 'architecture variant (nn4.small2: torch or keras)' },
  loss: { type: 'string', description: 'triplet (default), sphereface, arcface, cosface' },
  mining: { type: 'string', description: 'semi-hard (default), hard, batch-hard, batch-all' },
  margin: { type: 'string', description: 'triplet margin (default 0.2)' },
  optimizer: { type: 'string', description: 'adam (default), adagrad, sgd' },
  lr: { type: 'string', description: 'learning rate (default 0.001)' },
  steps: { type: 'string', description: 'training steps (default 1000)' },
  p: { type: 'string', description: 'identities per batch (default 8)' },
  k: { type: 'string', description: 'images per identity (default 4)' },
  seed: { type: 'string', description: 'random seed (default 1)' },
  out: { type: 'string', description: 'checkpoint folder (default ./checkpoints)' },
  resume: { type: 'boolean', description: 'continue from --out/last.safetensors' },
  'checkpoint-every': { type: 'string', description: 'steps between checkpoints (default 100)' },
  help: { type: 'boolean', description: 'show this help' },
};
class ClassWeights extends Module {
  readonly weight: Tensor;
  constructor(classes: number, dim: number, seed: number) {
    super();
    this.weight = this.param('weight', randn([classes, dim], { seed, std: 0.1 }));
  }
}

class WithClassifier extends Module {
  constructor(model: Module, classifier: ClassWeights) {
    super();
    this.child('embedding', model);
    this.child('classifier', classifier);
  }
}

export const TRAIN_HELP = formatHelp('Usage: facenet train --data DIR [--model nn4.small2] [--loss triplet --mining semi-hard] [--steps N] [--out DIR]', 'Trains an embedding on aligned face crops, one folder per identity.', SPEC);

export async function runTrain(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const args = parseArgs(argv, SPEC);
  if (args.options.help) { out(TRAIN_HELP); return 0; }
  const data = args.options.data;
  if (typeof data !== 'string') throw new UsageError('train needs --data DIR');
  const arch = (args.options.model as string | undefined) ?? 'nn4.small2';
  const spec = MODEL_SPECS[arch];
  if (!spec) throw new UsageError(`--model must be an embedding architecture: ${Object.keys(MODEL_SPECS).filter((k) => MODEL_SPECS[k]!.architecture === k).join(', ')}`);
  const lossName = (args.options.loss as string | undefined) ?? 'triplet';
  const mining = ((args.options.mining as string | undefined) ?? 'semi-hard') as MiningMode;
  if (!['semi-hard', 'hard', 'batch-hard', 'batch-all'].includes(mining)) throw new UsageError(`--mining must be semi-hard, hard, batch-hard or batch-all`);
  if (!['triplet', 'sphereface', 'arcface', 'cosface'].includes(lossName)) throw new UsageError(`--loss must be triplet, sphereface, arcface or cosface`);
  const steps = numberOption(args, 'steps', 1000, (v) => Number.isInteger(v) && v > 0);
  const P = numberOption(args, 'p', 8, (v) => Number.isInteger(v) && v >= 2), K = numberOption(args, 'k', 4, (v) => Number.isInteger(v) && v >= 2);
  const lr = numberOption(args, 'lr', 1e-3, (v) => v > 0);
  const seed = numberOption(args, 'seed', 1, Number.isInteger);
  const margin = numberOption(args, 'margin', 0.2, (v) => v > 0);
  const outDir = (args.options.out as string | undefined) ?? 'checkpoints';
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (e) {
    throw new UsageError(`--out ${outDir}: cannot create the checkpoint folder (${(e as { code?: string }).code ?? (e as Error).message})`);
  }

  // Load and resize every image once (aligned crops are small).
  const { identities, problems } = listGallery(data);
  for (const p of problems) err(`train: skipping ${p.path}: ${p.message}`);
  const [H, W] = spec.inputSize;
  const images: RgbImage[] = [], labels: number[] = [];
  identities.forEach((id, label) => {
    for (const f of id.files) {
      try {
        const img = readImage(f);
        images.push(img.width === W && img.height === H ? img : resizeBilinear(img, W, H));
        labels.push(label);
      } catch (e) {
        err(`train: skipping ${f}: ${(e as Error).message}`);
      }
    }
  });
  if (identities.length < 2) throw new FacenetError('BAD_DATA', `${data}: needs at least 2 identity folders with images`);
  err(`train: ${images.length} images of ${identities.length} identities, ${arch}, ${lossName}${lossName === 'triplet' ? ` (${mining}, margin ${margin})` : ''}`);

  const model = buildModel(arch, { variant: (args.options.variant as string | undefined) ?? defaultVariant(arch), seed });
  // Margin-softmax losses learn one weight vector per identity; they are checkpointed with the model.
  const classifier = lossName === 'triplet' ? null : new ClassWeights(identities.length, spec.embeddingDim, seed);
  const trained = classifier ? new WithClassifier(model, classifier) : model;
  const classWeights = classifier?.weight ?? null;
  const params = trained.parameters();
  const optName = (args.options.optimizer as string | undefined) ?? 'adam';
  const optimizer: Optimizer = optName === 'adam' ? new Adam(params, lr) : optName === 'adagrad' ? new AdaGrad(params, lr) : optName === 'sgd' ? new SGD(params, lr, { momentum: 0.9 }) : (() => { throw new UsageError('--optimizer must be adam, adagrad or sgd'); })();
  const sampler = new PKSampler(labels, Math.min(P, identities.length), K, seed);
  const summary = train({
    model: trained, optimizer, steps, schedule: schedules.cosine(lr, steps, lr / 100, Math.min(50, Math.floor(steps / 10))),
    lossFn: (step) => {
      const batch = sampler.next();
      const emb = model.forward(imagesToTensor(batch.indices.map((i) => images[i]!), spec.normalization)) as Tensor;
      if (lossName === 'triplet') {
        const r = tripletLoss(emb, batch.labels, { mining, margin });
        return { loss: r.loss, diagnostics: r.diagnostics as unknown as Record<string, unknown> };
      }
      const loss = lossName === 'sphereface' ? sphereFaceLoss(emb, classWeights!, batch.labels, { step }).loss
        : lossName === 'arcface' ? arcFaceLoss(emb, classWeights!, batch.labels) : cosFaceLoss(emb, classWeights!, batch.labels);
      return { loss };
    },
    logEvery: 10,
    log: (r) => err(`step ${r.step} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} ${r.ms.toFixed(0)} ms${r.diagnostics ? ` active ${Number(r.diagnostics.activeFraction).toFixed(3)}${r.diagnostics.warning ? ` WARNING ${String(r.diagnostics.warning)}` : ''}` : ''}`),
    checkpoint: { path: join(outDir, 'last.safetensors'), every: numberOption(args, 'checkpoint-every', 100, (v) => v >= 1), architecture: { architecture: arch, variant: (model as { variant?: string }).variant } },
    resumeFrom: args.options.resume ? join(outDir, 'last.safetensors') : undefined,
  });
  out(JSON.stringify({ ...summary, checkpoint: join(outDir, 'last.safetensors'), model: arch, loss: lossName, images: images.length, identities: identities.length }));
  return 0;
}
