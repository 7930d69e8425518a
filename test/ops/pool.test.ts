import { expect } from 'chai';
import { ArgumentError, noGrad, avgPool2d, globalAvgPool, gradcheck, l2Pool2d, maxPool2d, mul, Rng, ShapeError, sum, tensor } from '../../src/index.js';
import { avgPoolBackward } from '../../src/backends/cpu/pool.js';
import { refPool, type RefPool } from '../reference.js';
import { expectClose, randomTensor, shapeOf } from '../helpers.js';

interface PoolCase { name: string; x: number[]; p: RefPool }

const CASES: PoolCase[] = [
  { name: '3x3 s2 p1 (FaceNet stem)', x: [2, 3, 9, 9], p: { kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1], ceil: false } },
  { name: '3x3 s1 p1 (same size)', x: [1, 2, 5, 6], p: { kernel: [3, 3], stride: [1, 1], pad: [1, 1, 1, 1], ceil: false } },
  { name: '3x3 s3 no pad (Keras L2 pool)', x: [1, 2, 12, 12], p: { kernel: [3, 3], stride: [3, 3], pad: [0, 0, 0, 0], ceil: false } },
  { name: '2x2 s2 ceil mode on odd sizes', x: [2, 2, 7, 5], p: { kernel: [2, 2], stride: [2, 2], pad: [0, 0, 0, 0], ceil: true } },
  { name: '3x3 s2 p1 ceil mode', x: [1, 2, 8, 8], p: { kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1], ceil: true } },
  { name: 'asymmetric padding, non-square kernel', x: [1, 3, 6, 7], p: { kernel: [2, 3], stride: [1, 2], pad: [0, 1, 2, 1], ceil: false } },
  { name: 'batch 1, 1 channel, kernel = input', x: [1, 1, 3, 3], p: { kernel: [3, 3], stride: [1, 1], pad: [0, 0, 0, 0], ceil: false } },
];

const ops = {
  max: (x: ReturnType<typeof randomTensor>, p: RefPool) => maxPool2d(x, { kernel: p.kernel, stride: p.stride, padding: p.pad, ceilMode: p.ceil }),
  avg: (x: ReturnType<typeof randomTensor>, p: RefPool) => avgPool2d(x, { kernel: p.kernel, stride: p.stride, padding: p.pad, ceilMode: p.ceil }),
  'avg-exclude': (x: ReturnType<typeof randomTensor>, p: RefPool) => avgPool2d(x, { kernel: p.kernel, stride: p.stride, padding: p.pad, ceilMode: p.ceil, countIncludePad: false }),
  l2: (x: ReturnType<typeof randomTensor>, p: RefPool) => l2Pool2d(x, { kernel: p.kernel, stride: p.stride, padding: p.pad, ceilMode: p.ceil }),
};

for (const [kind, op] of Object.entries(ops) as [keyof typeof ops, (typeof ops)['max']][]) {
  describe(`${kind} pool vs naive reference, and gradcheck`, () => {
    for (const [i, c] of CASES.entries()) {
      it(c.name, () => {
        const x = randomTensor(c.x, 10 + i, 'float64');
        const y = op(x, c.p);
        const ref = refPool(x.data, c.x, c.p, kind);
        expect(shapeOf(y)).to.deep.equal(ref.shape);
        expectClose(y.data, ref.y, 1e-12, 1e-12);
        const report = gradcheck((xi) => op(xi!, c.p), [x]);
        expect(report.maxRelError).to.be.at.most(1e-6);
      });
    }
  });
}

describe('pooling details', () => {
  it('max pool sends the gradient to the first maximum at ties', () => {
    const x = tensor([1, 5, 5, 2], [1, 1, 2, 2], { requiresGrad: true });
    maxPool2d(x, { kernel: 2 }).backward();
    expect(x.grad!.toArray()).to.deep.equal([0, 1, 0, 0]);
  });
  it('max pool propagates a NaN from any position of the window (as PyTorch), with or without a gradient; its gradient goes to the NaN', () => {
    for (let at = 0; at < 9; at++) {
      const values = [1, 5, 5, 2, 3, 0, 4, 5, 1];
      values[at] = NaN;
      for (const dtype of ['float32', 'float64'] as const) {
        expect(Number.isNaN(noGrad(() => maxPool2d(tensor(values, [1, 1, 3, 3], { dtype }), { kernel: 3 })).data[0]!), `NaN at ${at} (${dtype})`).to.equal(true);
        const x = tensor(values, [1, 1, 3, 3], { dtype, requiresGrad: true });
        const y = maxPool2d(x, { kernel: 3 });
        expect(Number.isNaN(y.data[0]!)).to.equal(true);
        y.backward();
        expect(x.grad!.toArray().indexOf(1), `gradient of NaN at ${at}`).to.equal(at);
      }
    }
    // Windows without a NaN are untouched by their neighbours' NaNs.
    const y = noGrad(() => maxPool2d(tensor([NaN, 0, 1, 2, 3, 4, 5, 6], [1, 1, 2, 4]), { kernel: 2, stride: 2 })).toArray();
    expect(Number.isNaN(y[0]!)).to.equal(true);
    expect(y[1]).to.equal(6);
  });
  it('L2 pool is sqrt(9 * avgpool(x²)) with padding counted, as the goldens define it', () => {
    const x = randomTensor([1, 2, 5, 5], 3, 'float64');
    const l2 = l2Pool2d(x, { kernel: 3, stride: 1, padding: 1 });
    const sq = tensor(x.data.map((v) => v * v), x.shape, { dtype: 'float64' });
    const viaAvg = avgPool2d(sq, { kernel: 3, stride: 1, padding: 1 }).data.map((v) => Math.sqrt(9 * v));
    expectClose(l2.data, viaAvg, 1e-12, 1e-12);
  });
  it('L2 pool has a zero (sub)gradient on an all-zero window instead of NaN', () => {
    const x = tensor(new Array(9).fill(0), [1, 1, 3, 3], { dtype: 'float64', requiresGrad: true });
    l2Pool2d(x, { kernel: 3 }).backward();
    expect(x.grad!.toArray()).to.deep.equal(new Array(9).fill(0));
  });
  it('global average pool is the mean of each plane, as [N, C, 1, 1]', () => {
    const x = randomTensor([2, 3, 4, 5], 4, 'float64');
    const y = globalAvgPool(x);
    expect(shapeOf(y)).to.deep.equal([2, 3, 1, 1]);
    for (let p = 0; p < 6; p++) {
      const plane = Array.from(x.data.subarray(p * 20, p * 20 + 20));
      expect(y.data[p]).to.be.closeTo(plane.reduce((a, b) => a + b, 0) / 20, 1e-12);
    }
    expect(gradcheck((xi) => globalAvgPool(xi!), [x]).maxRelError).to.be.at.most(1e-6);
  });
  it('random geometries match the reference (max, avg, l2)', () => {
    const rng = new Rng(11);
    for (let t = 0; t < 25; t++) {
      const k: [number, number] = [rng.int(1, 4), rng.int(1, 4)];
      const p: RefPool = {
        kernel: k, stride: [rng.int(1, 3), rng.int(1, 3)],
        pad: [rng.int(0, k[0] - 1), rng.int(0, k[0] - 1), rng.int(0, k[1] - 1), rng.int(0, k[1] - 1)], ceil: rng.next() < 0.5,
      };
      const x = randomTensor([rng.int(1, 2), rng.int(1, 3), rng.int(k[0], 9), rng.int(k[1], 9)], rng, 'float64');
      for (const kind of ['max', 'avg', 'avg-exclude', 'l2'] as const) {
        const y = ops[kind](x, p);
        const ref = refPool(x.data, [...x.shape], p, kind);
        expect(shapeOf(y), `${kind} ${JSON.stringify(p)}`).to.deep.equal(ref.shape);
        expectClose(y.data, ref.y, 1e-12, 1e-12, `${kind} trial ${t}`);
      }
    }
  });
  it('2x2 stride-2 average pools (a straight-line path) equal the naive reference exactly, odd sizes included, and give each input its window\'s dy / 4', () => {
    for (const shape of [[2, 3, 7, 9], [1, 2, 4, 6]]) {
      const p: RefPool = { kernel: [2, 2], stride: [2, 2], pad: [0, 0, 0, 0], ceil: false };
      const x = randomTensor(shape, 5, 'float64');
      const ref = refPool(x.data, shape, p, 'avg');
      expect(Array.from(noGrad(() => avgPool2d(x, { kernel: 2, stride: 2 })).data)).to.deep.equal(ref.y);
      const x32 = tensor(Array.from(x.data), shape);
      expect(Array.from(noGrad(() => avgPool2d(x32, { kernel: 2, stride: 2 })).data)).to.deep.equal(refPool(x32.data, shape, p, 'avg').y.map(Math.fround));
      // Backward: sum(y * r) has gradient r[window] / 4 on each window's inputs, 0 on the uncovered last row or column.
      const [N, C, H, W] = shape as [number, number, number, number], OH = H >> 1, OW = W >> 1;
      const r = randomTensor([N, C, OH, OW], 6, 'float64');
      const xg = tensor(Array.from(x.data), shape, { dtype: 'float64', requiresGrad: true });
      sum(mul(avgPool2d(xg, { kernel: 2, stride: 2 }), r)).backward();
      const expected = new Array<number>(x.size).fill(0);
      for (let plane = 0; plane < N * C; plane++) {
        for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) if (i < 2 * OH && j < 2 * OW) expected[(plane * H + i) * W + j] = 0 + r.data[(plane * OH + (i >> 1)) * OW + (j >> 1)]! / 4;
      }
      expect(Array.from(xg.grad!.data)).to.deep.equal(expected);
      expect(gradcheck((xi) => avgPool2d(xi!, { kernel: 2, stride: 2 }), [x]).maxRelError).to.be.at.most(1e-6);
    }
  });
  it('the 2x2 stride-2 average pool\'s backward lands a -0 share as +0, as the window loops add it onto 0', () => {
    const g = { N: 1, C: 1, H: 2, W: 4, KH: 2, KW: 2, OH: 1, OW: 2, strideH: 2, strideW: 2, padTop: 0, padBottom: 0, padLeft: 0, padRight: 0 };
    const dx = avgPoolBackward(new Float32Array([-0, -8]), g, true);
    expect(Array.from(dx, (v) => Object.is(v, 0))).to.deep.equal([true, true, false, false, true, true, false, false]);
    expect(Array.from(dx)).to.deep.equal([0, 0, -2, -2, 0, 0, -2, -2]);
  });
  it('rejects padding as large as the kernel and windows larger than the input', () => {
    const x = randomTensor([1, 1, 4, 4], 1);
    expect(() => maxPool2d(x, { kernel: 2, padding: 2 })).to.throw(ArgumentError, /smaller than the kernel/);
    expect(() => maxPool2d(x, { kernel: 5 })).to.throw(ArgumentError, /smaller than the 5x5 window/);
    expect(() => maxPool2d(randomTensor([4, 4], 1), { kernel: 2 })).to.throw(ShapeError, /maxPool2d/);
  });
});
