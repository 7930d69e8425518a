/**
 * The GEMM's epilogue: an ungrouped convolution's folded scale and shift and its activation applied to
 * each block of output as the product stores it (conv2dScaleShift, and a float32 convolution's bias),
 * instead of a pass over the output after. Checked against the convolution followed by that pass (the
 * affine pass of wasm_planes.ts), value for value, and against a float64 reference, on every path a
 * product takes: the WebAssembly and TypeScript kernels, the simple loops of small products, one and two
 * threads (split by columns and by rows, shares computed by the worker or taken back by the caller, C
 * written in place or copied back), images in chunks.
 */
import { expect } from 'chai';
import { conv2d, conv2dScaleShift, getNumThreads, noGrad, setGemmKernel, setNumThreads, tidy, tidyAndRecycle, type GemmKernel, type Tensor } from '../../src/index.js';
import { affinePlanes } from '../../src/backends/cpu/wasm_planes.js';
import { convScaleShift } from '../../src/backends/cpu/conv.js';
import { setMinThreadedWork, slicesTakenBack, threadedGemms } from '../../src/backends/cpu/threads.js';
import { convGeometry, type Conv2dOptions } from '../../src/ops/conv.js';
import { refConv2d } from '../reference.js';
import { expectClose, randomTensor } from '../helpers.js';

interface Case { x: [number, number, number, number]; O: number; k: [number, number]; o: Conv2dOptions; why: string }

const CASES: Case[] = [
  { x: [2, 24, 9, 9], O: 20, k: [1, 1], o: {}, why: 'a 1x1 convolution (its input is B in place)' },
  { x: [3, 5, 11, 10], O: 12, k: [3, 3], o: { padding: 1 }, why: '3x3, 12 channels: rows past the last 4-row panel' },
  { x: [2, 6, 15, 15], O: 10, k: [3, 3], o: { padding: 1, stride: 2 }, why: 'stride 2' },
  { x: [2, 8, 9, 9], O: 8, k: [1, 7], o: { padding: [0, 0, 3, 3] }, why: '1x7' },
  { x: [1, 64, 4, 4], O: 128, k: [1, 1], o: {}, why: 'batch 1, more channels than pixels: split by rows on 2 threads' },
  { x: [1, 256, 6, 6], O: 512, k: [1, 1], o: {}, why: 'split by rows, an output large enough to be shared: written in place' },
  { x: [2, 128, 4, 4], O: 512, k: [1, 1], o: {}, why: 'split by rows, two images: the workers\' rows of an images view, in place' },
  { x: [1, 1, 3, 3], O: 3, k: [3, 3], o: { padding: 1 }, why: 'a small product: the simple loops' },
  { x: [20, 16, 48, 48], O: 8, k: [3, 3], o: { padding: 1 }, why: 'images in two chunks' },
];

/** Same values: identical bits, or both NaN (a NaN's payload may differ between paths). */
function expectSameValues(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).to.equal(want.length);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) throw new Error(`${what}: value ${i} is ${got[i]}, the pass gives ${want[i]}`);
  }
}

/** act(v * scale + shift) over the float64 reference convolution. */
function reference(c: Case, x: Tensor, w: Tensor, scale: Float32Array, shift: Float32Array, act: boolean | Float32Array): number[] {
  const p = typeof c.o.padding === 'number' ? [c.o.padding, c.o.padding, c.o.padding, c.o.padding] : (c.o.padding as number[] | undefined) ?? [0, 0, 0, 0];
  const stride = (c.o.stride as number | undefined) ?? 1;
  const { y, shape } = refConv2d(x.data, [...x.shape], w.data, [...w.shape], null, { stride: [stride, stride], pad: p as [number, number, number, number], dilation: [1, 1], groups: 1 });
  const P = shape[2]! * shape[3]!;
  return y.map((v, i) => {
    const o = Math.floor(i / P) % c.O, u = v * scale[o]! + shift[o]!;
    return act === true ? Math.max(0, u) : typeof act === 'boolean' || u > 0 ? u : act[o]! * u;
  });
}

describe('the GEMM epilogue (a convolution\'s folded batchnorm and activation applied as its output is stored)', function () {
  this.timeout(300000);
  const threadsBefore = getNumThreads();
  before(() => setMinThreadedWork(0));
  after(() => { setGemmKernel('wasm'); setNumThreads(threadsBefore); setMinThreadedWork(); });

  const run = (kernel: GemmKernel, threads: number, recycle: boolean, ci: number): void => {
    setGemmKernel(kernel);
    setNumThreads(threads);
    {
      const c = CASES[ci]!;
      const x = randomTensor(c.x, 10 + ci), w = randomTensor([c.O, c.x[1], ...c.k], 20 + ci);
      x.data[3] = NaN; x.data[5] = -0; // NaN reaches some outputs (kept by ReLU and PReLU, as the pass keeps it)
      const scale = Float32Array.from(randomTensor([c.O], 30 + ci).data), shift = Float32Array.from(randomTensor([c.O], 40 + ci).data);
      const slopes = Float32Array.from(randomTensor([c.O], 50 + ci).data);
      const g = convGeometry('test', x.shape, w.shape, c.o);
      for (const act of [false, true, slopes]) {
        const what = `${kernel}, ${threads} thread(s)${recycle ? ', shared arrays' : ''}, ${c.why}, ${typeof act === 'boolean' ? (act ? 'relu' : 'none') : 'prelu'}`;
        const within = <T>(f: () => T): T => (recycle ? tidyAndRecycle(() => Float32Array.from(f() as Float32Array)) as T : tidy(f));
        const fused = within(() => convScaleShift(x.data, w.data, g, scale, shift, act) as Float32Array);
        expect(fused, `${what}: the fused path ran`).to.be.instanceOf(Float32Array);
        const op = within(() => Float32Array.from(conv2dScaleShift(x, w, scale, shift, act, c.o).data));
        const passed = within(() => {
          const y = Float32Array.from(noGrad(() => conv2d(x, w, null, c.o)).data);
          expect(affinePlanes(y, y, g.N, g.O, g.OH * g.OW, scale, shift, act), what).to.equal(true);
          return y;
        });
        expectSameValues(fused, passed, what);
        expectSameValues(op, passed, `${what}: conv2dScaleShift`);
        const want = reference(c, x, w, scale, shift, act), finite = Array.from(fused, (v, i) => (Number.isNaN(want[i]!) ? 0 : v));
        expect(fused.some(Number.isNaN), `${what}: NaN in the output`).to.equal(true);
        expectClose(finite, want.map((v) => (Number.isNaN(v) ? 0 : v)), 2e-5, 1e-4, what);
      }
    }
  };

  for (const kernel of ['wasm', 'js'] as const) {
    it(`${kernel} kernel, 1 thread: the bits of the convolution then the affine pass, and as in float64`, () => CASES.forEach((_, ci) => run(kernel, 1, false, ci)));
    it(`${kernel} kernel, 2 threads (the worker's share mapped by the worker with the tables shipped to it, or by the caller): the same`, async () => {
      const gemms = threadedGemms(), taken = slicesTakenBack();
      for (const recycle of [false, true]) {
        for (let ci = 0; ci < CASES.length; ci++) {
          setNumThreads(1); // a new pool: the caller takes the worker's first slices back while the worker starts up
          run(kernel, 2, recycle, ci);
          await new Promise((resolve) => setTimeout(resolve, 50)); // then the started worker computes them
          run(kernel, 2, recycle, ci);
        }
      }
      const split = threadedGemms() - gemms, takenBack = slicesTakenBack() - taken;
      expect(takenBack, 'slices taken back by the caller').to.be.greaterThan(0);
      expect(split, 'slices computed by the worker').to.be.greaterThan(takenBack);
    });
  }

  it('a float32 convolution\'s bias, added by the epilogue: the bits of the bias pass, both kernels, on 1 and 2 threads', () => {
    for (const [kernel, threads] of [['wasm', 1], ['wasm', 2], ['js', 1], ['js', 2]] as const) {
      setGemmKernel(kernel);
      setNumThreads(threads);
      for (const [xs, O, o] of [[[2, 6, 9, 9], 10, { padding: 1 }], [[1, 32, 3, 3], 64, {}]] as const) {
        const x = randomTensor([...xs], 60), w = randomTensor([O, xs[1], o.padding ? 3 : 1, o.padding ? 3 : 1], 61), b = randomTensor([O], 62);
        const g = convGeometry('test', x.shape, w.shape, o);
        const got = tidy(() => Float32Array.from(noGrad(() => conv2d(x, w, b, o)).data));
        const want = tidy(() => {
          const y = Float32Array.from(noGrad(() => conv2d(x, w, null, o)).data);
          expect(affinePlanes(y, y, g.N, g.O, g.OH * g.OW, new Float32Array(O).fill(1), b.data, false)).to.equal(true);
          return y;
        });
        expectSameValues(got, want, `${kernel}, ${threads} thread(s), ${xs.join('x')}`);
      }
    }
  });
});
