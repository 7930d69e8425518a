import { expect } from 'chai';
import { tensor, randn } from '../../src/index.js';
import { mineTriplets } from '../../src/losses/mining.js';
import { tripletLoss } from '../../src/losses/triplet.js';
import { arcFaceLoss, cosFaceLoss, crossEntropy, sphereFaceLambda, sphereFaceLoss } from '../../src/losses/margin_softmax.js';
import { GRADCHECK_OP_NAMES, makeCase } from '../../src/autograd/cases.js';

/** A hand-made batch on a line: label 0 at 0, 0.3, 1.0; label 1 at 0.5, 0.6, 2.0. D = squared distance. */
const xs = [0, 0.3, 1.0, 0.5, 0.6, 2.0];
const labels = [0, 0, 0, 1, 1, 1];
const D = xs.flatMap((a) => xs.map((b) => (a - b) ** 2));
const key = (a: number, p: number, n: number): string => `${a},${p},${n}`;
const mined = (mode: 'semi-hard' | 'hard' | 'batch-hard' | 'batch-all', margin: number): Set<string> => {
  const { triplets } = mineTriplets(D, labels, mode, margin);
  return new Set(Array.from(triplets.anchor, (a, i) => key(a, triplets.positive[i]!, triplets.negative[i]!)));
};
const bruteForce = (keep: (dap: number, dan: number) => boolean): Set<string> => {
  const out = new Set<string>();
  for (let a = 0; a < 6; a++) for (let p = 0; p < 6; p++) for (let n = 0; n < 6; n++) {
    if (a === p || labels[a] !== labels[p] || labels[n] === labels[a]) continue;
    if (keep(D[a * 6 + p]!, D[a * 6 + n]!)) out.add(key(a, p, n));
  }
  return out;
};

describe('triplet mining', () => {
  it('semi-hard picks exactly the triplets with d(a,p) < d(a,n) < d(a,p) + margin', () => {
    const margin = 0.2;
    const expected = bruteForce((dap, dan) => dap < dan && dan < dap + margin);
    expect(expected.size).to.be.greaterThan(0);
    expect([...mined('semi-hard', margin)].sort()).to.deep.equal([...expected].sort());
    // e.g. anchor 0 (x=0), positive 1 (x=0.3): d(a,p)=0.09; negative 3 (x=0.5): d(a,n)=0.25 in (0.09, 0.29).
    expect(mined('semi-hard', margin).has('0,1,3')).to.equal(true);
  });
  it('hard picks exactly the triplets with d(a,n) < d(a,p)', () => {
    const expected = bruteForce((dap, dan) => dan < dap);
    expect(expected.size).to.be.greaterThan(0);
    expect([...mined('hard', 0.2)].sort()).to.deep.equal([...expected].sort());
    expect(mined('hard', 0.2).has('2,0,3')).to.equal(true); // x=1.0: positive x=0 (d 1), negative x=0.5 (d 0.25)
  });
  it('batch-hard takes, per anchor, the farthest positive and the nearest negative', () => {
    const s = mined('batch-hard', 0.2);
    expect(s.size).to.equal(6);
    expect(s.has('0,2,3')).to.equal(true); // anchor x=0: farthest positive x=1.0, nearest negative x=0.5
    expect(s.has('5,3,2')).to.equal(true); // anchor x=2.0: farthest positive x=0.5, nearest negative x=1.0
  });
  it('batch-all takes every valid triplet; diagnostics count the active ones', () => {
    const { triplets, diagnostics } = mineTriplets(D, labels, 'batch-all', 0.2);
    expect(triplets.anchor.length).to.equal(6 * 2 * 3);
    const active = bruteForce((dap, dan) => dap - dan + 0.2 > 0).size;
    expect(diagnostics.activeFraction).to.be.closeTo(active / 36, 1e-12);
    expect(diagnostics.collapsed).to.equal(false);
  });
  it('the loss equals the mean hinge over the mined triplets', () => {
    const e = tensor(xs, [6, 1], { dtype: 'float64' });
    const margin = 0.2;
    const expected = [...bruteForce((dap, dan) => dap < dan && dan < dap + margin)].map((k) => {
      const [a, p, n] = k.split(',').map(Number) as [number, number, number];
      return Math.max(0, D[a * 6 + p]! - D[a * 6 + n]! + margin);
    });
    const r = tripletLoss(e, labels, { mining: 'semi-hard', margin });
    expect(r.loss.item()).to.be.closeTo(expected.reduce((x, y) => x + y, 0) / expected.length, 1e-12);
  });
  it('warns when the embeddings collapse (all equal) and still returns a differentiable zero-signal loss', () => {
    const e = tensor(new Array(12).fill(0.5), [6, 2], { dtype: 'float64', requiresGrad: true });
    const r = tripletLoss(e, labels, { mining: 'batch-hard', margin: 0.2 });
    expect(r.diagnostics.collapsed).to.equal(true);
    expect(r.diagnostics.warning).to.match(/collapsed/);
    expect(r.loss.item()).to.be.closeTo(0.2, 1e-12); // sits exactly at the margin
    r.loss.backward();
    expect(e.grad).to.not.equal(null);
  });
  it('the gradcheck cases really exercise each mining mode (they select triplets)', () => {
    for (const op of GRADCHECK_OP_NAMES.filter((o) => o.startsWith('triplet-'))) {
      for (let seed = 1; seed <= 5; seed++) {
        const c = makeCase(op, seed)!;
        expect(c.fn(...c.inputs).item(), `${op} seed ${seed}`).to.be.greaterThan(0);
      }
    }
  });
});

describe('margin softmax losses', () => {
  const x = randn([5, 3], { seed: 1, dtype: 'float64' }), w = randn([4, 3], { seed: 2, dtype: 'float64' });
  const y = [0, 3, 1, 1, 2];
  /** Plain softmax cross-entropy on scale * cos (the no-margin limit). */
  const plain = (scale: (i: number) => number): number => {
    let total = 0;
    for (let i = 0; i < 5; i++) {
      const xi = Array.from(x.data.subarray(i * 3, i * 3 + 3)), nx = Math.hypot(...xi);
      const logits = [0, 1, 2, 3].map((c) => {
        const wc = Array.from(w.data.subarray(c * 3, c * 3 + 3));
        return (scale(i) * xi.reduce((s, v, k) => s + v * wc[k]!, 0)) / (nx * Math.hypot(...wc));
      });
      const m = Math.max(...logits);
      total += -(logits[y[i]!]! - m - Math.log(logits.reduce((s, l) => s + Math.exp(l - m), 0)));
    }
    return total / 5;
  };
  it('ArcFace and CosFace with margin 0 are softmax on s cos(theta)', () => {
    expect(arcFaceLoss(x, w, y, { s: 10, m: 0 }).item()).to.be.closeTo(plain(() => 10), 1e-10);
    expect(cosFaceLoss(x, w, y, { s: 10, m: 0 }).item()).to.be.closeTo(plain(() => 10), 1e-10);
  });
  it('SphereFace with m = 1 is softmax on |x| cos(theta) (psi = cos), for any lambda', () => {
    const norms = (i: number): number => Math.hypot(...Array.from(x.data.subarray(i * 3, i * 3 + 3)));
    expect(sphereFaceLoss(x, w, y, { m: 1, step: 0 }).loss.item()).to.be.closeTo(plain(norms), 1e-10);
  });
  it('margins make the loss larger than plain softmax (the target logit is penalized)', () => {
    expect(arcFaceLoss(x, w, y, { s: 10, m: 0.5 }).item()).to.be.greaterThan(plain(() => 10));
    expect(cosFaceLoss(x, w, y, { s: 10, m: 0.35 }).item()).to.be.greaterThan(plain(() => 10));
  });
  it('SphereFace lambda anneals from 1000 to its floor of 5', () => {
    expect(sphereFaceLambda({ step: 0 })).to.equal(1000);
    expect(sphereFaceLambda({ step: 100 })).to.be.closeTo(1000 / 13, 1e-9);
    expect(sphereFaceLambda({ step: 1e6 })).to.equal(5);
  });
  it('crossEntropy matches -log softmax at the label', () => {
    const logits = tensor([1, 2, 3, 0, 0, 0], [2, 3], { dtype: 'float64' });
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expect(crossEntropy(logits, [2, 0]).item()).to.be.closeTo(((lse - 3) + Math.log(3)) / 2, 1e-12);
  });
  it('labels outside the classes are rejected', () => {
    expect(() => arcFaceLoss(x, w, [0, 1, 2, 3, 4])).to.throw(/label 4 is not a class in \[0, 4\)/);
  });
});
