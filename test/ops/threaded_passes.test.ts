/**
 * The passes around the GEMMs on 2 threads (threads.ts: runPass): inside tidyAndRecycle blocks, large
 * arrays live in SharedArrayBuffers and batchnorm's passes, channelAffine, the elementwise ones (gradient
 * sums), max and L2 pooling and LRN, forward and backward, run on every thread, each over its channels,
 * planes, images (or values). Results must be the bits of one thread, whoever computes a slice (a fresh
 * worker's slices are taken back by the caller), for planes larger than a chunk, odd plane sizes and few
 * channels.
 */
import { expect } from 'chai';
import { add, mul, setNumThreads, getNumThreads, sum, tidy, tidyAndRecycle, clearPool, Tensor, buildModel } from '../../src/index.js';
import { batchNorm, channelAffine } from '../../src/ops/batchnorm.js';
import { l2Pool2d, maxPool2d } from '../../src/ops/pool.js';
import { lrn } from '../../src/ops/lrn.js';
import { isShared, slicesTakenBack, threadedPasses } from '../../src/backends/cpu/threads.js';
import { wasmPlanesAvailable } from '../../src/backends/cpu/wasm_planes.js';
import { randomTensor } from '../helpers.js';

/** [N, C, H, W]: the smallest threaded size (65536 values), planes over a chunk (16384 values), odd planes, 5 channels. */
const SHAPES = [[16, 64, 8, 8], [2, 6, 130, 130], [3, 40, 33, 35], [2, 5, 100, 100]];

/** Batchnorm in training (with ReLU, and without), in eval, channelAffine; forward, then every gradient; x used twice (gradients summed). */
function passes(shape: number[], seed: number): Float32Array[] {
  const C = shape[1]!;
  const param = (s: number): Tensor => { const t = randomTensor([C], s); t.requiresGrad = true; return t; };
  const x0 = randomTensor(shape, seed), gamma = param(seed + 1), beta = param(seed + 2), bias = param(seed + 3);
  const stats = () => ({ runningMean: randomTensor([C], seed + 4), runningVar: mul(randomTensor([C], seed + 5), randomTensor([C], seed + 5)) });
  x0.requiresGrad = true;
  const x = mul(x0, 1); // made inside the block: shared when it runs in tidyAndRecycle
  const outputs = [
    batchNorm(x, { gamma, beta, ...stats(), training: true, relu: true, inputBias: bias }),
    batchNorm(x, { gamma, beta, ...stats(), training: true }),
    batchNorm(x, { gamma, beta, ...stats(), training: false, relu: true }),
    channelAffine(x, gamma, beta, { relu: true }),
  ];
  const loss = outputs.reduce((acc, y, i) => add(acc, sum(mul(y, randomTensor(shape, seed + 10 + i)))), sum(mul(x, 0)));
  loss.backward();
  return [...outputs, x0.grad!, gamma.grad!, beta.grad!, bias.grad!].map((t) => Float32Array.from(t.data));
}

/** Max pooling (3x3 stride 2, padded, ceil mode; 2x2), L2 pooling (3x3 stride 1 'same') and LRN (size 5): forward and input gradient. */
function poolsAndLrn(shape: number[], seed: number): Float32Array[] {
  const x0 = randomTensor(shape, seed);
  x0.requiresGrad = true;
  const x = mul(x0, 1);
  const outputs = [
    maxPool2d(x, { kernel: 3, stride: 2, padding: 1, ceilMode: true }),
    maxPool2d(x, { kernel: 2 }),
    l2Pool2d(x, { kernel: 3, stride: 1, padding: 'same' }),
    lrn(x, { size: 5, alpha: 1e-4, beta: 0.75, k: 1 }),
  ];
  const loss = outputs.reduce((acc, y, i) => add(acc, sum(mul(y, randomTensor([...y.shape], seed + 10 + i)))), sum(mul(x, 0)));
  loss.backward();
  return [...outputs, x0.grad!].map((t) => Float32Array.from(t.data));
}

const same = (a: Float32Array[], b: Float32Array[], what: string): void =>
  a.forEach((v, i) => expect(Buffer.from(v.buffer).equals(Buffer.from(b[i]!.buffer)), `${what}: output ${i}`).to.equal(true));

describe('passes on 2 threads (arrays in SharedArrayBuffers)', function () {
  this.timeout(300000);
  const threadsBefore = getNumThreads();
  before(function () {
    if (!wasmPlanesAvailable()) this.skip(); // the TypeScript loops never run threaded
  });
  after(() => { setNumThreads(threadsBefore); clearPool(); });

  const cases = [['batchnorm (training with ReLU and input bias, training, eval), channelAffine and gradient sums', passes], ['max and L2 pooling, LRN', poolsAndLrn]] as const;
  for (const [name, run] of cases) {
    it(`${name}: bit-identical to 1 thread, slices taken back or computed by the worker`, async () => {
      setNumThreads(1);
      clearPool();
      const ones = SHAPES.map((s, i) => tidy(() => run(s, 10 * i)));
      setNumThreads(2);
      // Outside tidyAndRecycle arrays are not shared: nothing is threaded.
      const before = threadedPasses();
      SHAPES.forEach((s, i) => same(tidy(() => run(s, 10 * i)), ones[i]!, `${s.join('x')}, unshared`));
      expect(threadedPasses() - before, 'passes threaded over unshared arrays').to.equal(0);
      // Inside: fresh workers (their slices are taken back while they start), then running ones.
      const taken = slicesTakenBack(), jobs = threadedPasses();
      const fresh = SHAPES.map((s, i) => tidyAndRecycle(() => run(s, 10 * i), { training: true }));
      expect(threadedPasses() - jobs, 'threaded passes').to.be.at.least(SHAPES.length * 5);
      expect(slicesTakenBack() - taken, 'slices taken back from fresh workers').to.be.greaterThan(0);
      for (let attempt = 0; attempt < 100 && slicesTakenBack() - taken === threadedPasses() - jobs; attempt++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      const taken2 = slicesTakenBack(), jobs2 = threadedPasses();
      const warm = SHAPES.map((s, i) => tidyAndRecycle(() => run(s, 10 * i), { training: true }));
      expect(threadedPasses() - jobs2 - (slicesTakenBack() - taken2), 'slices the worker computed').to.be.greaterThan(0);
      SHAPES.forEach((s, i) => {
        same(fresh[i]!, ones[i]!, `${s.join('x')}, fresh workers`);
        same(warm[i]!, ones[i]!, `${s.join('x')}, running workers`);
      });
    });
  }

  it('arrays made inside tidyAndRecycle are shared on 2 threads only (and only large ones)', () => {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      const [big, small] = tidyAndRecycle(() => [mul(randomTensor([1, 4, 100, 100], 1), 2), mul(randomTensor([1, 4, 10, 10], 1), 2)].map((t) => isShared(t.data)));
      expect([big, small], `${threads} thread(s)`).to.deep.equal([threads === 2, false]);
    }
  });

  it('nn4.small2: a recycled training step on 2 threads (passes and GEMMs threaded) gives the bits of one on 1 thread', () => {
    const step = (threads: number): Float32Array[] => {
      setNumThreads(threads);
      const model = buildModel('nn4.small2', { seed: 3 });
      model.train();
      const x = randomTensor([4, 3, 96, 96], 4);
      const run = (): Float32Array[] => {
        model.zeroGrad();
        const y = model.forward(x) as Tensor;
        sum(mul(y, randomTensor([...y.shape], 5))).backward();
        return [Float32Array.from(y.data), ...model.parameters().map((p) => Float32Array.from(p.grad!.data))];
      };
      tidyAndRecycle(run, { training: true });
      return tidyAndRecycle(run, { training: true });
    };
    const one = step(1), jobs = threadedPasses(), two = step(2);
    expect(threadedPasses() - jobs, 'threaded passes').to.be.greaterThan(20);
    same(two, one, 'nn4.small2');
  });
});
