import { expect } from 'chai';
import { add, alloc, allocationStats, clearPool, conv2d, keep, liveTensors, mul, relu, Rng, randn, sum, Tensor, tensor, tidy, tidyAndRecycle } from '../../src/index.js';
import { tinyInception } from '../../src/autograd/inception_case.js';
import { poisonPooledArrays, resetPeakBytes, setPoolLimit, tensorBytes } from '../../src/autograd/memory.js';
import { buildModel } from '../../src/models/factory.js';
import { setWasmPlanes } from '../../src/backends/cpu/wasm_planes.js';
import { randomTensor } from '../helpers.js';

describe('tensor lifetimes', () => {
  it('tidy disposes intermediates and keeps what it returns', () => {
    const before = liveTensors();
    const x = tensor([1, 2, 3], [3]);
    const y = tidy(() => {
      const a = mul(x, 2);
      const b = add(a, 1);
      return { result: mul(b, b), extra: [a] };
    });
    expect(y.result.isDisposed).to.equal(false);
    expect(y.extra[0]!.isDisposed).to.equal(false);
    expect(liveTensors()).to.equal(before + 3); // x, a, result
    y.result.dispose();
    y.extra[0]!.dispose();
    x.dispose();
    expect(liveTensors()).to.equal(before);
  });
  it('a tensor too large to allocate is OUT_OF_MEMORY giving its size (a RangeError before), and leaves the count of live tensors alone', () => {
    const before = liveTensors();
    for (const [make, gb] of [[() => randn([1e6, 1e6]), '3725.3'], [() => alloc('float64', 1e12), '7450.6']] as const) {
      expect(make).to.throw(new RegExp(`cannot allocate 1000000000000 float(32|64) values \\(${gb} GB\\)`)).with.property('code', 'OUT_OF_MEMORY');
    }
    expect(liveTensors()).to.equal(before);
  });
  it('tensorBytes counts live tensor bytes (float32 4, float64 8) and the peak since resetPeakBytes', () => {
    const start = tensorBytes().live;
    resetPeakBytes();
    tidy(() => {
      const a = tensor(new Float32Array(100), [100]);
      const b = tensor(new Float64Array(10), [10]);
      expect(tensorBytes().live - start).to.equal(400 + 80);
      a.dispose();
      b.dispose();
      expect(tensorBytes().live).to.equal(start);
      tensor(new Float32Array(25), [25]);
      return null;
    });
    expect(tensorBytes().live).to.equal(start);
    expect(tensorBytes().peak - start).to.equal(480);
  });
  it('nested tidy moves returned tensors to the outer scope; keep() exempts a tensor', () => {
    const before = liveTensors();
    let kept = null as ReturnType<typeof tensor> | null;
    tidy(() => {
      const inner = tidy(() => mul(tensor([1], [1]), 3));
      kept = keep(add(inner, 1));
      return null;
    });
    expect(kept!.isDisposed).to.equal(false);
    expect(kept!.item()).to.equal(4);
    kept!.dispose();
    expect(liveTensors()).to.equal(before);
  });
  it('tidy refuses async functions', () => {
    expect(() => tidy(() => Promise.resolve(1))).to.throw(/synchronous/);
  });
  it('live tensors return to their starting value after 1,000 forward+backward steps of a tiny inception block', () => {
    const block = tinyInception(new Rng(3), 3, 'float32');
    for (const p of block.parameters) p.requiresGrad = true;
    const x = randn([2, 3, 6, 6], { seed: 4 });
    const step = (): void => tidy(() => {
      for (const p of block.parameters) p.zeroGrad();
      sum(block.forward(x)).backward();
    });
    step(); // warm-up: creates the parameters' .grad tensors once
    const start = liveTensors();
    const samples: number[] = [];
    for (let i = 0; i < 1000; i++) {
      step();
      if (i % 100 === 0) samples.push(liveTensors());
    }
    expect(samples.every((s) => s === start), `samples ${samples}`).to.equal(true);
    expect(liveTensors()).to.equal(start);
    expect(block.parameters[0]!.grad).to.not.equal(null);
  });
});

describe('buffer reuse (tidyAndRecycle)', () => {
  const block = (x: Tensor, w: Tensor): Float32Array => Float32Array.from(relu(conv2d(relu(conv2d(x, w, null, { padding: 1 })), w, null, { padding: 1 })).data);

  it('a repeated inference block allocates almost nothing once warm, and computes the same values', () => {
    const x = randn([2, 8, 16, 16], { seed: 1 }), w = randn([8, 8, 3, 3], { seed: 2 });
    const first = tidyAndRecycle(() => block(x, w));
    tidyAndRecycle(() => block(x, w));
    const before = allocationStats();
    const again = tidyAndRecycle(() => block(x, w));
    const after = allocationStats();
    expect(after.reused - before.reused, 'arrays reused').to.be.greaterThan(3);
    expect(after.freshBytes - before.freshBytes, 'new bytes').to.be.lessThan(0.05 * (after.reusedBytes - before.reusedBytes));
    expect(Buffer.from(again.buffer).equals(Buffer.from(first.buffer))).to.equal(true);
  });

  it('never hands out an array still in use: a returned tensor, one sharing a dead tensor\'s array, a returned array, a kept tensor', () => {
    const x = randn([1, 4, 8, 8], { seed: 3 });
    const returned = tidyAndRecycle(() => relu(mul(x, x)));
    // A tensor sharing the array of one that dies in the block (no op makes such views on the host today).
    const view = tidyAndRecycle(() => new Tensor(relu(mul(x, x)).data, [4, 64]));
    const raw = tidyAndRecycle(() => relu(mul(x, x)).data);
    let kept: Tensor | null = null;
    tidyAndRecycle(() => { kept = keep(relu(mul(x, x))); return null; });
    const snapshots = [returned.data, view.data, raw, kept!.data].map((a) => Float32Array.from(a));
    // Draw every pooled array of that length and scribble on it.
    tidyAndRecycle(() => { for (let i = 0; i < 50; i++) alloc('float32', x.size).fill(7); return null; });
    [returned.data, view.data, raw, kept!.data].forEach((a, i) => expect(Buffer.from(Float32Array.from(a).buffer).equals(Buffer.from(snapshots[i]!.buffer)), `#${i}`).to.equal(true));
    expect(allocationStats().pooledBytes).to.be.greaterThan(0);
    clearPool();
    expect(allocationStats().pooledBytes).to.equal(0);
  });

  // A training step under tidyAndRecycle({ training: true }) reuses the arrays of the step before, handed
  // out unfilled where an op writes its output in full. Pooled arrays are filled with NaN here, so an op
  // that skipped a value (or a gradient reused while still needed) would change the bits. nn4.small2, IRv1
  // and the tiny detector run once more on the TypeScript passes (no WebAssembly planes), whose fallbacks
  // zero what they add into.
  const runs = [['nn4.small2', 96, true], ['dlib-resnet34', 150, true], ['inception-resnet-v1', 160, true], ['tiny-face-detector', 64, true], ['nn4.small2', 96, false], ['inception-resnet-v1', 160, false], ['tiny-face-detector', 64, false]] as const;
  for (const [arch, size, wasmPlanes] of runs) {
    it(`${arch}${wasmPlanes ? '' : ' (TypeScript passes)'}: training steps on recycled arrays (poisoned with NaN) compute the bits of steps on new arrays`, () => {
      setWasmPlanes(wasmPlanes);
      const model = buildModel(arch, { seed: 3 });
      model.train();
      const x = randomTensor([2, 3, size, size], 4);
      const step = (): Float32Array[] => {
        model.zeroGrad();
        const y = model.forward(x) as Tensor;
        sum(mul(y, randomTensor([...y.shape], 5))).backward();
        return [Float32Array.from(y.data), ...model.parameters().map((p) => Float32Array.from(p.grad!.data))];
      };
      const fresh = tidy(step);
      clearPool();
      poisonPooledArrays(true);
      try {
        // Two warm-up steps: the first step's gradients were made outside a recycling block (in no shared
        // memory), so on several threads those of the first recycled step are new, and reused after it.
        tidyAndRecycle(step, { training: true });
        tidyAndRecycle(step, { training: true });
        const before = allocationStats();
        const again = tidyAndRecycle(step, { training: true });
        const after = allocationStats();
        // What stays new: the parameters' gradients (each step's replace the last's, made in another block).
        const gradBytes = model.parameters().reduce((n, p) => n + 4 * p.size, 0);
        expect(after.freshBytes - before.freshBytes, 'new bytes beyond the gradients').to.be.at.most(gradBytes + 0.02 * (after.reusedBytes - before.reusedBytes));
        again.forEach((a, i) => expect(Buffer.from(a.buffer).equals(Buffer.from(fresh[i]!.buffer)), `#${i} of ${again.length}`).to.equal(true));
      } finally {
        poisonPooledArrays(false);
        clearPool();
        setWasmPlanes(true);
      }
    });
  }

  it('recycles nothing from a training block whose graph outlives it: its backward still reads a dead intermediate', () => {
    const x = randn([1, 4, 8, 8], { seed: 6 }), w = randn([4, 4, 3, 3], { seed: 7 });
    const v = tensor(randn([1, 4, 8, 8], { seed: 8 }).data, [1, 4, 8, 8], { requiresGrad: true });
    clearPool();
    // h dies in the block; y = h * v lives on, and its backward computes v's gradient from h's array.
    const y = tidyAndRecycle(() => mul(relu(conv2d(x, w, null, { padding: 1 })), v), { training: true });
    expect(allocationStats().pooledBytes, 'pooled while the graph lives').to.equal(0);
    tidyAndRecycle(() => { for (let i = 0; i < 20; i++) alloc('float32', x.size).fill(7); return null; });
    y.backward(tensor(new Float32Array(y.size).fill(1), y.shape));
    const h = tidy(() => Float32Array.from(relu(conv2d(x, w, null, { padding: 1 })).data));
    expect(Buffer.from(Float32Array.from(v.grad!.data).buffer).equals(Buffer.from(h.buffer))).to.equal(true);
    tidyAndRecycle(() => { sum(mul(relu(conv2d(x, w, null, { padding: 1 })), v)).backward(); }, { training: true });
    expect(allocationStats().pooledBytes, 'pooled after a step whose backward freed its graph').to.be.greaterThan(0);
    clearPool();
  });

  it('a full pool drops the arrays it pooled longest ago for new ones', () => {
    clearPool();
    setPoolLimit(3 * 4 * 100);
    try {
      const make = (n: number, count: number): void => { tidyAndRecycle(() => { for (let i = 0; i < count; i++) alloc('float32', n).fill(1); return null; }); };
      // alloc'd arrays belong to no tensor: pool them through tensors instead (a new tensor each)
      const pooled = (n: number, count: number): void => { tidyAndRecycle(() => { for (let i = 0; i < count; i++) new Tensor(alloc('float32', n), [n]); return null; }); };
      pooled(100, 3);
      expect(allocationStats().pooledBytes).to.equal(3 * 4 * 100);
      pooled(50, 2); // needs 400 bytes: the oldest 100-float array goes
      expect(allocationStats().pooledBytes).to.equal(2 * 4 * 100 + 2 * 4 * 50);
      const before = allocationStats();
      make(50, 2);
      make(100, 2);
      const after = allocationStats();
      expect(after.reused - before.reused, 'arrays reused: both 50s, the two 100s left').to.equal(4);
    } finally {
      setPoolLimit();
      clearPool();
    }
  });

  it('an array from the pool comes back zeroed', () => {
    const x = randn([64], { seed: 4 });
    tidyAndRecycle(() => Float32Array.from(relu(x).data));
    const reused = allocationStats().reused;
    const z = tidyAndRecycle(() => Float32Array.from(alloc('float32', 64)));
    expect(allocationStats().reused).to.equal(reused + 1);
    expect([...z].every((v) => v === 0)).to.equal(true);
  });
});
