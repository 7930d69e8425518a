import { expect } from 'chai';
import { add, conv2d, DisposedError, exp, FacenetError, mul, noGrad, ones, randn, relu, ShapeError, sum, tensor, isGradEnabled, type Tensor } from '../../src/index.js';
import { handOver, record } from '../../src/autograd/tape.js';
import type { TypedArray } from '../../src/tensor/tensor.js';

const f64 = { dtype: 'float64' as const, requiresGrad: true };

describe('autograd tape', () => {
  it('differentiates a scalar expression (micrograd-style example)', () => {
    const a = tensor([-4], [1], f64), b = tensor([2], [1], f64);
    // c = a*b + b^3 -> dc/da = b = 2, dc/db = a + 3b² = 8
    const c = add(mul(a, b), mul(mul(b, b), b));
    c.backward();
    expect(a.grad!.item()).to.equal(2);
    expect(b.grad!.item()).to.equal(8);
  });
  it('sums gradients where a tensor is used twice (diamond graph), without aliasing bugs', () => {
    const x = tensor([1, 2, 3], [3], f64);
    const y = add(x, x); // both inputs are the same tensor: dy/dx = 2
    const z = sum(add(mul(y, y), y)); // z = 4x² + 2x -> 8x + 2
    z.backward();
    expect(x.grad!.toArray()).to.deep.equal([10, 18, 26]);
  });
  it('arrays a convolution hands over: summed into in place (or its dx added onto the sum so far), kept by the filters, never shared when returned for two inputs', () => {
    const leaf = (shape: number[], seed: number): Tensor => { const t = randn(shape, { seed }); t.requiresGrad = true; return t; };
    const a = leaf([2, 3, 6, 6], 1), b = leaf([2, 3, 6, 6], 2);
    const filters = [leaf([4, 3, 3, 3], 3), leaf([4, 3, 1, 1], 4), leaf([3, 1, 3, 3], 5), leaf([4, 3, 3, 3], 6)];
    const options = [{ padding: 1 }, {}, { padding: 1, groups: 3 }, { stride: 2 }]; // col2im, a 1x1's GEMM, depthwise, stride 2
    // s = a + b feeds four convolutions: each dx after the first is added onto the sum so far; add's
    // backward returns that sum for both a and b, which must each get an array of their own.
    const term = (s: Tensor, k: number): Tensor => { const y = conv2d(s, filters[k]!, null, options[k]); return sum(mul(y, randn([...y.shape], { seed: 10 + k }))); };
    const loss = (ks = [0, 1, 2, 3]): Tensor => { const s = add(a, b); return ks.map((k) => term(s, k)).reduce((p, q) => add(p, q)); };
    const all = [a, b, ...filters];
    loss().backward();
    const once = all.map((t) => Float64Array.from(t.grad!.data));
    expect(a.grad!.data, 'a and b share a gradient array').to.not.equal(b.grad!.data);
    expect(Array.from(a.grad!.data)).to.deep.equal(Array.from(b.grad!.data));
    // The same gradient of a by separate graphs: each convolution alone.
    const parts = [0, 1, 2, 3].map((k) => {
      for (const t of all) t.zeroGrad();
      loss([k]).backward();
      return Float64Array.from(a.grad!.data);
    });
    once[0]!.forEach((g, i) => expect(g).to.be.closeTo(parts.reduce((acc, p) => acc + p[i]!, 0), 1e-4));
    // A second backward adds onto every .grad (the filters kept the arrays their convolutions made).
    for (const t of all) t.zeroGrad();
    loss().backward();
    loss().backward();
    all.forEach((t, k) => t.grad!.data.forEach((g, i) => expect(g, `tensor ${k}`).to.be.closeTo(2 * once[k]![i]!, 1e-4)));
  });
  it('a convolution adds its dx onto a copy of a gradient so far the tape does not own (add\'s dy, also the other input\'s gradient)', () => {
    const leaf = (shape: number[], seed: number): Tensor => { const t = randn(shape, { seed }); t.requiresGrad = true; return t; };
    const a = leaf([2, 3, 6, 6], 1), q = leaf([2, 3, 6, 6], 2), w = leaf([3, 3, 3, 3], 3), w1 = leaf([3, 3, 1, 1], 4);
    const r = randn([2, 3, 6, 6], { seed: 5 }), r2 = randn([2, 3, 6, 6], { seed: 6 });
    for (const [filters, options] of [[w, { padding: 1 }], [w1, {}]] as const) { // col2im onto it, a 1x1's GEMM accumulating
      for (const addFirst of [true, false]) {
        const parts = (which: ('add' | 'conv')[]): void => {
          for (const t of [a, q, filters]) t.zeroGrad();
          const x = mul(a, 1); // add(x, q)'s backward returns one array for both
          const terms = { add: () => sum(mul(add(x, q), r)), conv: () => sum(mul(conv2d(x, filters, null, options), r2)) };
          which.map((k) => terms[k]()).reduce((p, t) => add(p, t)).backward();
        };
        parts(addFirst ? ['add', 'conv'] : ['conv', 'add']);
        const [aBoth, qBoth] = [Float64Array.from(a.grad!.data), Float64Array.from(q.grad!.data)];
        expect(Array.from(qBoth), 'q: add\'s dy untouched').to.deep.equal(Array.from(r.data));
        parts(['conv']);
        const aConv = Float64Array.from(a.grad!.data);
        aBoth.forEach((g, i) => expect(g).to.be.closeTo(aConv[i]! + r.data[i]!, 1e-5));
      }
    }
  });
  it('an op that adds into its input\'s gradient (addsInto) is offered a copy of one the tape does not own, never that array', () => {
    const x = tensor([1, 2, 3], [3], f64), k = tensor([4, 5, 6], [3], f64);
    const returned: TypedArray[] = [], offered: TypedArray[] = [];
    const output = (): Tensor => tensor([0, 0, 0], [3], { dtype: 'float64' });
    // one array for both inputs, as add's backward
    const both = (p: Tensor, q: Tensor): Tensor => record(output(), 'both', [p, q], (dy) => { returned.push(dy); return [dy, dy]; });
    const addsOnto = (t: Tensor): Tensor => record(output(), 'addsOnto', [t], (dy, _needs, into) => {
      if (into?.[0]) offered.push(into[0]);
      if (into?.[0]) expect(Array.from(into[0]), 'a copy of the sum so far').to.deep.equal(Array.from(returned[0]!));
      const g = into?.[0] ?? new Float64Array(3);
      dy.forEach((v, i) => { g[i]! += 10 * v; });
      return [g];
    }, { addsInto: true });
    const r = tensor([1, 2, 3], [3], f64);
    for (const order of [0, 1]) {
      returned.length = 0;
      x.zeroGrad(); k.zeroGrad();
      const terms = [sum(mul(both(x, k), r)), sum(addsOnto(x))];
      add(terms[order]!, terms[1 - order]!).backward();
      expect(Array.from(k.grad!.data)).to.deep.equal([1, 2, 3]);
      expect(Array.from(x.grad!.data)).to.deep.equal([11, 12, 13]);
      offered.forEach((a) => expect(a).to.not.equal(returned[0]));
    }
    expect(offered.length, 'one of the orders offers the gradient so far').to.equal(1);
  });
  it('one array returned for two inputs (add\'s dy) is added into only once it is one tensor\'s gradient: a residual block\'s branch convolution adds onto it, an op whose own dy it is gets a copy', () => {
    const x = tensor([1, 2, 3], [3], f64), r = tensor([1, 2, 3], [3], f64);
    let made: TypedArray | null = null, offered: TypedArray | undefined;
    const output = (): Tensor => tensor([0, 0, 0], [3], { dtype: 'float64' });
    // relu's backward: a new array, handed over to the tape (2 dy)
    const source = (p: Tensor): Tensor => record(output(), 'source', [p], (dy) => [handOver(made = Float64Array.from(dy, (v) => 2 * v))]);
    const both = (p: Tensor, q: Tensor): Tensor => record(output(), 'both', [p, q], (dy) => [dy, dy]); // add's backward
    const scale = (p: Tensor): Tensor => record(output(), 'scale', [p], (dy) => [Float64Array.from(dy, (v) => 3 * v)]); // reads dy, returns a new array
    // a convolution's dx added onto the gradient so far; it reads dy in another order than it writes
    const addsOnto = (p: Tensor): Tensor => record(output(), 'addsOnto', [p], (dy, _needs, into) => {
      offered = into?.[0];
      const g = into?.[0] ?? new Float64Array(3);
      for (let i = 0; i < 3; i++) g[i]! += 10 * dy[2 - i]!;
      return [g];
    }, { addsInto: true });
    const run = (graph: () => Tensor): number[] => { x.zeroGrad(); offered = undefined; graph().backward(); return Array.from(x.grad!.data); };
    // relu(x + 3 * branch(x)): add's dy d = 2r goes to x and to the scale, which lets go of it before the branch runs.
    expect(run(() => sum(mul(source(both(x, scale(addsOnto(x)))), r)))).to.deep.equal([2 + 180, 4 + 120, 6 + 60]);
    expect(offered, 'the branch adds onto add\'s dy itself').to.equal(made);
    // relu(x + branch(x)): the branch's own dy is the shared array, so it must not write into it.
    expect(run(() => sum(mul(source(both(x, addsOnto(x))), r)))).to.deep.equal([2 + 60, 4 + 40, 6 + 20]);
    expect(offered, 'a copy').to.not.equal(made);
    expect(Array.from(offered!)).to.deep.equal([62, 44, 26]);
    // A leaf lets go too: x (a leaf) and y share d; once x has taken its copy, y's consumer adds onto d itself.
    const z = tensor([1, 1, 1], [3], f64);
    z.zeroGrad();
    const y = scale(z);
    expect(run(() => add(sum(mul(source(both(x, y)), r)), sum(addsOnto(y))))).to.deep.equal([2, 4, 6]);
    expect(offered, 'd itself, once the leaf let go').to.equal(made);
    expect(Array.from(z.grad!.data)).to.deep.equal([3 * 12, 3 * 14, 3 * 16]);
  });
  it('accumulates across backward calls until zeroGrad', () => {
    const x = tensor([1, 2], [2], f64);
    sum(mul(x, 3)).backward();
    sum(mul(x, 3)).backward();
    expect(x.grad!.toArray()).to.deep.equal([6, 6]);
    x.zeroGrad();
    expect(x.grad).to.equal(null);
  });
  it('frees the graph after backward unless retainGraph is set', () => {
    const x = tensor([1, 2], [2], f64);
    const y = sum(exp(x));
    y.backward(undefined, { retainGraph: true });
    y.backward();
    expect(x.grad!.toArray()).to.deep.equal([2 * Math.exp(1), 2 * Math.exp(2)]);
    expect(() => y.backward()).to.throw(FacenetError, /already freed/);
  });
  it('non-scalar outputs need an explicit output gradient of the right shape', () => {
    const x = tensor([1, -2, 3], [3], f64);
    const y = relu(x);
    expect(() => y.backward()).to.throw(ShapeError, /scalar output/);
    expect(() => y.backward(ones([2], { dtype: 'float64' }))).to.throw(ShapeError, /gradient of shape \[3\]/);
    y.backward(tensor([10, 20, 30], [3], { dtype: 'float64' }));
    expect(x.grad!.toArray()).to.deep.equal([10, 0, 30]);
  });
  it('leaves without requiresGrad get no gradient; backward on a constant is an error', () => {
    const x = tensor([1, 2], [2], f64), c = tensor([5, 5], [2], { dtype: 'float64' });
    sum(mul(x, c)).backward();
    expect(c.grad).to.equal(null);
    expect(x.grad!.toArray()).to.deep.equal([5, 5]);
    expect(() => sum(c).backward()).to.throw(FacenetError, /does not require grad/);
  });
  it('noGrad records nothing and restores the previous mode, even on throw', () => {
    const x = tensor([1], [1], f64);
    const y = noGrad(() => mul(x, 2));
    expect(y.requiresGrad).to.equal(false);
    expect(y.node).to.equal(null);
    expect(() => noGrad(() => { throw new Error('boom'); })).to.throw('boom');
    expect(isGradEnabled()).to.equal(true);
  });
  it('gradients keep the dtype of their tensor', () => {
    const x = tensor([1, 2], [2], { requiresGrad: true });
    sum(mul(x, x)).backward();
    expect(x.grad!.dtype).to.equal('float32');
  });
  it('a disposed tensor refuses to be read, with an actionable message', () => {
    const x = tensor([1, 2], [2]);
    x.dispose();
    expect(() => x.data).to.throw(DisposedError, /used after dispose\(\)/);
    x.dispose(); // idempotent
  });
  it('deep chains do not overflow the stack (iterative topological sort)', () => {
    const x = tensor([1], [1], f64);
    let y = x;
    for (let i = 0; i < 20000; i++) y = add(y, 1e-6);
    y.backward();
    expect(x.grad!.item()).to.equal(1);
  });
});
