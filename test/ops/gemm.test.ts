/**
 * The GEMM behind convolution and dense layers, on every path: the WebAssembly SIMD kernel and the
 * pure-TypeScript kernel, on one thread and on two, against a float64 triple loop. Also: the emitted
 * module is valid WebAssembly, results are bit-identical across thread counts for each kernel, and a
 * convolution's forward and gradients agree between the two kernels.
 */
import { expect } from 'chai';
import { conv2d, gemmKernel, getNumThreads, mul, Rng, setGemmKernel, setNumThreads, sum, tidy, type GemmKernel } from '../../src/index.js';
import { gemm, imagesMat, mat, type Matrix } from '../../src/backends/cpu/gemm.js';
import { gemmModuleBytes, planeStaged, wasmGemmAvailable, wasmGemmFused } from '../../src/backends/cpu/wasm_gemm.js';
import { setMinThreadedWork, slicesTakenBack, threadedGemms } from '../../src/backends/cpu/threads.js';
import { expectClose, randomTensor } from '../helpers.js';

/** C (+)= op(A) op(B) in float64, from matrices stored with row strides lda, ldb, ldc. */
function reference(tA: boolean, tB: boolean, M: number, N: number, K: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, c: Float64Array, ldc: number): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (tA ? a[k * lda + i]! : a[i * lda + k]!) * (tB ? b[j * ldb + k]! : b[k * ldb + j]!);
      c[i * ldc + j]! += s;
    }
  }
}

// Edges of every blocking: rows not a multiple of 4, columns not a multiple of 8, depth over one 256-deep
// slab, columns over one 512-wide block, and products big enough to be split across threads.
// [M, N, K]. The last two have more rows than columns: 2 threads split them by rows (203: not a multiple of 4).
const SHAPES: [number, number, number][] = [[4, 8, 1], [5, 9, 3], [7, 13, 300], [37, 600, 70], [64, 1030, 513], [130, 520, 260], [300, 40, 200], [203, 17, 90]];

function product(rng: Rng, kernel: GemmKernel, threads: number, [M, N, K]: [number, number, number], tA: boolean, tB: boolean, accumulate: boolean): { got: Float32Array; want: Float64Array } {
  const pad = 3; // row strides wider than the rows: the kernels must honour ld
  const lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
  const a = Float32Array.from({ length: (tA ? K : M) * lda }, () => rng.uniform(-1, 1));
  const b = Float32Array.from({ length: (tB ? N : K) * ldb }, () => rng.uniform(-1, 1));
  const c = Float32Array.from({ length: M * ldc }, () => rng.uniform(-1, 1));
  const want = Float64Array.from(c);
  if (!accumulate) for (let i = 0; i < M; i++) want.fill(0, i * ldc, i * ldc + N);
  reference(tA, tB, M, N, K, a, lda, b, ldb, want, ldc);
  setGemmKernel(kernel);
  setNumThreads(threads);
  gemm(tA, tB, M, N, K, mat(a, 0, lda), mat(b, 0, ldb), mat(c, 0, ldc), accumulate);
  for (let i = 0; i < M; i++) { c.fill(0, i * ldc + N, (i + 1) * ldc); want.fill(0, i * ldc + N, (i + 1) * ldc); } // padding is not C
  return { got: c, want };
}

/**
 * Runs threaded products on 2 threads until the worker computes its slice of one (it has started up and
 * woke in time): each share takes about a millisecond, longer than a sleeping worker takes to wake (50-300
 * us here, more on a loaded machine), and the caller gives up after 20 s.
 */
async function workersUp(): Promise<void> {
  setNumThreads(2);
  for (const started = Date.now(); Date.now() - started < 20_000;) {
    const taken = slicesTakenBack();
    product(new Rng(1), gemmKernel(), 2, [192, 512, 192], false, false, false);
    if (slicesTakenBack() === taken) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the GEMM worker never started');
}

describe('GEMM kernels (WebAssembly SIMD and TypeScript, 1 and 2 threads)', function () {
  this.timeout(120000);
  const threadsBefore = getNumThreads();
  // Small products too run threaded here (by default only those worth the synchronization are).
  before(() => setMinThreadedWork(0));
  after(() => { setGemmKernel('wasm'); setNumThreads(threadsBefore); setMinThreadedWork(); });

  it('the emitted module is valid WebAssembly and runs here (Node has SIMD since 16.4)', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    expect(wasm.validate(gemmModuleBytes())).to.equal(true);
    expect(wasmGemmAvailable()).to.equal(true);
    setGemmKernel('wasm');
    expect(gemmKernel()).to.equal('wasm');
    setGemmKernel('js');
    expect(gemmKernel()).to.equal('js');
  });

  it('the kernel is the fused one (relaxed SIMD) exactly where the engine compiles it, unless FACENET_WASM_FMA=0; gemm_fused.test.ts runs this file with it on', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    const relaxed = wasm.validate(gemmModuleBytes(true));
    if (process.env.FACENET_EXPECT_FUSED === '1') expect(relaxed, 'relaxed SIMD in the child Node').to.equal(true);
    expect(wasmGemmFused()).to.equal(relaxed && process.env.FACENET_WASM_FMA !== '0');
  });

  for (const kernel of ['wasm', 'js'] as const) {
    for (const threads of [1, 2]) {
      it(`${kernel} kernel, ${threads} thread(s): every shape and transpose against float64 (|err| <= 1e-6 + 1e-7 K: a float32 sum of K terms)`, () => {
        const rng = new Rng(7);
        for (const shape of SHAPES) {
          for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
            const { got, want } = product(rng, kernel, threads, shape, tA, tB, shape[0] % 2 === 1);
            expectClose(got, want, 1e-6 + 1e-7 * shape[2], 0, `${shape.join('x')} tA=${tA} tB=${tB}`);
          }
        }
      });
    }
    it(`${kernel} kernel: bit-identical on 1 and 2 threads, slices computed by the worker or taken back by the caller`, async () => {
      const ones = SHAPES.map((shape) => product(new Rng(11), kernel, 1, shape, false, true, false).got);
      // Freshly started workers: the caller takes their slices back until they are up.
      const before = threadedGemms(), takenBefore = slicesTakenBack();
      const fresh = SHAPES.map((shape) => product(new Rng(11), kernel, 2, shape, false, true, false).got);
      expect(threadedGemms() - before, 'threaded products').to.equal(SHAPES.filter(([, N]) => N >= 16).length); // narrower ones never split
      expect(slicesTakenBack() - takenBefore, 'slices the caller took back').to.be.greaterThan(0);
      // Running workers: they compute their slices.
      await workersUp();
      const jobs = threadedGemms(), taken = slicesTakenBack();
      const workerSlices = (): number => threadedGemms() - jobs - (slicesTakenBack() - taken);
      const same = (two: Float32Array, i: number): void => { expect(Buffer.from(two.buffer).equals(Buffer.from(ones[i]!.buffer)), SHAPES[i]!.join('x')).to.equal(true); };
      fresh.forEach(same);
      // Again (up to 5 rounds) while the worker computed no slice: descheduled on a loaded machine, its slices are taken back.
      for (let round = 0; round === 0 || (round < 5 && workerSlices() === 0); round++) {
        SHAPES.map((shape) => product(new Rng(11), kernel, 2, shape, false, true, false).got).forEach(same);
      }
      expect(workerSlices(), 'slices the worker computed').to.be.greaterThan(0);
    });
  }

  it('images views (NCHW planes used in place) as A, B and C, small and large planes, partial images in a block: as plain matrices, on 1 and 2 threads', () => {
    const rng = new Rng(5);
    /** A [rows, images * P] images view inside NCHW data of rows + 3 channels, starting at channel 2. */
    const imagesView = (rows: number, cols: number, P: number): { view: Matrix; plain: Float32Array } => {
      const images = Math.ceil(cols / P), stride = (rows + 3) * P;
      const data = Float32Array.from({ length: images * stride }, () => rng.uniform(-1, 1));
      const plain = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) plain[r * cols + c] = data[2 * P + Math.floor(c / P) * stride + r * P + (c % P)]!;
      return { view: imagesMat(data, 2 * P, P, stride), plain };
    };
    // Planes of 9, 49, 7 (small), 100 (blocks that take under half of an image are copied row by row), 600
    // (256 rows of a B block do not fit the scratch: row by row).
    for (const [M, K, P, images] of [[20, 30, 9, 70], [36, 50, 49, 13], [9, 300, 7, 5], [12, 40, 100, 9], [8, 280, 600, 2]] as const) {
      const N = P * images;
      for (const [tA, tB] of [[false, false], [true, false], [false, true]] as const) {
        for (const threads of [1, 2]) {
          setNumThreads(threads);
          setGemmKernel('wasm');
          // Columns are images x P: A's stored columns are M, so A is an images view only when stored [K, M].
          const a = tA ? imagesView(K, M, P) : { plain: Float32Array.from({ length: M * K }, () => rng.uniform(-1, 1)) };
          const b = tB ? imagesView(N, K, P) : imagesView(K, N, P);
          const c = imagesView(M, N, P);
          const aView = 'view' in a ? a.view! : mat(a.plain, 0, tA ? M : K);
          const accumulate = threads === 1;
          const want = accumulate ? Float64Array.from(c.plain) : new Float64Array(M * N);
          reference(tA, tB, M, N, K, a.plain, tA ? M : K, b.plain, tB ? K : N, want, N);
          const before = Float32Array.from(c.view.data);
          gemm(tA, tB, M, N, K, aView, b.view, c.view, accumulate);
          const got = new Float32Array(M * N), inView = new Uint8Array(before.length);
          for (let r = 0; r < M; r++) {
            for (let j = 0; j < N; j++) {
              const i = c.view.offset + Math.floor(j / P) * c.view.images!.stride + r * P + (j % P);
              got[r * N + j] = c.view.data[i]!;
              inView[i] = 1;
            }
          }
          const what = `M=${M} K=${K} P=${P} tA=${tA} tB=${tB} threads=${threads}`;
          expectClose(got, want, 1e-5 * K, 0, what);
          before.forEach((v, i) => { if (!inView[i] && !Object.is(c.view.data[i], v)) expect.fail(`${what}: value ${i} outside the view changed`); });
        }
      }
    }
  });

  it('images views packed from whole planes (depth along their columns, as a filter gradient\'s dy and a 1x1 input): bit-identical to the same values as plain matrices, depth crossing images at any offset', () => {
    const rng = new Rng(9);
    setNumThreads(1);
    setGemmKernel('wasm');
    // dW-like products C[M, N] = A[M, images * P] · B[N, images * P]ᵀ, A and B images views inside NCHW data
    // (rows + 2 channels, from channel 1). Planes of 70 and 100 make pieces of every length mod 4 at slab
    // boundaries (256); M and N not multiples of the panels (4, 8); N = 530 takes two column blocks.
    for (const [M, N, P, images] of [[13, 21, 70, 9], [6, 530, 100, 4], [32, 9, 1225, 1]] as const) {
      const K = P * images;
      const view = (rows: number): { view: Matrix; plain: Float32Array } => {
        const stride = (rows + 2) * P, data = Float32Array.from({ length: images * stride }, () => rng.uniform(-1, 1));
        const plain = new Float32Array(rows * K);
        for (let r = 0; r < rows; r++) for (let c = 0; c < K; c++) plain[r * K + c] = data[P + Math.floor(c / P) * stride + r * P + (c % P)]!;
        return { view: imagesMat(data, P, P, stride), plain };
      };
      const a = view(M), b = view(N);
      const viaPlanes = new Float32Array(M * N), viaStaging = new Float32Array(M * N);
      const slabs = planeStaged.slabs;
      gemm(false, true, M, N, K, a.view, b.view, mat(viaPlanes, 0, N), false);
      expect(planeStaged.slabs - slabs, 'slabs packed from planes').to.equal(Math.ceil(K / 256) * (1 + Math.ceil(N / 512)));
      gemm(false, true, M, N, K, mat(a.plain, 0, K), mat(b.plain, 0, K), mat(viaStaging, 0, N), false);
      const what = `M=${M} N=${N} P=${P} images=${images}`;
      viaPlanes.forEach((v, i) => { if (!Object.is(v, viaStaging[i])) expect.fail(`${what}: C[${i}] = ${v} from planes, ${viaStaging[i]} staged`); });
      const want = new Float64Array(M * N);
      reference(false, true, M, N, K, a.plain, K, b.plain, K, want, N);
      expectClose(viaPlanes, want, 1e-5 * K, 0, what);
    }
  });

  it('convolutions on 2 threads, both kernels (workers computing their own cols from a copy of their images, adding their dcols onto a copy of their images\' dx; slices taken back or computed by the worker): forward and both gradients bit-identical to 1 thread, and as in float64', async () => {
    // Each geometry is large enough for its forward and gradient GEMMs to be split across threads.
    const geometries = [
      { name: '3x3 on 12x12 (gathered cols)', x: [4, 16, 12, 12], w: [24, 16, 3, 3], o: { padding: 1 } },
      { name: '3x3 on 20x20 (cols by copies)', x: [2, 8, 20, 20], w: [16, 8, 3, 3], o: { padding: 1 } },
      { name: '3x3 stride 2 (dx by col2im)', x: [4, 16, 13, 13], w: [24, 16, 3, 3], o: { stride: 2 } },
      // 3 images on 2 threads: the threads' columns share an image, so the caller adds its own dcols blocks
      // as it computes them, the worker's (columns 1024..) after it is done.
      { name: '3x3, batch 3 (col2im with the threads sharing an image)', x: [3, 16, 20, 20], w: [24, 16, 3, 3], o: { padding: 1 } },
      { name: '1x1 (operands are images views)', x: [4, 32, 10, 10], w: [48, 32, 1, 1], o: {} },
      { name: 'groups 2', x: [1, 32, 16, 16], w: [32, 16, 3, 3], o: { padding: 1, groups: 2 } },
      // Batch 1 over small planes: more filters than pixels, so the forward and dx GEMMs split by rows.
      { name: '3x3 on 5x5, batch 1 (split by rows)', x: [1, 32, 5, 5], w: [64, 32, 3, 3], o: { padding: 1 } },
      { name: '1x1 on 6x6, batch 1 (split by rows, images views)', x: [1, 128, 6, 6], w: [192, 128, 1, 1], o: {} },
    ];
    const cases = (['wasm', 'js'] as const).flatMap((k) => geometries.map((g) => [k, g] as const));
    const results = cases.map(([kernel, c]) => {
      const run = (dtype: 'float32' | 'float64', threads: number): Float64Array[] => tidy(() => {
        setGemmKernel(kernel);
        setNumThreads(threads);
        const x = randomTensor(c.x, 3, dtype), w = randomTensor(c.w, 4, dtype);
        x.requiresGrad = true;
        w.requiresGrad = true;
        const y = conv2d(x, w, null, c.o);
        sum(mul(y, y)).backward();
        return [y, x.grad!, w.grad!].map((t) => Float64Array.from(t.data));
      });
      return { run, one: run('float32', 1), want: run('float64', 1) };
    });
    const same = (two: Float64Array[], one: Float64Array[], what: string): void => {
      for (let i = 0; i < 3; i++) expect(Buffer.from(Float32Array.from(two[i]!).buffer).equals(Buffer.from(Float32Array.from(one[i]!).buffer)), `${what}: ${['y', 'dx', 'dw'][i]}`).to.equal(true);
    };
    // Freshly started workers: the caller takes their slices back (forward, dx by col2im, dw of one small
    // convolution take a few milliseconds; a worker takes tens to start), so it adds the workers' dcols
    // onto the shared copy of their dx itself.
    const col2im = cases.findIndex(([kernel, c]) => kernel === 'wasm' && c.name.includes('col2im'));
    setNumThreads(1);
    const takenFresh = slicesTakenBack();
    same(results[col2im]!.run('float32', 2), results[col2im]!.one, 'fresh workers, 3x3 stride 2');
    expect(slicesTakenBack() - takenFresh, 'slices taken back from fresh workers').to.be.at.least(3);
    await workersUp(); // so the workers compute their slices
    const jobs = threadedGemms(), taken = slicesTakenBack();
    const workerSlices = (): number => threadedGemms() - jobs - (slicesTakenBack() - taken);
    // Every case once, and again (up to 5 rounds) while the worker has computed too few slices: on a loaded
    // machine a descheduled worker's slices are taken back by the caller.
    for (let round = 0; round === 0 || (round < 5 && workerSlices() <= cases.length); round++) {
      for (const [index, [kernel, c]] of cases.entries()) {
        const { run, one, want } = results[index]!, threadedBefore = threadedGemms(), two = run('float32', 2);
        expect(threadedGemms() - threadedBefore, `${kernel}, ${c.name}: threaded GEMMs`).to.be.at.least(2);
        same(two, one, `${kernel}, ${c.name}`);
        for (let i = 0; i < 3; i++) {
          const scale = want[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          expectClose(two[i]!, want[i]!, 1e-5 * scale, 0, `${kernel}, ${c.name}: ${['y', 'dx', 'dw'][i]}`);
        }
      }
    }
    expect(workerSlices(), 'slices the worker computed').to.be.greaterThan(cases.length);
  });

  it('large images (one image\'s cols over MAX_COLS floats): the WebAssembly kernel runs the batch as one chunk, so 2 threads take whole images each; bit-identical to 1 thread, and as in float64', () => {
    // 16 channels, 3x3, 175x175 outputs: 144 x 30625 = 4.4 M floats of cols per image, over MAX_COLS (4 M).
    const run = (dtype: 'float32' | 'float64', threads: number): { values: Float64Array[]; gemms: number } => tidy(() => {
      setGemmKernel('wasm');
      setNumThreads(threads);
      const x = randomTensor([2, 16, 175, 175], 5, dtype), w = randomTensor([8, 16, 3, 3], 6, dtype);
      x.requiresGrad = true;
      w.requiresGrad = true;
      const before = threadedGemms();
      const y = conv2d(x, w, null, { padding: 1 });
      sum(mul(y, y)).backward();
      return { values: [y, x.grad!, w.grad!].map((t) => Float64Array.from(t.data)), gemms: threadedGemms() - before };
    });
    const one = run('float32', 1), two = run('float32', 2), want = run('float64', 1);
    expect(two.gemms, 'threaded GEMMs: the forward, dx and dw, each over both images at once').to.equal(3);
    for (let i = 0; i < 3; i++) {
      const what = ['y', 'dx', 'dw'][i]!;
      expect(Buffer.from(Float32Array.from(two.values[i]!).buffer).equals(Buffer.from(Float32Array.from(one.values[i]!).buffer)), `${what}: 2 threads as 1`).to.equal(true);
      const scale = want.values[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectClose(two.values[i]!, want.values[i]!, 1e-5 * scale, 0, `${what} against float64`);
    }
  });

  it('a convolution forward and both gradients agree between the kernels to float32 rounding', () => {
    const run = (kernel: GemmKernel): Float32Array[] => tidy(() => {
      setGemmKernel(kernel);
      const x = randomTensor([2, 5, 11, 9], 1), w = randomTensor([7, 5, 3, 3], 2);
      x.requiresGrad = true;
      w.requiresGrad = true;
      const y = conv2d(x, w, null, { stride: 2, padding: 1 });
      sum(y).backward();
      return [Float32Array.from(y.data), Float32Array.from(x.grad!.data), Float32Array.from(w.grad!.data)];
    });
    const [wasm, js] = [run('wasm'), run('js')];
    wasm.forEach((v, i) => expectClose(v, js[i]!, 1e-5, 1e-5, ['y', 'dx', 'dw'][i]));
  });
});
