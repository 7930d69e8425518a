/**
 * WebAssembly kernels for local response normalization with beta = 0.75 (lrn.ts runs them, and its
 * TypeScript loops elsewhere): the squares and their channel-window sums by float32 adds, the
 * normalization and the gradient in float64 lanes, in the TypeScript's order, so both give the same bits.
 */
import { body, I32, repeat, V128, w, type Emit, type WasmFunction } from './wasm_writer.js';
import { float64Words, fromFloat64Words, isF32, passModule, regionBytes, reserve } from './wasm_module.js';
import { flatKernel, highToLow, load } from './wasm_planes.js';
import { PASS, registerPass, runPass } from './threads.js';

/**
 * Float64 arithmetic on float32 lanes, two at a time: for each half of the four lanes, the lanes of the
 * f32x4 locals `inputs` are promoted into the f64x2 locals `halves`, f leaves its f64x2 result on the
 * stack, rounded to float32; the two halves are joined into one f32x4 on the stack.
 */
function f64Lanes(e: Emit, inputs: number[], halves: number[], f: () => void): void {
  for (const high of [false, true]) {
    inputs.forEach((from, i) => {
      e(w.get(from));
      if (high) e(highToLow);
      e(w.f64x2FromF32Low, w.set(halves[i]!));
    });
    f();
    e(w.f32x4FromF64);
  }
  e(w.shuffle([0, 1, 4, 5]));
}

/**
 * LRN's normalization with beta = 0.75, over n4 groups: (sum, x, s, sPow, y, n4, kAt), with k and scale
 * as float64 at kAt. Like lrn.ts, in float64 from the float32 values: s = f32(k + scale * sum),
 * sPow = f32(1 / sqrt(s * sqrt(s))), y = x * sPow, so both paths give the same bits.
 */
function lrnKernel(): WasmFunction {
  const { code, emit: e } = body();
  const SUM = 0, X = 1, S = 2, SP = 3, Y = 4, N4 = 5, K_AT = 6, K = 7, SCALE = 8, ONE = 9, V = 10, H = 11;
  e(w.get(K_AT), w.f64Load(0), w.f64x2Splat, w.set(K), w.get(K_AT), w.f64Load(8), w.f64x2Splat, w.set(SCALE));
  e(w.get(K_AT), w.f64Load(16), w.f64x2Splat, w.set(ONE));
  repeat(e, N4, () => {
    e(w.get(SUM), w.load(0), w.set(V));
    e(w.get(S));
    f64Lanes(e, [V], [H], () => e(w.get(H), w.get(SCALE), w.f64x2Mul, w.get(K), w.f64x2Add));
    e(w.tee(V), w.store(0)); // s
    e(w.get(SP));
    f64Lanes(e, [V], [H], () => e(w.get(ONE), w.get(H), w.get(H), w.f64x2Sqrt, w.f64x2Mul, w.f64x2Sqrt, w.f64x2Div));
    e(w.tee(V), w.store(0)); // sPow
    e(w.get(Y), w.get(X), w.load(0), w.get(V), w.f32x4Mul, w.store(0));
    for (const ptr of [SUM, X, S, SP, Y]) e(w.get(ptr), w.i32(16), w.add, w.set(ptr));
  });
  return { name: 'lrn', params: new Array<number>(7).fill(I32), locals: [V128, V128, V128, V128, V128], code };
}

/**
 * LRN's backward, in float64 from the float32 values as lrn.ts computes it, over n4 groups:
 * lrnGradT (dy, x, sPow, s, t, n4): t = dy * x * sPow / s;
 * lrnGradDx (dy, sPow, x, windows, dx, n4, cAt): dx = dy * sPow - c * x * windows, c (float64) at cAt.
 */
function lrnGradKernel(dx: boolean): WasmFunction {
  const { code, emit: e } = body();
  const OUT = 4, N4 = 5, C_AT = 6, params = dx ? 7 : 6;
  const C = params, IN = [1, 2, 3, 4].map((i) => params + i), H = [5, 6, 7, 8].map((i) => params + i);
  if (dx) e(w.get(C_AT), w.f64Load(0), w.f64x2Splat, w.set(C));
  repeat(e, N4, () => {
    IN.forEach((local, i) => e(w.get(i), w.load(0), w.set(local)));
    e(w.get(OUT));
    f64Lanes(e, IN, H, () => {
      if (dx) e(w.get(H[0]!), w.get(H[1]!), w.f64x2Mul, w.get(C), w.get(H[2]!), w.f64x2Mul, w.get(H[3]!), w.f64x2Mul, w.f64x2Sub);
      else e(w.get(H[0]!), w.get(H[1]!), w.f64x2Mul, w.get(H[2]!), w.f64x2Mul, w.get(H[3]!), w.f64x2Div);
    });
    e(w.store(0));
    for (let i = 0; i <= OUT; i++) e(w.get(i), w.i32(16), w.add, w.set(i));
  });
  return { name: dx ? 'lrnGradDx' : 'lrnGradT', params: new Array<number>(params).fill(I32), locals: new Array<number>(9).fill(V128), code };
}

type Name = 'lrn' | 'lrnGradT' | 'lrnGradDx' | 'add' | 'mul';
const kernels = passModule<Name>(() => [
  lrnKernel(), lrnGradKernel(false), lrnGradKernel(true),
  flatKernel('add', 2, (e) => e(load(0), load(1), w.f32x4Add)), flatKernel('mul', 2, (e) => e(load(0), load(1), w.f32x4Mul)),
]);
type Instance = NonNullable<ReturnType<typeof kernels>>;

/** Whether these kernels run here (and the passes are switched on). */
export const wasmLrnAvailable = (): boolean => kernels() !== null;

/** Whether the kernels run here and an image of n values fits the module's regions. */
const fits = (n: number): boolean => kernels() !== null && 7 * regionBytes(n, 16) <= 1 << 27;

/**
 * LRN with beta = 0.75 over N images of C planes of P values (see lrn.ts), image by image through the
 * module's memory: the squares, their sums over channel windows of radius r (flat adds of whole channel
 * ranges, ascending, as lrn.ts sums them), then lrnKernel. Writes y, and s and sPow when given (backward
 * needs them). False where the kernels do not run or an image would not fit.
 */
export function lrnImages(
  x: ArrayLike<number>, y: ArrayLike<number>, s: ArrayLike<number> | null, sPow: ArrayLike<number> | null,
  N: number, C: number, P: number, r: number, kBase: number, scale: number,
): boolean {
  if (!isF32(x, y) || (s && !isF32(s, sPow!)) || !fits(C * P)) return false;
  const arrays = (s ? [x, y, s, sPow!] : [x, y]) as Float32Array[];
  runPass(PASS.LRN, { arrays, ints: [C, P, r, ...float64Words(kBase, scale)], tables: [], tableLength: 0 }, 0, N, 1, N * C * P);
  return true;
}

/** Arrays x, y (then s, sPow); ints C, P, r, then kBase and scale as float64 words. Images [n0, n1). */
registerPass(PASS.LRN, kernels, (k, a, n0, n1) => {
  const [C, P, r] = a.ints as [number, number, number];
  const [kBase, scale] = fromFloat64Words(a.ints.slice(3)) as [number, number];
  const [x, y, s, sPow] = a.arrays as [Float32Array, Float32Array, Float32Array?, Float32Array?];
  const n = C * P, [X, Q, SUM, S, SP, Y] = imageRegions(k, n);
  new Float64Array(k.memory.buffer, 0, 3).set([kBase, scale, 1]);
  for (let img = n0; img < n1; img++) {
    k.heap.set(x.subarray(img * n, (img + 1) * n), X / 4);
    k.mul(X, X, Q, Math.ceil(n / 4));
    channelWindowSums(k, Q, SUM, C, P, r);
    k.lrn(SUM, X, S, SP, Y, Math.ceil(n / 4), 0);
    y.set(k.heap.subarray(Y / 4, Y / 4 + n), img * n);
    if (s) {
      s.set(k.heap.subarray(S / 4, S / 4 + n), img * n);
      sPow!.set(k.heap.subarray(SP / 4, SP / 4 + n), img * n);
    }
  }
});

/**
 * LRN's input gradient (see lrn.ts), image by image: t = dy * x * sPow / s, its channel-window sums, then
 * dx = dy * sPow - c * x * sums with c = 2 * beta * scale. False where the kernels do not run.
 */
export function lrnGradImages(
  dy: ArrayLike<number>, x: ArrayLike<number>, s: ArrayLike<number>, sPow: ArrayLike<number>, dx: ArrayLike<number>,
  N: number, C: number, P: number, r: number, c: number,
): boolean {
  if (!isF32(dy, x, s, sPow, dx) || !fits(C * P)) return false;
  runPass(PASS.LRN_GRAD, { arrays: [dy, x, s, sPow, dx] as Float32Array[], ints: [C, P, r, ...float64Words(c)], tables: [], tableLength: 0 }, 0, N, 1, N * C * P);
  return true;
}

/** Arrays dy, x, s, sPow, dx; ints C, P, r, then c as float64 words. Images [n0, n1). */
registerPass(PASS.LRN_GRAD, kernels, (k, a, n0, n1) => {
  const [C, P, r] = a.ints as [number, number, number];
  const [dy, x, s, sPow, dx] = a.arrays as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const n = C * P, [DY, X, S, SP, T, SUM, DX] = imageRegions(k, n);
  new Float64Array(k.memory.buffer, 0, 1)[0] = fromFloat64Words(a.ints.slice(3))[0]!;
  const image = (v: Float32Array, img: number): Float32Array => v.subarray(img * n, (img + 1) * n);
  for (let img = n0; img < n1; img++) {
    k.heap.set(image(dy, img), DY / 4);
    k.heap.set(image(x, img), X / 4);
    k.heap.set(image(s, img), S / 4);
    k.heap.set(image(sPow, img), SP / 4);
    k.lrnGradT(DY, X, SP, S, T, Math.ceil(n / 4));
    channelWindowSums(k, T, SUM, C, P, r);
    k.lrnGradDx(DY, SP, X, SUM, DX, Math.ceil(n / 4), 0);
    dx.set(k.heap.subarray(DX / 4, DX / 4 + n), img * n);
  }
});

type Seven = [number, number, number, number, number, number, number];

/** Addresses of seven regions of n floats after 32 bytes of constants (fits() checked they fit). */
function imageRegions(k: Instance, n: number): Seven {
  const stride = regionBytes(n, 16); // whole groups of four, and a group to spare
  reserve(k, 32 + 7 * stride);
  return Array.from({ length: 7 }, (_, i) => 32 + i * stride) as Seven;
}

/**
 * to[c] = sum of from[j] over the channels |j - c| <= r of one image's C planes of P values, summed in
 * ascending j from zero as lrn.ts's windowSums does (so in the same float32 roundings): one flat add per
 * offset over the whole range of channels it applies to.
 */
function channelWindowSums(k: Instance, from: number, to: number, C: number, P: number, r: number): void {
  k.heap.fill(0, to / 4, to / 4 + C * P);
  for (let d = -r; d <= r; d++) { // to[c] += from[c + d] for the channels c where c + d exists
    const c0 = Math.max(0, -d), c1 = Math.min(C, C - d), values = (c1 - c0) * P;
    if (values <= 0) continue;
    const dst = to + c0 * P * 4, src = from + (c0 + d) * P * 4, groups = Math.floor(values / 4);
    k.add(dst, src, dst, groups);
    for (let i = groups * 4; i < values; i++) k.heap[dst / 4 + i] = Math.fround(k.heap[dst / 4 + i]! + k.heap[src / 4 + i]!);
  }
}

