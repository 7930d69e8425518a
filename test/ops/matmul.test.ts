import { expect } from 'chai';
import { dense, euclideanDistances, gradcheck, matmul, ShapeError, squaredDistances, tensor } from '../../src/index.js';
import { refMatmul } from '../reference.js';
import { expectClose, randomTensor, shapeOf } from '../helpers.js';

describe('matmul and dense', () => {
  for (const [M, K, N] of [[1, 1, 1], [3, 5, 2], [7, 1, 4], [16, 33, 9]] as [number, number, number][]) {
    it(`matmul [${M},${K}]x[${K},${N}] vs reference, and gradcheck`, () => {
      const a = randomTensor([M, K], M * 7 + K, 'float64'), b = randomTensor([K, N], N * 3 + 1, 'float64');
      expectClose(matmul(a, b).data, refMatmul(a.data, M, K, b.data, N), 1e-13, 1e-13);
      expect(gradcheck((x, y) => matmul(x!, y!), [a, b]).maxRelError).to.be.at.most(1e-6);
    });
  }
  it('dense is x·wᵀ + b with PyTorch weight layout [out, in]', () => {
    const x = randomTensor([4, 6], 1, 'float64'), w = randomTensor([3, 6], 2, 'float64'), b = randomTensor([3], 3, 'float64');
    const wt: number[] = [];
    for (let i = 0; i < 6; i++) for (let o = 0; o < 3; o++) wt.push(w.data[o * 6 + i]!);
    const ref = refMatmul(x.data, 4, 6, wt, 3).map((v, i) => v + b.data[i % 3]!);
    expectClose(dense(x, w, b).data, ref, 1e-13, 1e-13);
    expect(gradcheck((xi, wi, bi) => dense(xi!, wi!, bi!), [x, w, b]).maxRelError).to.be.at.most(1e-6);
  });
  it('shape errors name the operands', () => {
    expect(() => matmul(randomTensor([2, 3], 1), randomTensor([4, 2], 2))).to.throw(ShapeError, /matmul: expected right operand \[3, N\]/);
    expect(() => dense(randomTensor([2, 3], 1), randomTensor([4, 2], 2))).to.throw(ShapeError, /weight \[out, 3\]/);
    expect(() => dense(randomTensor([2, 3, 1], 1), randomTensor([4, 3], 2))).to.throw(ShapeError, /input \[N, in\] of rank 2/);
  });
});

describe('distance matrices', () => {
  it('squared and Euclidean distances between rows', () => {
    const a = randomTensor([3, 4], 1, 'float64'), b = randomTensor([5, 4], 2, 'float64');
    const d2 = squaredDistances(a, b);
    expect(shapeOf(d2)).to.deep.equal([3, 5]);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += (a.data[i * 4 + k]! - b.data[j * 4 + k]!) ** 2;
      expect(d2.data[i * 5 + j]).to.be.closeTo(s, 1e-13);
      expect(euclideanDistances(a, b).data[i * 5 + j]).to.be.closeTo(Math.sqrt(s), 1e-13);
    }
    expect(gradcheck((x, y) => squaredDistances(x!, y!), [a, b]).maxRelError).to.be.at.most(1e-6);
    expect(gradcheck((x, y) => euclideanDistances(x!, y!), [a, b]).maxRelError).to.be.at.most(1e-6);
  });
  it('self-distances have an exact zero diagonal and a finite gradient there', () => {
    const a = tensor([1, 2, 1, 2, 0, 0], [3, 2], { dtype: 'float64', requiresGrad: true }); // rows 0 and 1 coincide
    const d = euclideanDistances(a);
    expect([d.data[0], d.data[4], d.data[8]]).to.deep.equal([1e-6, 1e-6, 1e-6]); // sqrt(eps) floor
    d.backward(tensor(new Array(9).fill(1), [3, 3], { dtype: 'float64' }));
    expect(a.grad!.toArray().every(Number.isFinite)).to.equal(true);
    expect(gradcheck((x) => euclideanDistances(x!), [randomTensor([4, 3], 3, 'float64')]).maxRelError).to.be.at.most(1e-6);
  });
});
