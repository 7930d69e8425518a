import { expect } from 'chai';
import { add, keep, liveTensors, mul, Rng, randn, sum, tensor, tidy } from '../../src/index.js';
import { tinyInception } from '../../src/autograd/inception_case.js';
import { resetPeakBytes, tensorBytes } from '../../src/autograd/memory.js';

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
