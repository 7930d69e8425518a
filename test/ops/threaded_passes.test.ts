/**
 * The passes around the GEMMs on 2 threads (threads.ts: runPass): inside tidyAndRecycle blocks, large
 * arrays live in SharedArrayBuffers and batchnorm's passes, channelAffine, the elementwise ones (gradient
 * sums, residual sums), max and L2 pooling and LRN, forward and backward, and depthwise convolution run on every thread,
 * each over its channels, planes, images (or values). Results must be the bits of one thread, whoever computes a slice (a fresh
 * worker's slices are taken back by the caller), for planes larger than a chunk, odd plane sizes and few
 * channels.
 */
import { expect } from 'chai';
import { abs, add, conv2d, leakyRelu, mul, noGrad, residual, setNumThreads, getNumThreads, sum, tidy, tidyAndRecycle, clearPool, Tensor, buildModel } from '../../src/index.js';
import { batchNorm, channelAffine } from '../../src/ops/batchnorm.js';
import { l2Pool2d, maxPool2d } from '../../src/ops/pool.js';
import { lrn } from '../../src/ops/lrn.js';
import { convGeometry } from '../../src/ops/conv.js';
import { conv2dBackward } from '../../src/backends/cpu/conv.js';
import { isShared, PASS, registerPass, runPass, setMinThreadedWork, slicesTakenBack, threadedGemms, threadedPasses } from '../../src/backends/cpu/threads.js';
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

/**
 * Max pooling (3x3 stride 2, padded, ceil mode; 2x2), L2 pooling (3x3 stride 1 'same'), LRN (size 5),
 * depthwise convolutions (3x3 stride 1; stride 2 with multiplier 2; 5x5), leaky ReLU and abs: forward,
 * input gradient, and the convolutions' filter gradients.
 */
function poolsAndLrn(shape: number[], seed: number): Float32Array[] {
  const x0 = randomTensor(shape, seed), C = shape[1]!;
  x0.requiresGrad = true;
  const x = mul(x0, 1);
  const filters = [[C, 1, 3, 3], [2 * C, 1, 3, 3], [C, 1, 5, 5]].map((s, i) => { const w = randomTensor(s, seed + 5 + i); w.requiresGrad = true; return w; });
  const outputs = [
    conv2d(x, filters[0]!, null, { padding: 1, groups: C }),
    conv2d(x, filters[1]!, null, { padding: 1, stride: 2, groups: C }),
    conv2d(x, filters[2]!, null, { padding: 2, groups: C }),
    maxPool2d(x, { kernel: 3, stride: 2, padding: 1, ceilMode: true }),
    maxPool2d(x, { kernel: 2 }),
    l2Pool2d(x, { kernel: 3, stride: 1, padding: 'same' }),
    lrn(x, { size: 5, alpha: 1e-4, beta: 0.75, k: 1 }),
    leakyRelu(x, 0.1),
    abs(x),
    residual(x, mul(x0, -0.5), { scale: 0.17, relu: true }),
  ];
  const loss = outputs.reduce((acc, y, i) => add(acc, sum(mul(y, randomTensor([...y.shape], seed + 10 + i)))), sum(mul(x, 0)));
  loss.backward();
  return [...outputs, x0.grad!, ...filters.map((w) => w.grad!)].map((t) => Float32Array.from(t.data));
}

/** Runs `work` until a threaded job's slice is computed by the worker (it has started up and woke in time), for at most 20 s. */
async function workersUp(work: () => unknown): Promise<void> {
  for (const started = Date.now(); Date.now() - started < 20_000;) {
    const jobs = threadedGemms() + threadedPasses(), taken = slicesTakenBack();
    work();
    if (threadedGemms() + threadedPasses() - jobs > slicesTakenBack() - taken) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the worker never started');
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

  const cases = [['batchnorm (training with ReLU and input bias, training, eval), channelAffine and gradient sums', passes], ['max and L2 pooling, LRN, depthwise convolution, leaky ReLU, abs, residual sum', poolsAndLrn]] as const;
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
      for (const started = Date.now(); Date.now() - started < 20_000 && slicesTakenBack() - taken === threadedPasses() - jobs;) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      const taken2 = slicesTakenBack(), jobs2 = threadedPasses();
      const workerSlices = (): number => threadedPasses() - jobs2 - (slicesTakenBack() - taken2);
      SHAPES.forEach((s, i) => same(fresh[i]!, ones[i]!, `${s.join('x')}, fresh workers`));
      // Running workers, again (up to 5 rounds) while the worker computed no slice (descheduled on a loaded machine).
      for (let round = 0; round === 0 || (round < 5 && workerSlices() === 0); round++) {
        const warm = SHAPES.map((s, i) => tidyAndRecycle(() => run(s, 10 * i), { training: true }));
        SHAPES.forEach((s, i) => same(warm[i]!, ones[i]!, `${s.join('x')}, running workers`));
      }
      expect(workerSlices(), 'slices the worker computed').to.be.greaterThan(0);
    });
  }

  it('convolutions whose operands, output and dx live in shared buffers (the workers read and write them in place): the bits of 1 thread', async () => {
    // Inputs, outputs and gradients of 16K+ floats (so made shared), mostly.
    const geometries = [
      { name: '1x1 (images views in place)', x: [4, 32, 12, 12], w: [48, 32, 1, 1], o: {} },
      { name: '3x3 on 12x12 (cols of an input in place)', x: [4, 32, 12, 12], w: [32, 32, 3, 3], o: { padding: 1 } },
      { name: '3x3 stride 2 (dx by col2im, in place)', x: [4, 32, 13, 13], w: [24, 32, 3, 3], o: { stride: 2 } },
      { name: '3x3 on 12x12, batch 1 (split by rows)', x: [1, 128, 12, 12], w: [256, 128, 3, 3], o: { padding: 1 } },
      { name: '1x1 on 8x8, batch 1 (split by rows, images views)', x: [1, 256, 8, 8], w: [384, 256, 1, 1], o: {} },
      { name: '3x3 with 16 filters on 40x40, batch 1 (columns split mid-image: y as a plain matrix, in place)', x: [1, 16, 40, 40], w: [16, 16, 3, 3], o: { padding: 1 } },
    ];
    const run = (c: (typeof geometries)[number], recycle: boolean): Float32Array[] => {
      const block = (): Float32Array[] => {
        const x0 = randomTensor(c.x, 3), w = randomTensor(c.w, 4);
        x0.requiresGrad = true;
        w.requiresGrad = true;
        const x = mul(x0, 1); // made inside the block: in a shared buffer when recycling on 2 threads
        const y = conv2d(x, w, null, c.o);
        sum(mul(y, y)).backward();
        if (recycle) expect([y, x0.grad!].map((t) => isShared(t.data)), `${c.name}: y, dx shared`).to.deep.equal([y.size >= 16384, true]);
        return [y, x0.grad!, w.grad!].map((t) => Float32Array.from(t.data));
      };
      return recycle ? tidyAndRecycle(block, { training: true }) : tidy(block);
    };
    setMinThreadedWork(0); // thread these small products too
    try {
      setNumThreads(1);
      const ones = geometries.map((c) => run(c, false));
      setNumThreads(2);
      await workersUp(() => run(geometries[0]!, true));
      const jobs = threadedGemms(), taken = slicesTakenBack();
      const workerSlices = (): number => threadedGemms() - jobs - (slicesTakenBack() - taken);
      for (let round = 0; round === 0 || (round < 5 && workerSlices() <= geometries.length); round++) { // see the passes' test
        geometries.forEach((c, i) => {
          const before = threadedGemms();
          same(run(c, true), ones[i]!, c.name);
          expect(threadedGemms() - before, `${c.name}: threaded GEMMs`).to.be.at.least(2);
        });
      }
      expect(workerSlices(), 'slices the worker computed').to.be.greaterThan(geometries.length);
    } finally {
      setMinThreadedWork();
    }
  });

  it('an exception in a worker reaches the caller at once, with its message; the next job starts new workers', async () => {
    // A pass only this thread knows: the worker, which loads the modules that register passes, has no pass 99.
    registerPass(99, () => ({}), (_k, a, from, to) => a.arrays[0]!.fill(1, from, to));
    const x = new Float32Array(new SharedArrayBuffer(4 * 100000));
    const pass = (): unknown => runPass(99, { arrays: [x], ints: [], tables: [], tableLength: 0 }, 0, x.length, 16, x.length);
    setNumThreads(2);
    await workersUp(() => runPass(PASS.FLAT, { arrays: [x, x, x], ints: [2], tables: [], tableLength: 0 }, 0, x.length, 16, x.length));
    // A worker slice the caller takes back (its worker descheduled) runs here, without error: try again.
    let report: unknown = null, ms = 0;
    for (const started = Date.now(); report === null && Date.now() - started < 20_000; await new Promise((r) => setTimeout(r, 1))) {
      const t = Date.now();
      try { pass(); } catch (e) { report = e; ms = Date.now() - t; }
    }
    expect(String(report)).to.match(/a worker thread failed: TypeError/);
    expect(ms, 'ms to report').to.be.below(5000);
    // New workers: their slices are taken back while they start, then computed by them.
    const jobs = threadedPasses();
    same(tidyAndRecycle(() => passes(SHAPES[0]!, 0), { training: true }), tidy(() => { setNumThreads(1); const r = passes(SHAPES[0]!, 0); setNumThreads(2); return r; }), 'after a failure');
    expect(threadedPasses() - jobs).to.be.greaterThan(0);
  });

  it('a scalar add or multiply over one plane runs on both threads (as equal channels), forward and backward: the bits of one thread', async () => {
    const run = (n: number): Float32Array[] => {
      const x0 = randomTensor([n], n % 97);
      x0.requiresGrad = true;
      const x = mul(x0, 1), y = add(mul(x, 1.7), -0.3); // made inside the block: shared when recycling
      sum(mul(y, randomTensor([n], 5))).backward();
      return [y, x0.grad!].map((t) => Float32Array.from(t.data));
    };
    const sizes = [90000, 4 * 16411, 65537]; // 64 does not divide it (60 channels); 4 channels (16411 is prime); prime (one channel: not threaded)
    setNumThreads(1);
    const ones = sizes.map((n) => tidy(() => run(n)));
    setNumThreads(2);
    await workersUp(() => tidyAndRecycle(() => run(sizes[0]!), { training: true }));
    sizes.forEach((n, i) => {
      const jobs = threadedPasses();
      same(tidyAndRecycle(() => run(n), { training: true }), ones[i]!, `${n} values`);
      // 6 scalar maps (forward * 1, * 1.7, - 0.3; backward the add's * 1, * 1.7, * 1) and the loss's multiply forward (a flat pass, threaded either way).
      expect(threadedPasses() - jobs, `${n} values: threaded passes`).to.equal(n === 65537 ? 1 : 7);
    });
  });

  it('arrays made inside tidyAndRecycle are shared on 2 threads only (and only large ones)', () => {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      const [big, small] = tidyAndRecycle(() => [mul(randomTensor([1, 4, 100, 100], 1), 2), mul(randomTensor([1, 4, 10, 10], 1), 2)].map((t) => isShared(t.data)));
      expect([big, small], `${threads} thread(s)`).to.deep.equal([threads === 2, false]);
    }
  });

  it('a depthwise convolution over shared arrays is one threaded pass, and so are its gradients (batch 1 too: planes and channels are split)', () => {
    setNumThreads(2);
    tidyAndRecycle(() => {
      const x = mul(randomTensor([1, 32, 28, 28], 5), 1), w = randomTensor([32, 1, 3, 3], 6), dy = mul(randomTensor([1, 32, 28, 28], 7), 1);
      const jobs = threadedPasses();
      noGrad(() => conv2d(x, w, null, { padding: 1, groups: 32 }));
      expect(threadedPasses() - jobs, 'forward').to.equal(1);
      const g = convGeometry('test', x.shape, w.shape, { padding: 1, groups: 32 });
      const [dx, dw] = conv2dBackward(dy.data, x.data, w.data, g, true, true);
      expect(threadedPasses() - jobs, 'both gradients').to.equal(2);
      expect(isShared(dx!), 'dx made shared').to.equal(true);
      expect(dw!.every(Number.isFinite)).to.equal(true);
      return null;
    });
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
