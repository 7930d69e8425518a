import { expect } from 'chai';
import { conv2d, depthwiseConv2d, gradcheck, mul, noGrad, Rng, ShapeError, DTypeError, ArgumentError, sum, tensor } from '../../src/index.js';
import { refConv2d, type RefConv } from '../reference.js';
import { expectClose, randomTensor, shapeOf } from '../helpers.js';

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  stride?: [number, number];
  pad?: [number, number, number, number];
  dilation?: [number, number];
  groups?: number;
  bias?: boolean;
}

const CASES: ConvCase[] = [
  { name: 'batch 1, 3x3, pad 1', x: [1, 3, 5, 5], w: [4, 3, 3, 3], pad: [1, 1, 1, 1] },
  { name: 'odd sizes, no bias', x: [2, 3, 7, 5], w: [5, 3, 3, 2], bias: false },
  { name: 'stride 2 with padding (7x7 s2 p3, FaceNet conv1)', x: [2, 3, 13, 11], w: [4, 3, 7, 7], stride: [2, 2], pad: [3, 3, 3, 3] },
  { name: '1x1 fast path', x: [3, 8, 4, 6], w: [5, 8, 1, 1] },
  { name: '1x1 with stride 2 (not the fast path)', x: [2, 4, 5, 5], w: [3, 4, 1, 1], stride: [2, 2] },
  { name: 'kernel larger than the input, with padding', x: [1, 2, 3, 3], w: [2, 2, 5, 5], pad: [2, 2, 2, 2] },
  { name: 'asymmetric padding', x: [2, 2, 6, 5], w: [3, 2, 3, 3], pad: [0, 2, 1, 0], stride: [2, 1] },
  { name: 'dilation 2', x: [1, 2, 9, 8], w: [2, 2, 3, 3], dilation: [2, 2], pad: [2, 2, 2, 2] },
  { name: 'groups 2', x: [2, 4, 5, 5], w: [6, 2, 3, 3], groups: 2, pad: [1, 1, 1, 1] },
  { name: 'depthwise 3x3 s2', x: [2, 4, 7, 7], w: [4, 1, 3, 3], groups: 4, stride: [2, 2], pad: [1, 1, 1, 1] },
  { name: 'depthwise with channel multiplier 2', x: [1, 3, 5, 4], w: [6, 1, 3, 3], groups: 3, pad: [1, 1, 1, 1] },
  { name: 'non-square kernel 1x7', x: [1, 2, 6, 9], w: [3, 2, 1, 7], pad: [0, 0, 3, 3] },
  // Output planes of 256+ pixels: one GEMM per image, reading and writing the NCHW planes in place.
  { name: '1x1 on 16x17 planes, batch 2 (GEMMs in place)', x: [2, 5, 16, 17], w: [3, 5, 1, 1] },
  { name: '3x3 on 18x16 planes, batch 2 (one GEMM per image)', x: [2, 3, 18, 16], w: [4, 3, 3, 3], pad: [1, 1, 1, 1] },
];

describe('conv2d forward vs naive reference', () => {
  for (const [i, c] of CASES.entries()) {
    it(c.name, () => {
      const p: RefConv = { stride: c.stride ?? [1, 1], pad: c.pad ?? [0, 0, 0, 0], dilation: c.dilation ?? [1, 1], groups: c.groups ?? 1 };
      const x = randomTensor(c.x, 100 + i), w = randomTensor(c.w, 200 + i);
      const b = c.bias === false ? null : randomTensor([c.w[0]!], 300 + i);
      const y = conv2d(x, w, b, { stride: p.stride, padding: p.pad, dilation: p.dilation, groups: p.groups });
      const ref = refConv2d(x.data, c.x, w.data, c.w, b?.data ?? null, p);
      expect(shapeOf(y)).to.deep.equal(ref.shape);
      expectClose(y.data, ref.y, 1e-5, 1e-5, c.name);
    });
  }

  it('matches the reference on 30 random geometries (float64, 1e-12)', () => {
    const rng = new Rng(7);
    for (let t = 0; t < 30; t++) {
      const groups = rng.pick([1, 1, 2, 3]);
      const C = groups * rng.int(1, 3), O = groups * rng.int(1, 3);
      const x = randomTensor([rng.int(1, 3), C, rng.int(1, 9), rng.int(1, 9)], rng, 'float64');
      const KH = rng.int(1, 5), KW = rng.int(1, 5);
      const p: RefConv = {
        stride: [rng.int(1, 3), rng.int(1, 3)],
        pad: [rng.int(0, 3), rng.int(0, 3), rng.int(0, 3), rng.int(0, 3)],
        dilation: [rng.int(1, 2), rng.int(1, 2)],
        groups,
      };
      const effH = (KH - 1) * p.dilation[0] + 1, effW = (KW - 1) * p.dilation[1] + 1;
      if (x.shape[2]! + p.pad[0] + p.pad[1] < effH || x.shape[3]! + p.pad[2] + p.pad[3] < effW) continue;
      const w = randomTensor([O, C / groups, KH, KW], rng, 'float64'), b = randomTensor([O], rng, 'float64');
      const y = conv2d(x, w, b, { stride: p.stride, padding: p.pad, dilation: p.dilation, groups });
      const ref = refConv2d(x.data, [...x.shape], w.data, [...w.shape], b.data, p);
      expect(shapeOf(y)).to.deep.equal(ref.shape);
      expectClose(y.data, ref.y, 1e-12, 1e-12, `trial ${t}`);
    }
  });

  it('float32 im2col by copies and straight from large planes, forward and both gradients, as in float64', () => {
    // A 200x200 plane is far larger than one GEMM block: those blocks are read from x directly; the 24x20
    // planes are small enough to be copied into scratch first. float64 takes neither path.
    for (const [xs, ws] of [[[1, 1, 200, 200], [4, 1, 3, 3]], [[3, 5, 24, 20], [6, 5, 3, 3]]] as const) {
      const x64 = randomTensor([...xs], 11, 'float64'), w64 = randomTensor([...ws], 12, 'float64');
      const run = (dtype: 'float32' | 'float64'): Float64Array[] => {
        const x = tensor(x64.data, x64.shape, { dtype, requiresGrad: true }), w = tensor(w64.data, w64.shape, { dtype, requiresGrad: true });
        const y = conv2d(x, w, null, { padding: 1 });
        sum(mul(y, y)).backward();
        return [y, x.grad!, w.grad!].map((t) => Float64Array.from(t.data));
      };
      const [want, got] = [run('float64'), run('float32')];
      for (let i = 0; i < 3; i++) {
        const scale = want[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expectClose(got[i]!, want[i]!, 1e-5 * scale, 0, `${xs.join('x')} ${['y', 'dx', 'dw'][i]}`);
      }
    }
  });

  it('im2col and col2im of blocks within one image (each plane staged only where the taps reach): forward and both gradients as in float64', () => {
    // Planes larger than a 512-column block, so blocks lie inside one image and stage only part of each plane.
    const geometries = [
      { x: [2, 3, 40, 37], w: [5, 3, 3, 3], o: { padding: 1 } },
      { x: [2, 4, 45, 41], w: [3, 4, 5, 5], o: { padding: 2, stride: 2 } },
      { x: [1, 2, 50, 47], w: [4, 2, 3, 3], o: { padding: [2, 1, 0, 2] as [number, number, number, number], dilation: 2 } },
      { x: [2, 3, 33, 60], w: [4, 3, 7, 7], o: { padding: 3, stride: 2 } },
    ];
    for (const c of geometries) {
      const x64 = randomTensor(c.x, 13, 'float64'), w64 = randomTensor(c.w, 14, 'float64');
      const run = (dtype: 'float32' | 'float64'): Float64Array[] => {
        const x = tensor(x64.data, x64.shape, { dtype, requiresGrad: true }), w = tensor(w64.data, w64.shape, { dtype, requiresGrad: true });
        const y = conv2d(x, w, null, c.o);
        sum(mul(y, y)).backward();
        return [y, x.grad!, w.grad!].map((t) => Float64Array.from(t.data));
      };
      const [want, got] = [run('float64'), run('float32')];
      for (let i = 0; i < 3; i++) {
        const scale = want[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expectClose(got[i]!, want[i]!, 1e-5 * scale, 0, `${c.x.join('x')} ${['y', 'dx', 'dw'][i]}`);
      }
    }
  });

  it('stride-1 dx as a transposed convolution (planes beyond the tap map): the adjoint of the naive reference', () => {
    // 9 taps x 175x171 output pixels is more than the tap map holds, so dx is the forward convolution of dy
    // with the flipped filters (smaller planes take col2im, checked by the gradchecks below). A convolution
    // is linear in x: for any v, <conv(v), u> = <v, dx> when dx is the gradient of <conv(x), u>.
    const xs = [1, 2, 175, 171], ws = [3, 2, 3, 3], p: RefConv = { stride: [1, 1], pad: [0, 2, 1, 1], dilation: [1, 1], groups: 1 };
    const x = randomTensor(xs, 21, 'float64'), w = randomTensor(ws, 22, 'float64');
    x.requiresGrad = true;
    const y = conv2d(x, w, null, { padding: p.pad });
    const u = randomTensor([...y.shape], 23, 'float64');
    sum(mul(y, u)).backward();
    for (const seed of [24, 25]) {
      const v = randomTensor(xs, seed, 'float64');
      const convV = refConv2d(v.data, xs, w.data, ws, null, p).y;
      let want = 0, got = 0;
      convV.forEach((c, i) => { want += c * u.data[i]!; });
      v.data.forEach((vi: number, i: number) => { got += vi * x.grad!.data[i]!; });
      expect(Math.abs(got - want), `<v, dx> ${got} vs <conv(v), u> ${want}`).to.be.below(1e-9 * Math.abs(want) + 1e-9);
    }
  });

  it("'same' padding gives ceil(in/stride) outputs with the extra pixel bottom/right (TensorFlow)", () => {
    const x = randomTensor([1, 2, 7, 8], 1, 'float64'), w = randomTensor([3, 2, 3, 3], 2, 'float64');
    const y = conv2d(x, w, null, { stride: 2, padding: 'same' });
    expect(shapeOf(y)).to.deep.equal([1, 3, 4, 4]);
    // H: out 4, total pad (4-1)*2+3-7 = 2 -> [1, 1]; W: (4-1)*2+3-8 = 1 -> [0, 1].
    const ref = refConv2d(x.data, [1, 2, 7, 8], w.data, [3, 2, 3, 3], null, { stride: [2, 2], pad: [1, 1, 0, 1], dilation: [1, 1], groups: 1 });
    expectClose(y.data, ref.y, 1e-12, 1e-12);
  });

  it('depthwiseConv2d equals conv2d with groups = C', () => {
    const x = randomTensor([2, 3, 6, 6], 3), w = randomTensor([3, 1, 3, 3], 4);
    expectClose(depthwiseConv2d(x, w, null, { padding: 1 }).data, refConv2d(x.data, [2, 3, 6, 6], w.data, [3, 1, 3, 3], null, { stride: [1, 1], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 3 }).y);
  });

  it('float64 and float32 agree to float32 precision', () => {
    const x64 = randomTensor([2, 3, 8, 8], 5, 'float64'), w64 = randomTensor([4, 3, 3, 3], 6, 'float64');
    const x32 = tensor(x64.data, x64.shape, { dtype: 'float32' }), w32 = tensor(w64.data, w64.shape, { dtype: 'float32' });
    expectClose(conv2d(x32, w32, null, { padding: 1 }).data, conv2d(x64, w64, null, { padding: 1 }).data, 1e-5, 1e-5);
  });
});

describe('conv2d errors', () => {
  const x = randomTensor([1, 3, 5, 5], 1);
  it('names the op and both shapes on a channel mismatch', () => {
    expect(() => conv2d(x, randomTensor([4, 2, 3, 3], 2))).to.throw(ShapeError, /conv2d: expected filter \[4, 3, KH, KW\].*got \[4, 2, 3, 3\]/);
  });
  it('rejects an input of the wrong rank', () => {
    expect(() => conv2d(randomTensor([3, 5, 5], 1), randomTensor([4, 3, 3, 3], 2))).to.throw(ShapeError, /rank 4 \[N, C, H, W\]/);
  });
  it('rejects a bias of the wrong length', () => {
    expect(() => conv2d(x, randomTensor([4, 3, 3, 3], 2), randomTensor([3], 3))).to.throw(ShapeError, /bias \[4\]/);
  });
  it('rejects a kernel larger than the padded input', () => {
    expect(() => conv2d(x, randomTensor([4, 3, 7, 7], 2))).to.throw(ShapeError, /at least as large as the dilated kernel/);
  });
  it('rejects groups that do not divide the channels, and zero strides', () => {
    expect(() => conv2d(x, randomTensor([4, 1, 3, 3], 2), null, { groups: 2 })).to.throw(ArgumentError, /groups=2 must divide/);
    expect(() => conv2d(x, randomTensor([4, 3, 3, 3], 2), null, { stride: 0 })).to.throw(ArgumentError, /positive integers/);
    expect(() => conv2d(x, randomTensor([4, 3, 3, 3], 2), null, { padding: -1 })).to.throw(ArgumentError, /non-negative/);
  });
  it('refuses to mix dtypes', () => {
    expect(() => conv2d(x, randomTensor([4, 3, 3, 3], 2, 'float64'))).to.throw(DTypeError, /float32, float64/);
  });
  it('records no graph under noGrad', () => {
    const w = randomTensor([4, 3, 3, 3], 2);
    w.requiresGrad = true;
    const y = noGrad(() => conv2d(x, w));
    expect(y.requiresGrad).to.equal(false);
    expect(y.node).to.equal(null);
  });
});

describe('conv2d backward (gradcheck, float64, every edge case above)', () => {
  for (const [i, c] of CASES.entries()) {
    it(c.name, () => {
      const x = randomTensor(c.x, 400 + i, 'float64'), w = randomTensor(c.w, 500 + i, 'float64');
      const b = randomTensor([c.w[0]!], 600 + i, 'float64');
      const options = { stride: c.stride ?? 1, padding: c.pad ?? 0, dilation: c.dilation ?? 1, groups: c.groups ?? 1 };
      const report = gradcheck((xi, wi, bi) => conv2d(xi!, wi!, bi!, options), [x, w, b], { names: ['x', 'w', 'bias'] });
      expect(report.maxRelError, JSON.stringify(report.inputs)).to.be.at.most(1e-6);
      expect(report.ok).to.equal(true);
    });
  }
});
