import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors, noGrad, randn, tensor, tidy, type Tensor } from '../../src/index.js';
import { Adam, AdaGrad, SGD, schedules } from '../../src/train/optim.js';
import { PKSampler } from '../../src/train/sampler.js';
import { saveCheckpoint, loadCheckpoint } from '../../src/train/checkpoint.js';
import { train } from '../../src/train/trainer.js';
import { tripletLoss } from '../../src/losses/triplet.js';
import { SmallInception } from '../../src/models/small_inception.js';
import { Nn4Small2 } from '../../src/models/nn4_small2.js';
import { Nn2 } from '../../src/models/nn2.js';
import { SHARED, sharedPath } from '../shared.js';
import { tempDir } from '../tmp.js';
import { CLI } from '../helpers.js';

const tmp = tempDir('train');

describe('optimizers', () => {
  const param = (v: number[]): Tensor => tensor(v, [v.length], { dtype: 'float64', requiresGrad: true });
  const grad = (p: Tensor, g: number[]): void => { p.zeroGrad(); p.grad = tensor(g, [g.length], { dtype: 'float64' }); };
  it('SGD with momentum follows v = mu v + g, w -= lr v', () => {
    const p = param([1, -2]);
    const opt = new SGD([p], 0.1, { momentum: 0.9 });
    grad(p, [1, 1]); opt.update();
    grad(p, [1, 1]); opt.update();
    // v1 = 1, w1 = w0 - 0.1; v2 = 1.9, w2 = w1 - 0.19
    expect(p.toArray()).to.deep.equal([1 - 0.1 - 0.19, -2 - 0.1 - 0.19]);
  });
  it('hyperparameters outside their domain are ARGUMENT errors naming them; another optimizer\'s state is OPTIMIZER_STATE', () => {
    const p = tensor([1, 2], [2]);
    const cases: [() => unknown, string][] = [
      [() => new SGD([p], NaN), 'SGD: lr must be a finite number >= 0, got NaN'],
      [() => new Adam([p], -0.1), 'Adam: lr must be a finite number >= 0, got -0.1'],
      [() => new SGD([p], 0.1, { momentum: 1.5 }), 'SGD: momentum must be in [0, 1), got 1.5'],
      [() => new Adam([p], 0.1, { beta2: 1 }), 'Adam: beta2 must be in [0, 1), got 1'],
      [() => new AdaGrad([p], 0.1, { weightDecay: -1 }), 'AdaGrad: weightDecay must be a finite number >= 0, got -1'],
      [() => new AdaGrad([p], 0.1, { eps: NaN }), 'AdaGrad: eps must be a finite number >= 0, got NaN'],
      [() => new SGD([p], { lr: 0.1 } as never), 'SGD: lr must be a finite number >= 0, got [object Object]'],
    ];
    for (const [make, message] of cases) expect(make).to.throw(message).with.property('code', 'ARGUMENT');
    const adam = new Adam([p], 0.1);
    expect(() => adam.load(new SGD([p], 0.1).state())).to.throw(/holds sgd state, the optimizer is adam/).with.property('code', 'OPTIMIZER_STATE');
  });
  it('AdaGrad divides by the root of the accumulated squares', () => {
    const p = param([0]);
    const opt = new AdaGrad([p], 0.5, { eps: 0 });
    grad(p, [2]); opt.update();
    grad(p, [1]); opt.update();
    expect(p.data[0]).to.be.closeTo(-0.5 - 0.5 / Math.sqrt(5), 1e-12);
  });
  it('Adam: the first step moves each weight by lr against the sign of its gradient (bias correction)', () => {
    const p = param([3, 3]);
    const opt = new Adam([p], 0.01);
    grad(p, [5, -0.001]); opt.update();
    expect(p.data[0]).to.be.closeTo(2.99, 1e-6);
    expect(p.data[1]).to.be.closeTo(3.01, 1e-4);
  });
  it('all three minimize a quadratic', () => {
    for (const make of [(ps: Tensor[]) => new SGD(ps, 0.1, { momentum: 0.5 }), (ps: Tensor[]) => new AdaGrad(ps, 1), (ps: Tensor[]) => new Adam(ps, 0.1)]) {
      const p = param([4, -3]);
      const opt = make([p]);
      for (let i = 0; i < 300; i++) { grad(p, Array.from(p.data, (w) => 2 * (w - 1))); opt.update(); }
      expect(Math.abs(p.data[0]! - 1) + Math.abs(p.data[1]! - 1), opt.kind).to.be.below(1e-2);
    }
  });
  it('schedules', () => {
    expect(schedules.step(1, 10, 0.1)(25)).to.be.closeTo(0.01, 1e-15);
    expect(schedules.cosine(1, 100, 0)(100)).to.be.closeTo(0, 1e-12);
    expect(schedules.cosine(1, 100, 0, 10)(4)).to.be.closeTo(0.5, 1e-12);
    expect(schedules.exponential(2, 0.5)(3)).to.equal(0.25);
  });
});

describe('P x K sampler', () => {
  it('draws P distinct identities with K examples each, reproducibly', () => {
    const labels = Array.from({ length: 100 }, (_, i) => i % 10);
    const a = new PKSampler(labels, 4, 3, 7).next(), b = new PKSampler(labels, 4, 3, 7).next();
    expect(a).to.deep.equal(b);
    expect(new Set(a.labels).size).to.equal(4);
    for (const l of new Set(a.labels)) expect(a.labels.filter((x) => x === l)).to.have.length(3);
    a.indices.forEach((idx, i) => expect(labels[idx]).to.equal(a.labels[i]));
  });
});

describe('training loop and checkpoints', function () {
  this.timeout(120000);
  const data = randn([64, 1, 28, 28], { seed: 3 });
  const labels = Array.from({ length: 64 }, (_, i) => i % 8);
  const setup = () => {
    const model = new SmallInception({ seed: 5 });
    const opt = new Adam(model.parameters(), 1e-3);
    const sampler = new PKSampler(labels, 4, 4, 9);
    const lossFn = () => {
      const b = sampler.next();
      const x = tensor(b.indices.flatMap((i) => Array.from(data.data.subarray(i * 784, (i + 1) * 784))), [b.indices.length, 1, 28, 28]);
      return { loss: tripletLoss(model.forward(x), b.labels, { mining: 'batch-all' }).loss };
    };
    return { model, opt, sampler, lossFn };
  };
  it('is deterministic, and a run resumed from a checkpoint equals an uninterrupted one bit for bit', () => {
    const straight = setup();
    train({ model: straight.model, optimizer: straight.opt, steps: 4, schedule: schedules.constant(1e-3), lossFn: straight.lossFn });
    const resumed = setup();
    const ckpt = join(tmp, 'ck.safetensors');
    train({ model: resumed.model, optimizer: resumed.opt, steps: 2, schedule: schedules.constant(1e-3), lossFn: resumed.lossFn, checkpoint: { path: ckpt, every: 2 } });
    const fresh = setup();
    fresh.sampler.next(); fresh.sampler.next(); // the data stream continues where it stopped
    train({ model: fresh.model, optimizer: fresh.opt, steps: 4, schedule: schedules.constant(1e-3), lossFn: fresh.lossFn, resumeFrom: ckpt });
    expect(fresh.opt.step).to.equal(4);
    const a = [...straight.model.stateDict().values()].flatMap((t) => Array.from(t.data));
    const b = [...fresh.model.stateDict().values()].flatMap((t) => Array.from(t.data));
    expect(b).to.deep.equal(a);
  });
  it('checkpoints are written atomically and refuse other files', () => {
    const { model, opt } = setup();
    const path = join(tmp, 'c2.safetensors');
    saveCheckpoint(path, model, opt, { step: 7 });
    expect(loadCheckpoint(path, model, opt).step).to.equal(7);
    expect(() => loadCheckpoint(join(tmp, 'nope.safetensors'), model, opt)).to.throw(/cannot read/);
  });
  it('a checkpoint of another architecture is refused by name (ARCHITECTURE_MISMATCH), one of the same loads', () => {
    const { model, opt } = setup();
    const path = join(tmp, 'c3.safetensors');
    saveCheckpoint(path, model, opt, { step: 3 }, { architecture: 'nn4.small2', variant: 'torch' });
    expect(loadCheckpoint(path, model, opt, { architecture: 'nn4.small2', variant: 'torch' }).step).to.equal(3);
    expect(loadCheckpoint(path, model, opt, { architecture: 'nn4.small2' }).step).to.equal(3); // no variant asked for
    for (const other of [{ architecture: 'inception-resnet-v1' }, { architecture: 'nn4.small2', variant: 'keras' }]) {
      expect(() => loadCheckpoint(path, model, opt, other), JSON.stringify(other))
        .to.throw(/a checkpoint of nn4\.small2 \(torch\), not /).with.property('code', 'ARCHITECTURE_MISMATCH');
    }
  });
  it('live tensors stay flat over training steps', () => {
    const { model, opt, lossFn } = setup();
    train({ model, optimizer: opt, steps: 2, schedule: schedules.constant(1e-3), lossFn });
    const before = liveTensors();
    train({ model, optimizer: opt, steps: 5, schedule: schedules.constant(1e-3), lossFn });
    expect(liveTensors()).to.equal(before);
  });
});

describe('models: eval-mode batch independence and NN2 size', function () {
  this.timeout(120000);
  it('nn4.small2 in eval mode: a face alone embeds like the same face inside a batch', () => {
    const model = new Nn4Small2({ seed: 2 }).eval();
    const x = randn([3, 3, 96, 96], { seed: 4 });
    const batch = noGrad(() => model.forward(x));
    const alone = noGrad(() => model.forward(tensor(x.data.subarray(2 * 3 * 96 * 96), [1, 3, 96, 96])));
    let diff = 0;
    for (let i = 0; i < 128; i++) diff = Math.max(diff, Math.abs(alone.data[i]! - batch.data[256 + i]!));
    expect(diff).to.be.at.most(1e-6);
  });
  it('NN2: 224x224 -> 128-d unit vectors; conv weights per block match the FaceNet paper table (to its rounding)', () => {
    const model = new Nn2({ seed: 1 }).eval();
    const out = tidy(() => noGrad(() => model.forward(randn([1, 3, 224, 224], { seed: 1 }))));
    expect([...out.shape]).to.deep.equal([1, 128]);
    expect(Math.hypot(...out.data)).to.be.closeTo(1, 1e-5);
    // Paper Table 1 (weights only): conv1 9K, inception(2) 115K, 3a 164K, 3b 228K, 3c 398K, 4a 545K, 4b 595K,
    // 4c 654K, 4d 722K, 4e 717K, 5a 1.6M, 5b 1.6M, fc 131K; total 7.5M.
    const paper: Record<string, number> = { conv1: 9e3, 'conv2+conv3': 115e3, inception_3a: 164e3, inception_3b: 228e3, inception_3c: 398e3, inception_4a: 545e3, inception_4b: 595e3, inception_4c: 654e3, inception_4d: 722e3, inception_4e: 717e3, inception_5a: 1.6e6, inception_5b: 1.6e6, dense: 131e3 };
    const weights = (prefix: string[]): number => model.namedParameters().filter(([n, t]) => prefix.some((p) => n.startsWith(`${p}.`)) && n.endsWith('weight') && t.rank >= 2).reduce((s, [, t]) => s + t.size, 0);
    // The table rounds to the nearest 1K (or 0.1M) and counts slightly differently (biases?): agree to within
    // the rounding plus 0.5%.
    for (const [block, expected] of Object.entries(paper)) {
      const got = weights(block === 'conv2+conv3' ? ['conv2', 'conv3'] : [block]);
      expect(Math.abs(got - expected), `${block}: ${got} vs ${expected}`).to.be.at.most((expected >= 1e6 ? 5e4 : 500) + 0.005 * expected);
    }
    expect(model.parameterCount() / 1e6).to.be.closeTo(7.5, 0.1);
  });
});

describe('facenet train (CLI)', function () {
  this.timeout(300000);
  it('trains nn4.small2 on aligned crops with triplet loss, checkpoints, and resumes', function () {
    sharedPath(this, 'faces/bbt');
    const data = join(tmp, 'faces');
    for (const id of ['amy', 'raj', 'penny']) {
      mkdirSync(join(data, id), { recursive: true });
      for (const n of [1, 2, 3]) copyFileSync(join(SHARED, 'faces', 'bbt', id, `${id}${n}.png`), join(data, id, `${n}.png`));
    }
    const out = join(tmp, 'ckpt');
    const run = (...extra: string[]) => spawnSync(process.execPath, [CLI, 'train', '--data', data, '--model', 'nn4.small2', '--loss', 'triplet', '--mining', 'batch-hard', '--p', '3', '--k', '2', '--steps', '2', '--out', out, ...extra], { encoding: 'utf8' });
    const r = run();
    expect(r.status, r.stderr).to.equal(0);
    const summary = JSON.parse(r.stdout) as { steps: number; identities: number; images: number };
    expect(summary).to.include({ steps: 2, identities: 3, images: 9 });
    expect(existsSync(join(out, 'last.safetensors'))).to.equal(true);
    expect(r.stderr).to.match(/step 0 loss \d/);
    const resumed = run('--resume', '--steps', '3');
    expect(resumed.status, resumed.stderr).to.equal(0);
    expect((JSON.parse(resumed.stdout) as { steps: number }).steps).to.equal(1);
  });
});
