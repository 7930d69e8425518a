import { expect } from 'chai';
import { add, ArgumentError, batchNorm, channelAffine, conv2d, reshape, type Tensor, foldBatchNorm, gradcheck, l2Normalize, lrn, mul, ones, relu, ShapeError, sum, tensor, zeros } from '../../src/index.js';
import { refBatchNorm, refConv2d, refL2NormalizeRows, refLrn } from '../reference.js';
import { expectClose, randomTensor } from '../helpers.js';

describe('lrn', () => {
  for (const [i, c] of [
    { shape: [2, 7, 3, 3], size: 5, torch: true, alpha: 1e-4, beta: 0.75, k: 1 },
    { shape: [1, 16, 2, 2], size: 11, torch: false, alpha: 1e-4, beta: 0.75, k: 1 },
    { shape: [1, 3, 4, 1], size: 5, torch: true, alpha: 2, beta: 0.5, k: 2 },
    { shape: [2, 1, 2, 2], size: 3, torch: false, alpha: 0.3, beta: 1.2, k: 0.5 },
  ].entries()) {
    it(`${c.torch ? 'Torch' : 'TF'} convention, size ${c.size}, C=${c.shape[1]}: forward vs reference and gradcheck`, () => {
      const x = randomTensor(c.shape, 20 + i, 'float64');
      const options = { size: c.size, alpha: c.alpha, beta: c.beta, k: c.k, convention: c.torch ? ('torch' as const) : ('tf' as const) };
      expectClose(lrn(x, options).data, refLrn(x.data, c.shape, c.size, c.alpha, c.beta, c.k, c.torch), 1e-12, 1e-12);
      expect(gradcheck((xi) => lrn(xi!, options), [x]).maxRelError).to.be.at.most(1e-6);
    });
  }
  it('the two conventions differ exactly by alpha/size', () => {
    const x = randomTensor([1, 6, 2, 2], 3, 'float64');
    const torch = lrn(x, { size: 5, alpha: 0.5, beta: 0.75, convention: 'torch' });
    const tf = lrn(x, { size: 5, alpha: 0.1, beta: 0.75, convention: 'tf' });
    expectClose(torch.data, tf.data, 1e-14, 1e-14);
  });
  it('rejects even window sizes and non-4-D input', () => {
    expect(() => lrn(randomTensor([1, 4, 2, 2], 1), { size: 4, alpha: 1, beta: 1 })).to.throw(ArgumentError, /odd/);
    expect(() => lrn(randomTensor([4, 2], 1), { size: 3, alpha: 1, beta: 1 })).to.throw(ShapeError, /lrn/);
  });
});

describe('channelAffine', () => {
  it('equals relu(x * scale + shift) composed of mul, add and relu: values and every gradient (float32, planes past a chunk, [N, C])', () => {
    for (const shape of [[4, 3, 5, 6], [2, 5, 70, 70], [6, 3]]) {
      for (const withRelu of [false, true]) {
        const C = shape[1]!, bshape = shape.map((d, i) => (i === 1 ? d : 1));
        const run = (fused: boolean): Float64Array[] => {
          const x = randomTensor(shape, 7), s = randomTensor([C], 8), t = randomTensor([C], 9), up = randomTensor(shape, 10);
          for (const v of [x, s, t]) v.requiresGrad = true;
          const composed = (): Tensor => { const y = add(mul(x, reshape(s, bshape)), reshape(t, bshape)); return withRelu ? relu(y) : y; };
          const y = fused ? channelAffine(x, s, t, { relu: withRelu }) : composed();
          sum(mul(y, up)).backward();
          return [y, x.grad!, s.grad!, t.grad!].map((v) => Float64Array.from(v.data));
        };
        const [fused, plain] = [run(true), run(false)];
        fused.forEach((v, i) => {
          const scale = plain[i]!.reduce((m, p) => Math.max(m, Math.abs(p)), 1e-30);
          expectClose(v, plain[i]!, 1e-6 * scale, 0, `${shape.join('x')} relu=${withRelu} ${['y', 'dx', 'dscale', 'dshift'][i]}`);
        });
      }
    }
  });
  it('names the op and the expected shape of a wrong scale or shift', () => {
    expect(() => channelAffine(randomTensor([2, 3, 2, 2], 1), randomTensor([2], 2), randomTensor([3], 3))).to.throw(ShapeError, /channelAffine.*scale \[3\]/);
    expect(() => channelAffine(randomTensor([2, 3], 1), randomTensor([3], 2), randomTensor([3, 1], 3))).to.throw(ShapeError, /shift \[3\]/);
    expect(() => channelAffine(randomTensor([3], 1), randomTensor([3], 2), randomTensor([3], 3))).to.throw(ShapeError, /\[N, C\]/);
  });
});

describe('batchNorm', () => {
  it('relu: true gives exactly relu(batchNorm(x)), values and gradients (training mode, float32); gradcheck', () => {
    const run = (fused: boolean): Float32Array[] => {
      const x = randomTensor([4, 3, 5, 6], 7), g = randomTensor([3], 8), b = randomTensor([3], 9), up = randomTensor([4, 3, 5, 6], 10);
      for (const t of [x, g, b]) t.requiresGrad = true;
      const stats = { runningMean: zeros([3]), runningVar: ones([3]), training: true };
      const y = fused ? batchNorm(x, { gamma: g, beta: b, ...stats, relu: true }) : relu(batchNorm(x, { gamma: g, beta: b, ...stats }));
      sum(mul(y, up)).backward();
      return [y.data, x.grad!.data, g.grad!.data, b.grad!.data].map((d) => Float32Array.from(d));
    };
    const [fused, plain] = [run(true), run(false)];
    fused.forEach((v, i) => expect(Array.from(v), ['y', 'dx', 'dgamma', 'dbeta'][i]).to.deep.equal(Array.from(plain[i]!)));
    expect(fused[0]!.some((v) => v === 0) && fused[0]!.some((v) => v > 0), 'some outputs clipped, some not').to.equal(true);
    const x = randomTensor([3, 2, 3, 4], 11, 'float64'), g = randomTensor([2], 12, 'float64'), b = randomTensor([2], 13, 'float64');
    const report = gradcheck((xi, gi, bi) => batchNorm(xi!, { gamma: gi, beta: bi, runningMean: zeros([2], { dtype: 'float64' }), runningVar: ones([2], { dtype: 'float64' }), training: true, relu: true }), [x, g, b]);
    expect(report.maxRelError).to.be.at.most(1e-6);
  });
  it('training mode: normalizes with batch statistics (biased variance)', () => {
    const x = randomTensor([3, 4, 2, 5], 1, 'float64'), g = randomTensor([4], 2, 'float64'), b = randomTensor([4], 3, 'float64');
    const y = batchNorm(x, { gamma: g, beta: b, runningMean: zeros([4], { dtype: 'float64' }), runningVar: ones([4], { dtype: 'float64' }), training: true, eps: 1e-5 });
    expectClose(y.data, refBatchNorm(x.data, [3, 4, 2, 5], g.data, b.data, null, null, 1e-5), 1e-12, 1e-10);
  });
  it('training mode: statistics stay exact for data with a mean far above its spread (one-pass moments, shifted)', () => {
    const base = randomTensor([3, 4, 2, 5], 4, 'float64');
    const x = tensor(base.data.map((v, i) => 1e8 * (1 + (Math.floor(i / 10) % 4)) + v), [3, 4, 2, 5], { dtype: 'float64' });
    const y = batchNorm(x, { runningMean: zeros([4], { dtype: 'float64' }), runningVar: ones([4], { dtype: 'float64' }), training: true, eps: 1e-5 });
    // E[x^2] - E[x]^2 without the shift would lose everything at 1e16 / 1 relative scale.
    expectClose(y.data, refBatchNorm(x.data, [3, 4, 2, 5], [1, 1, 1, 1], [0, 0, 0, 0], null, null, 1e-5), 1e-6, 1e-6); // inputs at 1e8 carry ~1e-8 absolute rounding
  });
  it('training mode: updates running statistics with momentum and the unbiased variance (PyTorch)', () => {
    const x = tensor([1, 2, 3, 5], [4, 1], { dtype: 'float64' });
    const rm = zeros([1], { dtype: 'float64' }), rv = ones([1], { dtype: 'float64' });
    batchNorm(x, { runningMean: rm, runningVar: rv, training: true, momentum: 0.1 });
    // mean 2.75, unbiased var = (3.0625 + 0.5625 + 0.0625 + 5.0625) / 3 = 2.9166...
    expect(rm.item()).to.be.closeTo(0.275, 1e-12);
    expect(rv.item()).to.be.closeTo(0.9 + 0.1 * (8.75 / 3), 1e-12);
  });
  it('eval mode: uses the running statistics, and one sample equals the same sample inside a batch', () => {
    const x = randomTensor([3, 2, 2, 2], 4, 'float64');
    const p = { gamma: randomTensor([2], 5, 'float64'), beta: randomTensor([2], 6, 'float64'), runningMean: randomTensor([2], 7, 'float64'), runningVar: tensor([0.5, 2], [2], { dtype: 'float64' }), eps: 1e-3 };
    const y = batchNorm(x, p);
    expectClose(y.data, refBatchNorm(x.data, [3, 2, 2, 2], p.gamma.data, p.beta.data, p.runningMean.data, p.runningVar.data, 1e-3), 1e-12, 1e-12);
    const first = tensor(x.data.subarray(0, 8), [1, 2, 2, 2], { dtype: 'float64' });
    expectClose(batchNorm(first, p).data, y.data.subarray(0, 8), 0, 0);
  });
  it('works on [N, C] (after dense layers) and without affine parameters', () => {
    const x = randomTensor([5, 3], 8, 'float64');
    const y = batchNorm(x, { runningMean: zeros([3], { dtype: 'float64' }), runningVar: ones([3], { dtype: 'float64' }), training: true });
    expectClose(y.data, refBatchNorm(x.data, [5, 3], [1, 1, 1], [0, 0, 0], null, null, 1e-5), 1e-12, 1e-10);
  });
  for (const training of [true, false]) {
    it(`gradcheck in ${training ? 'training' : 'eval'} mode (x, gamma, beta; through the batch statistics)`, () => {
      const rm = randomTensor([3], 1, 'float64'), rv = tensor([0.7, 1.3, 2], [3], { dtype: 'float64' });
      const report = gradcheck((x, g, b) => batchNorm(x!, { gamma: g!, beta: b!, runningMean: rm, runningVar: rv, training }),
        [randomTensor([2, 3, 3, 2], 9, 'float64'), randomTensor([3], 10, 'float64'), randomTensor([3], 11, 'float64')]);
      expect(report.maxRelError).to.be.at.most(1e-6);
    });
  }
  for (const training of [true, false]) {
    it(`inputBias b in ${training ? 'training' : 'eval'} mode equals batchNorm(x + b): output, running statistics and every gradient; gradcheck`, () => {
      const x = randomTensor([2, 3, 4, 3], 12, 'float64'), b = randomTensor([3], 13, 'float64'), up = randomTensor([2, 3, 4, 3], 14, 'float64');
      const run = (fold: boolean): { y: Tensor; grads: Float64Array[]; stats: Float64Array[] } => {
        const rm = randomTensor([3], 15, 'float64'), rv = tensor([0.7, 1.3, 2], [3], { dtype: 'float64' });
        const [xi, bi, g, be] = [x, b, randomTensor([3], 16, 'float64'), randomTensor([3], 17, 'float64')].map((t) => tensor(t.data, t.shape, { dtype: 'float64', requiresGrad: true }));
        const o = { gamma: g!, beta: be!, runningMean: rm, runningVar: rv, training, relu: true };
        const y = fold ? batchNorm(xi!, { ...o, inputBias: bi! }) : batchNorm(add(xi!, reshape(bi!, [1, 3, 1, 1])), o);
        sum(mul(y, up)).backward();
        return { y, grads: [xi!, bi!, g!, be!].map((t) => Float64Array.from(t.grad!.data)), stats: [Float64Array.from(rm.data), Float64Array.from(rv.data)] };
      };
      const [folded, added] = [run(true), run(false)];
      expectClose(folded.y.data, added.y.data, 1e-12, 1e-12, 'y');
      folded.grads.forEach((g, i) => expectClose(g, added.grads[i]!, 1e-12, 1e-12, ['dx', 'db', 'dgamma', 'dbeta'][i]));
      folded.stats.forEach((st, i) => expectClose(st, added.stats[i]!, 1e-12, 1e-12, ['running mean', 'running var'][i]));
      if (training) expect([...folded.grads[1]!].every((v) => v === 0), 'with batch statistics the bias gradient is exactly 0').to.equal(true);
      else expect(Math.max(...folded.grads[1]!.map(Math.abs))).to.be.greaterThan(1e-3);
      const rm = randomTensor([3], 15, 'float64'), rv = tensor([0.7, 1.3, 2], [3], { dtype: 'float64' });
      const report = gradcheck((xi, bi) => batchNorm(xi!, { runningMean: rm, runningVar: rv, training, inputBias: bi! }), [x, b], { names: ['x', 'inputBias'] });
      expect(report.maxRelError).to.be.at.most(1e-6);
    });
  }
  it('rejects batch 1 with 1x1 maps in training mode, and wrong parameter shapes', () => {
    expect(() => batchNorm(randomTensor([1, 2, 1, 1], 1), { runningMean: zeros([2]), runningVar: ones([2]), training: true })).to.throw(ShapeError, /more than one value per channel/);
    expect(() => batchNorm(randomTensor([2, 2, 1, 1], 1), { runningMean: zeros([3]), runningVar: ones([2]) })).to.throw(ShapeError, /runningMean \[2\]/);
  });
  it('foldBatchNorm: conv then eval-BN equals the folded conv', () => {
    const x = randomTensor([2, 3, 5, 5], 12, 'float64'), w = randomTensor([4, 3, 3, 3], 13, 'float64'), b = randomTensor([4], 14, 'float64');
    const bn = { gamma: randomTensor([4], 15, 'float64'), beta: randomTensor([4], 16, 'float64'), runningMean: randomTensor([4], 17, 'float64'), runningVar: tensor([0.5, 1, 1.5, 2], [4], { dtype: 'float64' }), eps: 1e-3 };
    const unfolded = batchNorm(conv2d(x, w, b, { padding: 1 }), bn);
    const folded = foldBatchNorm(w, b, bn);
    const ref = refConv2d(x.data, [2, 3, 5, 5], folded.weight.data, [4, 3, 3, 3], folded.bias.data, { stride: [1, 1], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1 });
    expectClose(ref.y, unfolded.data, 1e-12, 1e-10);
  });
});

describe('l2Normalize', () => {
  it('rows have unit norm and match the reference', () => {
    const x = randomTensor([4, 7], 1, 'float64');
    const y = l2Normalize(x);
    expectClose(y.data, refL2NormalizeRows(x.data, 4, 7, 1e-12), 1e-14, 1e-12);
    for (let n = 0; n < 4; n++) expect(Math.hypot(...y.data.subarray(n * 7, n * 7 + 7))).to.be.closeTo(1, 1e-12);
  });
  it('the epsilon guards the zero vector (no NaN) and its gradient', () => {
    const x = zeros([1, 3], { dtype: 'float64', requiresGrad: true });
    const y = l2Normalize(x, { eps: 1e-6 });
    expect(y.toArray()).to.deep.equal([0, 0, 0]);
    y.backward(ones([1, 3], { dtype: 'float64' }));
    expect(x.grad!.toArray()).to.deep.equal([1e6, 1e6, 1e6]);
  });
  it('normalizes along other axes (channels of a feature map)', () => {
    const x = randomTensor([2, 3, 2, 2], 2, 'float64');
    const y = l2Normalize(x, { axis: 1 });
    for (let n = 0; n < 2; n++) for (let p = 0; p < 4; p++) {
      expect(Math.hypot(...[0, 1, 2].map((c) => y.data[(n * 3 + c) * 4 + p]!))).to.be.closeTo(1, 1e-12);
    }
    expect(gradcheck((xi) => l2Normalize(xi!, { axis: 1 }), [x]).maxRelError).to.be.at.most(1e-6);
  });
});
