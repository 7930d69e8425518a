import { expect } from 'chai';
import * as F from '../../src/index.js';
import { gradcheck, ShapeError, tensor, type Tensor } from '../../src/index.js';
import { ravel, unravel } from '../reference.js';
import { expectClose, randomTensor, shapeOf } from '../helpers.js';

/** Reference broadcast: index each operand by clamping its size-1 dims to 0. */
function refBinary(a: Tensor, b: Tensor, f: (x: number, y: number) => number): { y: number[]; shape: number[] } {
  const shape = a.shape.map((d, i) => Math.max(d, b.shape[i]!));
  const n = shape.reduce((p, d) => p * d, 1);
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    const ia = ravel(idx.map((v, d) => (a.shape[d] === 1 ? 0 : v)), [...a.shape]);
    const ib = ravel(idx.map((v, d) => (b.shape[d] === 1 ? 0 : v)), [...b.shape]);
    y.push(f(a.data[ia]!, b.data[ib]!));
  }
  return { y, shape };
}

const BINARY: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number][] = [
  ['add', F.add, (x, y) => x + y],
  ['sub', F.sub, (x, y) => x - y],
  ['mul', F.mul, (x, y) => x * y],
  ['div', F.div, (x, y) => x / y],
  ['maximum', F.maximum, (x, y) => Math.max(x, y)],
  ['minimum', F.minimum, (x, y) => Math.min(x, y)],
];

describe('binary elementwise ops with channel broadcasting', () => {
  const pairs: [number[], number[]][] = [
    [[2, 3, 4, 5], [2, 3, 4, 5]],
    [[2, 3, 4, 5], [1, 3, 1, 1]], // per-channel bias
    [[1, 3, 1, 1], [2, 3, 4, 5]], // broadcast on the left
    [[2, 1, 4, 1], [1, 3, 1, 5]], // both sides stretch
    [[4, 6], [1, 6]],
  ];
  for (const [name, op, f] of BINARY) {
    it(`${name}: forward vs reference on ${pairs.length} shape pairs, and gradcheck`, () => {
      pairs.forEach(([sa, sb], i) => {
        const a = randomTensor(sa, 30 + i, 'float64');
        const b = name === 'div' ? F.add(F.abs(randomTensor(sb, 40 + i, 'float64')), 0.5) : randomTensor(sb, 40 + i, 'float64');
        const y = op(a, b);
        const ref = refBinary(a, b, f);
        expect(shapeOf(y)).to.deep.equal(ref.shape);
        expectClose(y.data, ref.y, 1e-14, 1e-14);
        expect(gradcheck((x, z) => op(x!, z!), [a, b]).maxRelError, `${name} ${sa} ${sb}`).to.be.at.most(1e-6);
      });
    });
  }
  it('scalar operands', () => {
    const a = tensor([1, -2, 3], [3]);
    expect(F.add(a, 1).toArray()).to.deep.equal([2, -1, 4]);
    expect(F.mul(a, -2).toArray()).to.deep.equal([-2, 4, -6]);
    expect(F.maximum(a, 0).toArray()).to.deep.equal([1, 0, 3]);
    expect(gradcheck((x) => F.div(F.sub(x!, 3), 7), [randomTensor([2, 3], 1, 'float64')]).maxRelError).to.be.at.most(1e-6);
  });
  it('refuses different ranks (no silent right-alignment) and incompatible sizes', () => {
    expect(() => F.add(randomTensor([2, 3, 4, 4], 1), randomTensor([3], 2))).to.throw(ShapeError, /reshape the other, e\.g\. \[1, C, 1, 1\]/);
    expect(() => F.mul(randomTensor([2, 3], 1), randomTensor([2, 4], 2))).to.throw(ShapeError, /dimension 1: 3 vs 4/);
  });
});

describe('unary math and activations', () => {
  const UNARY: [string, (x: Tensor) => Tensor, (v: number) => number, boolean?][] = [
    ['neg', F.neg, (v) => -v],
    ['exp', F.exp, Math.exp],
    ['log', F.log, Math.log, true],
    ['sqrt', F.sqrt, Math.sqrt, true],
    ['square', F.square, (v) => v * v],
    ['abs', F.abs, Math.abs],
    ['pow 3', (x) => F.pow(x, 3), (v) => v ** 3],
    ['relu', F.relu, (v) => Math.max(v, 0)],
    ['relu6', F.relu6, (v) => Math.min(Math.max(v, 0), 6)],
    ['sigmoid', F.sigmoid, (v) => 1 / (1 + Math.exp(-v))],
    ['tanh', F.tanh, Math.tanh],
  ];
  for (const [name, op, f, positiveOnly] of UNARY) {
    it(`${name}: forward and gradcheck`, () => {
      let x = randomTensor([3, 4, 2], 50, 'float64');
      if (name === 'relu6') x = F.mul(x, 4);
      if (positiveOnly) x = F.add(F.abs(x), 0.1);
      expectClose(op(x).data, Array.from(x.data, f), 1e-14, 1e-14);
      expect(gradcheck((xi) => op(xi!), [x]).maxRelError).to.be.at.most(1e-6);
    });
  }
  it('relu on float32 (branch-free, on the bits) is exactly v > 0 ? v : 0 at the edges: -0, denormals, infinities', () => {
    const edges = [0, -0, 1e-45, -1e-45, 1.17e-38, -1.17e-38, 3.4e38, -3.4e38, Infinity, -Infinity, 0.5, -0.5];
    const x = tensor(Float32Array.from(edges), [edges.length]);
    x.requiresGrad = true;
    const y = F.relu(x);
    for (let i = 0; i < edges.length; i++) expect(Object.is(y.data[i], Math.fround(edges[i]!) > 0 ? Math.fround(edges[i]!) : 0), `relu(${edges[i]})`).to.equal(true);
    F.sum(F.mul(y, tensor(Float32Array.from(edges, (_, i) => i + 1), [edges.length]))).backward();
    expect(Array.from(x.grad!.data)).to.deep.equal(edges.map((v, i) => (Math.fround(v) > 0 ? i + 1 : 0)));
  });

  it('prelu on float32 (branch-free, on the bits) equals v > 0 ? v : a v, with gradients, at the edges and on random values', () => {
    const edges = [0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, 0.5, -0.5];
    const values = Float32Array.from([...edges, ...Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7) * 3)]); // [2, 3, 8]
    const slopes = [0.25, -0.5, 2];
    const x = tensor(values, [2, 3, 8]), a = tensor(Float32Array.from(slopes), [3]);
    x.requiresGrad = true;
    a.requiresGrad = true;
    const dy = Float32Array.from(values, (_, i) => Math.cos(i));
    const y = F.prelu(x, a);
    F.sum(F.mul(y, tensor(dy, [2, 3, 8]))).backward();
    const da = [0, 0, 0];
    values.forEach((v, i) => {
      const c = Math.floor(i / 8) % 3, s = Math.fround(slopes[c]!);
      expect(y.data[i], `y[${i}]`).to.equal(v > 0 ? v : Math.fround(s * v));
      expect(x.grad!.data[i], `dx[${i}]`).to.equal(v > 0 ? dy[i]! : Math.fround(s * dy[i]!));
      if (v <= 0) da[c]! += v * dy[i]!;
    });
    expectClose(a.grad!.data, da, 1e-5, 1e-6);
  });

  it('prelu: per-channel slopes, forward and gradcheck', () => {
    const x = randomTensor([2, 3, 2, 2], 60, 'float64'), alpha = tensor([0.1, -0.5, 2], [3], { dtype: 'float64' });
    const y = F.prelu(x, alpha);
    for (let i = 0; i < x.size; i++) {
      const c = Math.floor(i / 4) % 3;
      expect(y.data[i]).to.equal(x.data[i]! > 0 ? x.data[i] : alpha.data[c]! * x.data[i]!);
    }
    expect(gradcheck((xi, a) => F.prelu(xi!, a!), [x, alpha]).maxRelError).to.be.at.most(1e-6);
    expect(() => F.prelu(x, tensor([1, 2], [2], { dtype: 'float64' }))).to.throw(ShapeError, /alpha \[3\]/);
  });
  it('cast float32 <-> float64 passes gradients back in the original dtype', () => {
    const x = randomTensor([2, 2], 1, 'float32');
    x.requiresGrad = true;
    const y = F.cast(x, 'float64');
    expect(y.dtype).to.equal('float64');
    F.sum(F.mul(y, 2)).backward();
    expect(x.grad!.dtype).to.equal('float32');
    expect(x.grad!.toArray()).to.deep.equal([2, 2, 2, 2]);
  });
});
