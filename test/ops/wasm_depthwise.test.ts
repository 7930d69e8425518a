/**
 * The WebAssembly depthwise convolution (wasm_depthwise.ts) against the naive float64 reference, called
 * directly (so the kernels, not the TypeScript fallback, are what is checked), on geometries that reach
 * every branch: the two unrolled 3x3 kernels and the tap-table one; stride-2 staging with an even and an
 * odd left padding (which phase the even columns go to), rows shorter than a vector copy; output rows of
 * a multiple of 4 and not (the last vector spills into the next row); asymmetric padding; vertical strides;
 * dilation; channel multipliers; planes larger than a chunk; runs of planes cut at image boundaries.
 */
import { expect } from 'chai';
import { conv2d, conv2dScaleShift, noGrad, tidy, type Tensor } from '../../src/index.js';
import { affinePlanes } from '../../src/backends/cpu/wasm_planes.js';
import { conv2dBackward, convScaleShift } from '../../src/backends/cpu/conv.js';
import { setWasmPlanes } from '../../src/backends/cpu/wasm_module.js';
import { convGeometry, type Conv2dOptions } from '../../src/ops/conv.js';
import { depthwiseBackwardPlanes, depthwiseModuleBytes, depthwisePlanes, depthwiseVariant, stagedLayout, wasmDepthwiseAvailable } from '../../src/backends/cpu/wasm_depthwise.js';
import { refConv2d } from '../reference.js';
import { expectClose, randomTensor } from '../helpers.js';

interface Case { x: number[]; M?: number; k: [number, number]; o: Conv2dOptions; variant: string }

const CASES: Case[] = [
  { x: [2, 5, 9, 12], k: [3, 3], o: { padding: 1 }, variant: '3x3s1' }, // rows of 12: whole vectors
  { x: [3, 4, 7, 7], k: [3, 3], o: { padding: 1 }, variant: '3x3s1' }, // rows of 7: a spilling vector
  { x: [1, 3, 6, 11], k: [3, 3], o: { padding: [0, 2, 2, 0] }, variant: '3x3s1' },
  { x: [2, 4, 13, 19], k: [3, 3], o: { padding: 1, stride: 2 }, variant: '3x3s2' }, // odd left padding: even columns to phase 1
  { x: [2, 4, 12, 20], k: [3, 3], o: { padding: [0, 1, 0, 1], stride: 2 }, variant: '3x3s2' }, // 'same' as TF pads: none on the left
  { x: [1, 3, 14, 14], k: [3, 3], o: { padding: [1, 1, 2, 0], stride: [2, 2] }, variant: '3x3s2' }, // even left padding
  { x: [2, 3, 5, 6], k: [3, 3], o: { padding: 1, stride: 2 }, variant: '3x3s2' }, // rows under eight values: staged one by one
  { x: [2, 3, 11, 10], M: 2, k: [3, 3], o: { padding: 1, stride: [2, 1] }, variant: '3x3s1' }, // vertical stride only, multiplier 2
  { x: [1, 2, 15, 17], M: 3, k: [3, 3], o: { padding: 1, stride: 2 }, variant: '3x3s2' },
  { x: [2, 3, 16, 15], k: [3, 3], o: { padding: 2, dilation: 2 }, variant: 'taps' },
  { x: [2, 3, 17, 16], k: [3, 3], o: { padding: 1, stride: 3 }, variant: 'taps' },
  { x: [2, 4, 7, 7], k: [7, 7], o: {}, variant: 'taps' }, // MobileFaceNet's global depthwise: one output a plane
  { x: [1, 3, 12, 13], M: 2, k: [5, 5], o: { padding: 2, stride: 2 }, variant: 'taps' },
  { x: [2, 2, 9, 14], k: [1, 7], o: { padding: [0, 0, 3, 3] }, variant: 'taps' },
  { x: [1, 3, 8, 1], k: [3, 1], o: { padding: [1, 1, 0, 0] }, variant: 'taps' }, // one column
  { x: [1, 2, 190, 185], k: [3, 3], o: { padding: 1 }, variant: '3x3s1' }, // a plane over a chunk: one a call
  { x: [5, 7, 20, 20], k: [3, 3], o: { padding: 1, stride: 2 }, variant: '3x3s2' }, // 81 planes a chunk: runs end at images
];

/** The kernels' y (every value written over NaN) and the reference's, for one case. */
function outputs(c: Case, seed: number): { got: Float32Array; want: number[]; what: string } {
  const C = c.x[1]!, M = c.M ?? 1, ws = [C * M, 1, ...c.k];
  const x = randomTensor(c.x, seed), w = randomTensor(ws, seed + 1);
  const g = convGeometry('depthwise test', c.x, ws, { ...c.o, groups: C });
  const what = `${c.x.join('x')} k${c.k.join('x')} M${M} ${JSON.stringify(c.o)}`;
  expect(depthwiseVariant(g), what).to.equal(c.variant);
  const y = new Float32Array(g.N * g.O * g.OH * g.OW).fill(NaN);
  expect(depthwisePlanes(x.data, w.data, y, g), `${what}: the kernels ran`).to.equal(true);
  const pair = (v: number | number[] | undefined): [number, number] => (typeof v === 'number' ? [v, v] : [v?.[0] ?? 1, v?.[1] ?? 1]) as [number, number];
  const p = c.o.padding ?? 0, pad = (typeof p === 'number' ? [p, p, p, p] : p) as [number, number, number, number];
  const want = refConv2d(x.data, c.x, w.data, ws, null, { stride: pair(c.o.stride as number | number[]), pad, dilation: pair(c.o.dilation as number | number[]), groups: C });
  expect(want.shape, what).to.deep.equal([g.N, g.O, g.OH, g.OW]);
  return { got: y, want: want.y, what };
}

describe('depthwise convolution in WebAssembly (wasm_depthwise.ts)', () => {
  before(function () {
    if (!wasmDepthwiseAvailable()) this.skip(); // no WebAssembly SIMD: conv.ts runs its TypeScript loops (tested in conv.test.ts)
  });

  it('the module is valid WebAssembly', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    expect(wasm.validate(depthwiseModuleBytes())).to.equal(true);
  });

  it('matches the float64 reference on every kernel and staging path', () => {
    CASES.forEach((c, i) => {
      const { got, want, what } = outputs(c, 10 * i + 1);
      expectClose(got, want, 2e-5, 1e-5, what);
    });
  });

  it('lays a stride-2 plane out in two phases, each tap a fixed offset from its output', () => {
    const g = convGeometry('layout', [1, 1, 9, 9], [1, 1, 3, 3], { padding: 1, stride: 2, groups: 1 });
    const layout = stagedLayout(g); // OW 5: two vectors (8 columns) a phase, plus the tap one column on
    expect(layout.phaseBytes).to.equal(48);
    expect(layout.rowBytes).to.equal(96);
    expect(layout.topBytes).to.equal(96);
    expect(Array.from(layout.taps.subarray(0, 3))).to.deep.equal([0, 48, 4]);
    expect(Array.from(layout.taps.subarray(3, 6))).to.deep.equal([96, 144, 100]);
  });

  it('conv2dScaleShift of a depthwise convolution (the map and activation applied as outputs are stored): the bits of the convolution, then the affine pass', () => {
    // The last geometry's planes go one a call: each call's tables start at its channel.
    for (const [xs, M, o] of [[[2, 6, 23, 19], 1, { padding: 1 }], [[2, 4, 15, 14], 2, { padding: 1, stride: 2 }], [[2, 3, 7, 7], 1, { padding: 1, stride: 3 }], [[1, 3, 130, 140], 1, { padding: 1 }]] as const) {
      const C = xs[1], O = C * M, x = randomTensor([...xs], 5), w = randomTensor([O, 1, 3, 3], 6);
      x.data[7] = NaN; x.data[40] = -0; // NaN reaches some outputs (kept by ReLU and PReLU, as the affine pass keeps it)
      const scale = Float32Array.from(randomTensor([O], 7).data), shift = Float64Array.from(randomTensor([O], 8).data), slopes = Float32Array.from(randomTensor([O], 9).data);
      for (const act of [false, true, slopes]) {
        const what = `${xs.join('x')} M${M} ${JSON.stringify(o)} ${typeof act === 'boolean' ? act : 'prelu'}`;
        const g = convGeometry('test', x.shape, w.shape, { ...o, groups: C });
        const fused = convScaleShift(x.data, w.data, g, scale, shift, act) as Float32Array;
        expect(fused, `${what}: the fused path ran`).to.be.instanceOf(Float32Array);
        const op = tidy(() => Float32Array.from(conv2dScaleShift(x, w, scale, shift, act, { ...o, groups: C }).data));
        const passes = tidy(() => {
          const y = Float32Array.from(noGrad(() => conv2d(x, w, null, { ...o, groups: C })).data);
          expect(affinePlanes(y, y, g.N, g.O, g.OH * g.OW, scale, shift, act), what).to.equal(true);
          return y;
        });
        expect(Buffer.from(op.buffer).equals(Buffer.from(fused.buffer)), `${what}: conv2dScaleShift`).to.equal(true);
        expect(fused.some(Number.isNaN) && (act === true || fused.some((v) => v < 0)), `${what}: NaN (and negatives but under ReLU) in the output`).to.equal(true);
        expect(Buffer.from(fused.buffer).equals(Buffer.from(passes.buffer)), what).to.equal(true);
      }
    }
  });

  it('gradients (dx written or added onto, dW) match the float64 TypeScript loops on every geometry', () => {
    CASES.forEach((c, i) => {
      const C = c.x[1]!, M = c.M ?? 1, ws = [C * M, 1, ...c.k];
      const g = convGeometry('depthwise test', c.x, ws, { ...c.o, groups: C });
      const x = randomTensor(c.x, 10 * i + 1).data as Float32Array, w = randomTensor(ws, 10 * i + 2).data as Float32Array;
      const dy = randomTensor([g.N, g.O, g.OH, g.OW], 10 * i + 3).data as Float32Array, before = randomTensor(c.x, 10 * i + 4).data as Float32Array;
      const what = `${c.x.join('x')} k${c.k.join('x')} M${M} ${JSON.stringify(c.o)}`;
      const [dx64, dw64] = conv2dBackward(Float64Array.from(dy), Float64Array.from(x), Float64Array.from(w), g, true, true);
      const scale = (a: ArrayLike<number>): number => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 1);
      const dx = new Float32Array(x.length).fill(NaN), dw = new Float32Array(w.length).fill(NaN), onto = Float32Array.from(before);
      expect(depthwiseBackwardPlanes(x, w, dy, dx, dw, g, false), `${what}: the kernels ran`).to.equal(true);
      expectClose(dx, dx64!, 1e-6 * scale(dx64!), 1e-5, `${what} dx`);
      expectClose(dw, dw64!, 1e-6 * scale(dw64!), 1e-5, `${what} dW`);
      expect(depthwiseBackwardPlanes(x, w, dy, onto, null, g, true), what).to.equal(true);
      expectClose(onto, Array.from(dx64!, (v, j) => v + before[j]!), 1e-6 * scale(dx64!) + 1e-6, 1e-5, `${what} dx onto`);
    });
  });

  it('conv2d with groups = C runs these kernels, and agrees with the TypeScript loops it replaces', () => {
    const cases = [[[2, 6, 23, 19], [6, 1, 3, 3], { padding: 1 }], [[2, 6, 23, 19], [6, 1, 3, 3], { padding: 1, stride: 2 }], [[1, 3, 9, 14], [6, 1, 5, 5], { padding: 2 }]] as const;
    const run = (): Float32Array[] => cases.map(([x, w, o]) => tidy(() => noGrad(() => Float32Array.from((conv2d(randomTensor([...x], 3), randomTensor([...w], 4), null, { ...o, groups: x[1] }) as Tensor).data))));
    const wasm = run();
    try {
      setWasmPlanes(false);
      run().forEach((js, i) => expectClose(wasm[i]!, js, 1e-6, 1e-6, `${cases[i]![0].join('x')}: WebAssembly against the TypeScript loops`));
    } finally {
      setWasmPlanes(true);
    }
  });
});
