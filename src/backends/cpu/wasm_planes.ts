/**
 * WebAssembly SIMD kernels for the per-channel and elementwise passes around the convolutions: batchnorm's
 * statistics, normalization and gradient, the inference scale-and-shift and conv bias, ReLU, leaky ReLU and
 * PReLU and their gradients, elementwise add/sub/mul/abs (so gradient accumulation too) and a residual
 * block's closing sum (pooling: wasm_pool.ts; LRN: wasm_lrn.ts; depthwise convolution: wasm_depthwise.ts).
 * JavaScript runs these loops at 1.2-2.5 ns a value on typed arrays (measured here: no vectorization, a
 * float64 round trip per value); WebAssembly SIMD takes four float32 values an instruction. The data lives
 * in JavaScript arrays, so each pass copies chunks into the module's memory (native memcpy, ~0.1-0.3 ns a
 * value), runs a kernel on them, and copies the result out. Chunks are whole planes of P values where the
 * kernel is per channel, and stay small enough to live in the L2 cache.
 *
 * Values are float32 in the kernels (per-channel constants too); sums are accumulated in float64. The
 * TypeScript loops in the op files remain the path for float64 tensors and where WebAssembly SIMD is
 * missing; both agree to float32 rounding (tested). NaN passes through ReLU with either sign bit.
 */
import { body, F32, F64, I32, moduleBytes, repeat, V128, w, type Emit, type WasmFunction } from './wasm_writer.js';
import { CHUNK, float64Words, fromFloat64Words, isF32, passModule, regionBytes, reserve, type Fn, type PassModule } from './wasm_module.js';
import { PASS, registerPass, runPass, type PassArgs } from './threads.js';
import { AFFINE_ACTIVATIONS, affineVector, relu4, type AffineActivation } from './wasm_affine.js';

export { setWasmPlanes } from './wasm_module.js';

// ---- kernels ----

/** Lanes 2-3 of the f32x4 on the stack moved to lanes 0-1 (to be promoted to float64 next). */
export const highToLow = [...w.zero, ...w.shuffle([2, 3, 4, 5])];

/** The same for one float32 on the stack. */
function relu1(e: Emit, tmp: number): void {
  // select(v, 0, keep): keep = bits(v) > 0 | v != v
  e(w.tee(tmp), w.f32Const0, w.get(tmp), w.i32FromF32Bits, w.i32(0), w.gtS, w.get(tmp), w.get(tmp), w.f32Ne, w.i32Or, w.select);
}

/*
 * Per-plane kernels: parameters (addresses in bytes) the pointers they walk, then P (values per plane),
 * planes, C (channels) and ch (the first plane's channel; the channel advances with each plane and wraps
 * at C), then the tables of per-channel constants (float32) or sums (float64) indexed by channel.
 * Within a plane, four values at a time, then up to three one by one.
 */
interface PlaneKernel {
  name: string;
  pointers: number; // leading pointer parameters, each advanced by 4 bytes a value
  tables: number;
  /** Extra locals after the fixed ones (their types). */
  locals: number[];
  /** Once per plane, before its values (load the channel's constants into locals). */
  perPlane: (e: Emit, L: Locals) => void;
  /** Four values at pointers + 0 (vector) / one value (scalar). */
  vector: (e: Emit, L: Locals) => void;
  scalar: (e: Emit, L: Locals) => void;
  /** After the plane's values (fold per-plane sums into the tables). */
  afterPlane?: (e: Emit, L: Locals) => void;
}

interface Locals { ptr: (i: number) => number; table: (i: number) => number; ch: number; extra: (i: number) => number; tmp4: number; tmp1: number }

function planeKernel(k: PlaneKernel): WasmFunction {
  const { code, emit: e } = body();
  const VALUES = k.pointers, PLANES = VALUES + 1, C = VALUES + 2, CH = VALUES + 3, TAB = VALUES + 4; // parameters
  const nParams = TAB + k.tables;
  const LEFT = nParams, GROUPS = nParams + 1, TAIL = nParams + 2, CH8 = nParams + 3; // i32 locals
  const TMP4 = nParams + 4, TMP1 = nParams + 5, EXTRA = nParams + 6;
  const L: Locals = { ptr: (i) => i, table: (i) => TAB + i, ch: CH8, extra: (i) => EXTRA + i, tmp4: TMP4, tmp1: TMP1 };
  const advance = (bytes: number): void => { for (let i = 0; i < k.pointers; i++) e(w.get(i), w.i32(bytes), w.add, w.set(i)); };
  e(w.get(PLANES), w.set(LEFT));
  repeat(e, LEFT, () => {
    e(w.get(CH), w.i32(8), w.mul, w.set(CH8)); // byte offset of the channel in a float64 table (float32: half)
    k.perPlane(e, L);
    e(w.get(VALUES), w.i32(2), w.shrU, w.set(GROUPS));
    repeat(e, GROUPS, () => { k.vector(e, L); advance(16); });
    e(w.get(VALUES), w.i32(3), w.and, w.set(TAIL));
    repeat(e, TAIL, () => { k.scalar(e, L); advance(4); });
    k.afterPlane?.(e, L);
    // ch = ch + 1 == C ? 0 : ch + 1
    e(w.get(CH), w.i32(1), w.add, w.tee(CH), w.get(C), w.eq, w.if, w.i32(0), w.set(CH), w.end);
  });
  return {
    name: k.name,
    params: new Array<number>(nParams).fill(I32),
    locals: [I32, I32, I32, I32, V128, F32, ...k.locals],
    code,
  };
}

/** Loads table t's float32 constant of this plane's channel: as a splat vector, or a scalar. */
const f32OfChannel = (e: Emit, L: Locals, t: number): void => e(w.get(L.table(t)), w.get(L.ch), w.i32(1), w.shrU, w.add, w.f32Load(0));

const AFFINE_KERNEL = { none: 'affine', relu: 'affineRelu', prelu: 'affinePrelu' } as const;

/** dst = src * a[c] + b[c], then ReLU, or PReLU with slope s[c] (table 2; compared as the prelu kernel does). */
function affineKernel(activation: AffineActivation): WasmFunction {
  const A = 0, B = 1, S = 2, A1 = 3, B1 = 4, S1 = 5; // extra locals: v128 a, b, s; f32 a, b, s
  const prelu = activation === 'prelu';
  return planeKernel({
    name: AFFINE_KERNEL[activation], pointers: 2, tables: prelu ? 3 : 2, locals: [V128, V128, V128, F32, F32, F32],
    perPlane: (e, L) => {
      f32OfChannel(e, L, 0); e(w.tee(L.extra(A1)), w.f32x4Splat, w.set(L.extra(A)));
      f32OfChannel(e, L, 1); e(w.tee(L.extra(B1)), w.f32x4Splat, w.set(L.extra(B)));
      if (prelu) { f32OfChannel(e, L, 2); e(w.tee(L.extra(S1)), w.f32x4Splat, w.set(L.extra(S))); }
    },
    vector: (e, L) => {
      e(w.get(L.ptr(1)), w.get(L.ptr(0)), w.load(0));
      affineVector(e, activation, L.extra(A), L.extra(B), L.extra(S), L.tmp4);
      e(w.store(0));
    },
    scalar: (e, L) => {
      e(w.get(L.ptr(1)), w.get(L.ptr(0)), w.f32Load(0), w.get(L.extra(A1)), w.f32Mul, w.get(L.extra(B1)), w.f32Add);
      if (activation === 'relu') relu1(e, L.tmp1);
      if (prelu) e(w.tee(L.tmp1), w.get(L.tmp1), w.get(L.extra(S1)), w.f32Mul, w.get(L.tmp1), w.i32FromF32Bits, w.i32(0), w.gtS, w.select);
      e(w.f32Store(0));
    },
  });
}

/** PReLU: dst = src > 0 ? src : a[c] * src (compared as integers: positive floats only; NaN stays NaN). */
function preluKernel(): WasmFunction {
  const A = 0, A1 = 1; // extra locals: v128 a; f32 a
  return planeKernel({
    name: 'prelu', pointers: 2, tables: 1, locals: [V128, F32],
    perPlane: (e, L) => { f32OfChannel(e, L, 0); e(w.tee(L.extra(A1)), w.f32x4Splat, w.set(L.extra(A))); },
    vector: (e, L) => {
      e(w.get(L.ptr(1)), w.get(L.ptr(0)), w.load(0), w.tee(L.tmp4), w.get(L.tmp4), w.get(L.extra(A)), w.f32x4Mul);
      e(w.get(L.tmp4), w.zero, w.i32x4GtS, w.bitselect, w.store(0));
    },
    scalar: (e, L) => {
      e(w.get(L.ptr(1)), w.get(L.ptr(0)), w.f32Load(0), w.tee(L.tmp1), w.get(L.tmp1), w.get(L.extra(A1)), w.f32Mul);
      e(w.get(L.tmp1), w.i32FromF32Bits, w.i32(0), w.gtS, w.select, w.f32Store(0));
    },
  });
}

/**
 * Adds, per plane, sum(u) and sum(u * v) into float64 tables 1 and 2, with u and v read from the one or
 * two pointers: moments (one pointer): u = v = x - shift[c]; batchnorm's backward sums (two): u = dy,
 * v = x - mean[c]. Four float64 lanes accumulate, folded into the tables after each plane.
 *
 * bnSumsMasked first masks dy by the ReLU that followed the batchnorm, its output recomputed from x instead
 * of read, and stores the masked dy in place (for the input gradient next): dy = y > 0 ? dy : 0 for
 * y = max(0, x * a[c] + b[c]) (tables 3 and 4), compared as integers as the mask kernel does. affineRelu
 * makes y with the same float32 operations, and keeps v = x*a + b exactly where v's bits are > 0 as an
 * integer (a NaN of either sign stays, but only a positive one passes the mask): so the mask is bits(v) > 0.
 */
function sumsKernel(name: string, pointers: 1 | 2, masked = false): WasmFunction {
  const S = 0, U = 1, V = 2, SUM_U_LO = 3, SUM_U_HI = 4, SUM_UV_LO = 5, SUM_UV_HI = 6, S1 = 7, U1 = 8, SU = 9, SUV = 10;
  const A = 11, B = 12, A1 = 13, B1 = 14, X4 = 15, X1 = 16; // masked: the affine map's a[c], b[c]; x as loaded
  const locals = [V128, V128, V128, V128, V128, V128, V128, F32, F32, F64, F64, ...(masked ? [V128, V128, F32, F32, V128, F32] : [])];
  const accumulate = (e: Emit, L: Locals, lo: number, hi: number, value: () => void): void => {
    value();
    e(w.tee(L.tmp4), w.f64x2FromF32Low, w.get(L.extra(lo)), w.f64x2Add, w.set(L.extra(lo)));
    e(w.get(L.tmp4), highToLow, w.f64x2FromF32Low, w.get(L.extra(hi)), w.f64x2Add, w.set(L.extra(hi)));
  };
  const foldInto = (e: Emit, L: Locals, table: number, lo: number, hi: number, scalar: number): void => {
    e(w.get(L.table(table)), w.get(L.ch), w.add, w.get(L.table(table)), w.get(L.ch), w.add, w.f64Load(0));
    e(w.get(L.extra(lo)), w.get(L.extra(hi)), w.f64x2Add, w.tee(L.extra(lo)), w.f64x2Lane(0), w.get(L.extra(lo)), w.f64x2Lane(1), w.f64Add);
    e(w.get(L.extra(scalar)), w.f64Add, w.f64Add, w.f64Store(0));
  };
  return planeKernel({
    name, pointers, tables: masked ? 5 : 3, locals,
    perPlane: (e, L) => {
      f32OfChannel(e, L, 0); e(w.tee(L.extra(S1)), w.f32x4Splat, w.set(L.extra(S)));
      if (masked) {
        f32OfChannel(e, L, 3); e(w.tee(L.extra(A1)), w.f32x4Splat, w.set(L.extra(A)));
        f32OfChannel(e, L, 4); e(w.tee(L.extra(B1)), w.f32x4Splat, w.set(L.extra(B)));
      }
      for (const acc of [SUM_U_LO, SUM_U_HI, SUM_UV_LO, SUM_UV_HI]) e(w.zero, w.set(L.extra(acc)));
      e(w.f64Const0, w.set(L.extra(SU)), w.f64Const0, w.set(L.extra(SUV)));
    },
    vector: (e, L) => {
      const v = pointers === 1 ? 0 : 1; // v = (pointer v) - shift
      e(w.get(L.ptr(v)), w.load(0), masked ? w.tee(L.extra(X4)) : [], w.get(L.extra(S)), w.f32x4Sub, w.set(L.extra(V)));
      if (pointers === 1) e(w.get(L.extra(V)), w.set(L.extra(U)));
      else if (!masked) e(w.get(L.ptr(0)), w.load(0), w.set(L.extra(U)));
      else {
        e(w.get(L.extra(X4)), w.get(L.extra(A)), w.f32x4Mul, w.get(L.extra(B)), w.f32x4Add, w.zero, w.i32x4GtS);
        e(w.get(L.ptr(0)), w.load(0), w.and128, w.set(L.extra(U)), w.get(L.ptr(0)), w.get(L.extra(U)), w.store(0));
      }
      accumulate(e, L, SUM_U_LO, SUM_U_HI, () => e(w.get(L.extra(U))));
      accumulate(e, L, SUM_UV_LO, SUM_UV_HI, () => e(w.get(L.extra(U)), w.get(L.extra(V)), w.f32x4Mul));
    },
    scalar: (e, L) => {
      const v = pointers === 1 ? 0 : 1;
      e(w.get(L.ptr(v)), w.f32Load(0), masked ? w.tee(L.extra(X1)) : [], w.get(L.extra(S1)), w.f32Sub, w.set(L.tmp1));
      if (pointers === 1) e(w.get(L.tmp1), w.set(L.extra(U1)));
      else if (!masked) e(w.get(L.ptr(0)), w.f32Load(0), w.set(L.extra(U1)));
      else {
        e(w.get(L.ptr(0)), w.f32Load(0), w.f32Const0);
        e(w.get(L.extra(X1)), w.get(L.extra(A1)), w.f32Mul, w.get(L.extra(B1)), w.f32Add);
        e(w.i32FromF32Bits, w.i32(0), w.gtS, w.select, w.set(L.extra(U1)), w.get(L.ptr(0)), w.get(L.extra(U1)), w.f32Store(0));
      }
      e(w.get(L.extra(SU)), w.get(L.extra(U1)), w.f64FromF32, w.f64Add, w.set(L.extra(SU)));
      e(w.get(L.extra(SUV)), w.get(L.extra(U1)), w.get(L.tmp1), w.f32Mul, w.f64FromF32, w.f64Add, w.set(L.extra(SUV)));
    },
    afterPlane: (e, L) => {
      foldInto(e, L, 1, SUM_U_LO, SUM_U_HI, SU);
      foldInto(e, L, 2, SUM_UV_LO, SUM_UV_HI, SUV);
    },
  });
}

/** Batchnorm's input gradient in training: dx = a[c] * dy - b[c] * (x - mean[c]) - d[c]. Pointers dy, x, dx. */
function bnInputGradientKernel(): WasmFunction {
  const A = 0, M = 1, B = 2, D = 3, A1 = 4, M1 = 5, B1 = 6, D1 = 7;
  return planeKernel({
    name: 'bnInputGradient', pointers: 3, tables: 4, locals: [V128, V128, V128, V128, F32, F32, F32, F32],
    perPlane: (e, L) => {
      [[A, A1], [M, M1], [B, B1], [D, D1]].forEach(([vec, one], t) => { f32OfChannel(e, L, t); e(w.tee(L.extra(one!)), w.f32x4Splat, w.set(L.extra(vec!))); });
    },
    vector: (e, L) => {
      e(w.get(L.ptr(2)), w.get(L.ptr(0)), w.load(0), w.get(L.extra(A)), w.f32x4Mul);
      e(w.get(L.ptr(1)), w.load(0), w.get(L.extra(M)), w.f32x4Sub, w.get(L.extra(B)), w.f32x4Mul, w.f32x4Sub);
      e(w.get(L.extra(D)), w.f32x4Sub, w.store(0));
    },
    scalar: (e, L) => {
      e(w.get(L.ptr(2)), w.get(L.ptr(0)), w.f32Load(0), w.get(L.extra(A1)), w.f32Mul);
      e(w.get(L.ptr(1)), w.f32Load(0), w.get(L.extra(M1)), w.f32Sub, w.get(L.extra(B1)), w.f32Mul, w.f32Sub);
      e(w.get(L.extra(D1)), w.f32Sub, w.f32Store(0));
    },
  });
}

/**
 * Flat kernels over n4 groups of four values (the caller pads to whole groups): (inputs..., out, n4).
 * mask: out = ref > 0 ? dy : 0 (ReLU's gradient); relu: out = max(x, 0); add, sub, mul: out = a op b;
 * abs: out = |x| (the sign bit cleared).
 */
export function flatKernel(name: string, inputs: number, value: (e: Emit, tmp: number) => void): WasmFunction {
  const { code, emit: e } = body();
  const OUT = inputs, N4 = inputs + 1, TMP = inputs + 2;
  repeat(e, N4, () => {
    e(w.get(OUT));
    value(e, TMP);
    e(w.store(0));
    for (let i = 0; i <= inputs; i++) e(w.get(i), w.i32(16), w.add, w.set(i));
  });
  return { name, params: new Array<number>(inputs + 2).fill(I32), locals: [V128], code };
}

export const load = (i: number): number[] => [...w.get(i), ...w.load(0)];

/**
 * Leaky ReLU and its gradient, with alpha (float32) at address `alphaAt` in memory:
 * leaky (x, out, n4, alphaAt): out = x > 0 ? x : alpha * x (NaN stays NaN);
 * leakyGrad (dy, x, out, n4, alphaAt): out = x > 0 ? dy : alpha * dy.
 */
function leakyKernel(gradient: boolean): WasmFunction {
  const { code, emit: e } = body();
  const inputs = gradient ? 2 : 1, OUT = inputs, N4 = inputs + 1, ALPHA_AT = inputs + 2, ALPHA = inputs + 3, V = inputs + 4;
  e(w.get(ALPHA_AT), w.load32Splat(0), w.set(ALPHA));
  repeat(e, N4, () => {
    const x = gradient ? 1 : 0;
    e(w.get(OUT), load(0), w.tee(V), w.get(V), w.get(ALPHA), w.f32x4Mul); // v, alpha * v (v: x or dy)
    e(load(x), w.zero, w.i32x4GtS, w.bitselect, w.store(0)); // x > 0 as integers: positive floats only (a NaN gives alpha * NaN)
    for (let i = 0; i <= inputs; i++) e(w.get(i), w.i32(16), w.add, w.set(i));
  });
  return { name: gradient ? 'leakyGrad' : 'leaky', params: new Array<number>(inputs + 3).fill(I32), locals: [V128, V128], code };
}

/**
 * The sum that closes a residual block, with the branch's scale (float32) at address `scaleAt`:
 * residual (x, branch, out, n4, scaleAt): out = x + scale * branch, the product rounded before the sum (a
 * multiply, then an add: the roundings of the two ops it replaces); residualRelu: then max(0, .), NaN kept.
 */
function residualKernel(relu: boolean): WasmFunction {
  const { code, emit: e } = body();
  const [X, BRANCH, OUT, N4, SCALE_AT, SCALE, TMP] = [0, 1, 2, 3, 4, 5, 6];
  e(w.get(SCALE_AT), w.load32Splat(0), w.set(SCALE));
  repeat(e, N4, () => {
    e(w.get(OUT), load(X), load(BRANCH), w.get(SCALE), w.f32x4Mul, w.f32x4Add);
    if (relu) relu4(e, TMP);
    e(w.store(0));
    for (const pointer of [X, BRANCH, OUT]) e(w.get(pointer), w.i32(16), w.add, w.set(pointer));
  });
  return { name: relu ? 'residualRelu' : 'residual', params: new Array<number>(5).fill(I32), locals: [V128, V128], code };
}

const flatKernels = [
  flatKernel('mask', 2, (e) => e(load(0), load(1), w.zero, w.i32x4GtS, w.and128)),
  flatKernel('relu', 1, (e, tmp) => { e(load(0)); relu4(e, tmp); }),
  flatKernel('add', 2, (e) => e(load(0), load(1), w.f32x4Add)),
  flatKernel('sub', 2, (e) => e(load(0), load(1), w.f32x4Sub)),
  flatKernel('mul', 2, (e) => e(load(0), load(1), w.f32x4Mul)),
  flatKernel('abs', 1, (e) => e(load(0), w.i32x4Const(0x7fffffff), w.and128)),
];

function planesFunctions(): WasmFunction[] {
  return [affineKernel('none'), affineKernel('relu'), affineKernel('prelu'), preluKernel(), sumsKernel('moments', 1), sumsKernel('bnSums', 2), sumsKernel('bnSumsMasked', 2, true), bnInputGradientKernel(), ...flatKernels, leakyKernel(false), leakyKernel(true), residualKernel(false), residualKernel(true)];
}

export function planesModuleBytes(): Uint8Array {
  return moduleBytes(planesFunctions());
}

// ---- running them ----

type Name = 'affine' | 'affineRelu' | 'affinePrelu' | 'prelu' | 'moments' | 'bnSums' | 'bnSumsMasked' | 'bnInputGradient' | 'mask' | 'relu' | 'add' | 'sub' | 'mul' | 'abs' | 'leaky' | 'leakyGrad' | 'residual' | 'residualRelu';
type Instance = PassModule<Name>;
const kernels = passModule<Name>(planesFunctions);

/** Whether the passes run in WebAssembly here (and are switched on). */
export function wasmPlanesAvailable(): boolean {
  return kernels() !== null;
}

const BUFFERS = 3;

/** Room for `tableBytes` of tables at 0, then BUFFERS chunk buffers (each padded to whole groups of 4). */
function layout(k: Instance, tableBytes: number): { buffer: (i: number) => number } {
  const tables = Math.ceil(tableBytes / 16) * 16, stride = regionBytes(CHUNK + 4);
  reserve(k, tables + BUFFERS * stride);
  return { buffer: (i) => tables + i * stride };
}

/**
 * The chunks of N*C planes of P values (of channels [c0, c1) only, image by image, when given): whole
 * planes, or pieces of one plane when a plane is larger than a chunk; `ch` is the channel of the chunk's
 * first plane. A plane is cut (or not) the same way whatever the range, so every plane's values and sums
 * come out the same.
 */
function forChunks(N: number, C: number, P: number, run: ChunkRun, c0 = 0, c1 = C): void {
  if (c0 === 0 && c1 === C) forPlanes(0, N * C, C, P, run);
  else for (let n = 0; n < N; n++) forPlanes(n * C + c0, c1 - c0, C, P, run);
}
type ChunkRun = (at: number, length: number, p: number, planes: number, ch: number) => void;

/** Planes [first, first + planes) of P values, in chunks (see forChunks). */
function forPlanes(first: number, planes: number, C: number, P: number, run: ChunkRun): void {
  const end = first + planes;
  if (P <= CHUNK) {
    const step = Math.floor(CHUNK / P);
    for (let q = first; q < end; q += step) run(q * P, Math.min(step, end - q) * P, P, Math.min(step, end - q), q % C);
    return;
  }
  for (let q = first; q < end; q++) {
    for (let i = 0; i < P; i += CHUNK) run(q * P + i, Math.min(CHUNK, P - i), Math.min(CHUNK, P - i), 1, q % C);
  }
}

/**
 * Runs a per-plane kernel over N*C planes of P values (channels [c0, c1)), chunk by chunk: `inputs[i]` is
 * copied into buffer i, the kernel gets the buffer addresses `pointers` and then (P, planes, C, ch,
 * ...tables), and `outputs` ([buffer, array]) are copied out.
 */
function overPlanes(
  k: Instance, kernel: Fn, inputs: Float32Array[], outputs: [number, Float32Array][], pointers: number[],
  N: number, C: number, P: number, tables: number[], buffer: (i: number) => number, c0 = 0, c1 = C,
): void {
  forChunks(N, C, P, (at, length, p, planes, ch) => {
    inputs.forEach((a, i) => k.heap.set(a.subarray(at, at + length), buffer(i) / 4));
    kernel(...pointers.map(buffer), p, planes, C, ch, ...tables);
    for (const [i, a] of outputs) a.set(k.heap.subarray(buffer(i) / 4, buffer(i) / 4 + length), at);
  }, c0, c1);
}

/** Writes float32 tables (one per array, C values each) at 0.., then float64 ones; returns their addresses. */
function writeTables(k: Instance, f32: ArrayLike<number>[], f64: number, C: number): number[] {
  const addresses: number[] = [];
  f32.forEach((t, i) => { k.heap.set(t, i * C); addresses.push(i * C * 4); });
  const at64 = Math.ceil((f32.length * C * 4) / 8) * 8;
  for (let i = 0; i < f64; i++) {
    k.heap64.fill(0, at64 / 8 + i * C, at64 / 8 + (i + 1) * C);
    addresses.push(at64 + i * C * 8);
  }
  return addresses;
}

const tableBytes = (f32: number, f64: number, C: number): number => Math.ceil((f32 * C * 4) / 8) * 8 + f64 * C * 8;

/*
 * Each pass below is a range function (over channels [c0, c1), or values [from, to) for flat ones) that
 * threads.ts runs on every thread when the arrays are shared, else here over all of them (runPass).
 */
type KernelPass = (k: Instance, a: PassArgs, from: number, to: number) => void;

/** Pass arguments: arrays x, y; ints N, C, P, activation (an index into AFFINE_ACTIVATIONS); tables scale, shift (and PReLU's slopes). */
const affineRange: KernelPass = (k, a, c0, c1) => {
  const [N, C, P, activation] = a.ints as [number, number, number, number];
  const { buffer } = layout(k, tableBytes(a.tables.length, 0, C));
  const tables = writeTables(k, a.tables, 0, C);
  const kernel = k[AFFINE_KERNEL[AFFINE_ACTIVATIONS[activation]!]];
  overPlanes(k, kernel, [a.arrays[0]!], [[0, a.arrays[1]!]], [0, 0], N, C, P, tables, buffer, c0, c1);
};

/** Arrays x; ints N, C, P; tables shift; sums s1, s2. */
const momentsRange: KernelPass = (k, a, c0, c1) => {
  const [N, C, P] = a.ints as [number, number, number];
  const { buffer } = layout(k, tableBytes(1, 2, C));
  const tables = writeTables(k, a.tables, 2, C);
  overPlanes(k, k.moments, [a.arrays[0]!], [], [0], N, C, P, tables, buffer, c0, c1);
  readSums(k, tables.slice(1), a.sums, c0, c1);
};

/** Arrays dy, x (then reluOf, masked); ints N, C, P; tables mean; sums sum(dy), sum(dy * (x - mean)). */
const bnSumsRange: KernelPass = (k, a, c0, c1) => {
  const [N, C, P] = a.ints as [number, number, number];
  const [dy, x, reluOf, masked] = a.arrays as [Float32Array, Float32Array, Float32Array?, Float32Array?];
  const { buffer } = layout(k, tableBytes(1, 2, C));
  const tables = writeTables(k, a.tables, 2, C);
  const b0 = buffer(0), b1 = buffer(1), b2 = buffer(2);
  forChunks(N, C, P, (at, length, p, planes, ch) => {
    k.heap.set(dy.subarray(at, at + length), b0 / 4);
    if (reluOf) {
      k.heap.set(reluOf.subarray(at, at + length), b2 / 4);
      k.mask(b0, b2, b0, Math.ceil(length / 4));
      masked!.set(k.heap.subarray(b0 / 4, b0 / 4 + length), at);
    }
    k.heap.set(x.subarray(at, at + length), b1 / 4);
    k.bnSums(b0, b1, p, planes, C, ch, ...tables);
  }, c0, c1);
  readSums(k, tables.slice(1), a.sums, c0, c1);
};

/** Arrays dy, x, dx; ints N, C, P; tables a, mean, b, d. */
const bnInputGradientRange: KernelPass = (k, a, c0, c1) => {
  const [N, C, P] = a.ints as [number, number, number];
  const { buffer } = layout(k, tableBytes(4, 0, C));
  const tables = writeTables(k, a.tables, 0, C);
  overPlanes(k, k.bnInputGradient, a.arrays.slice(0, 2), [[2, a.arrays[2]!]], [0, 1, 2], N, C, P, tables, buffer, c0, c1);
};

/** Floats of each array a group of channels of the fused batchnorm passes stages (two arrays at most: 512 kB, in the L2 cache). */
const GROUP_FLOATS = 65536;

/**
 * The fused passes' groups of channels [cg, cg + g) within [c0, c1): as many as fit GROUP_FLOATS floats of
 * every image's planes (one at least). Returns the largest group's floats, for the module's buffers.
 */
function channelGroups(N: number, P: number, c0: number, c1: number): { groups: [number, number][]; floats: number } {
  const size = Math.max(1, Math.min(c1 - c0, Math.floor(GROUP_FLOATS / (N * P)))), groups: [number, number][] = [];
  for (let cg = c0; cg < c1; cg += size) groups.push([cg, Math.min(size, c1 - cg)]);
  return { groups, floats: size * N * P };
}

/** Channels [cg, cg + g) of every image of an NCHW array, to heap[at..] image after image, or back from there. */
function stageGroup(k: Instance, array: Float32Array, at: number, N: number, C: number, P: number, cg: number, g: number, toArray: boolean): void {
  const span = g * P;
  for (let n = 0, i = cg * P, h = at / 4; n < N; n++, i += C * P, h += span) {
    if (toArray) array.set(k.heap.subarray(h, h + span), i);
    else k.heap.set(array.subarray(i, i + span), h);
  }
}

/**
 * A sums kernel (moments, bnSums) over a group's staged planes (pointers at their start, tables at the
 * group's first channel), a plane over CHUNK values in the pieces forPlanes cuts it into: the sums of a
 * pass over chunks, bit for bit.
 */
function sumGroup(kernel: Fn, pointers: number[], P: number, planes: number, g: number, tables: number[]): void {
  if (P <= CHUNK) return kernel(...pointers, P, planes, g, 0, ...tables);
  for (let q = 0; q < planes; q++) {
    for (let i = 0; i < P; i += CHUNK) kernel(...pointers.map((at) => at + (q * P + i) * 4), Math.min(CHUNK, P - i), 1, g, q % g, ...tables);
  }
}

/** Views of the module's C-long tables at a byte address: float32 ones, and float64 ones (the sums). */
const tableViews = (k: Instance, C: number): { f32: (at: number) => Float32Array; f64: (at: number) => Float64Array } => ({
  f32: (at) => k.heap.subarray(at / 4, at / 4 + C),
  f64: (at) => k.heap64.subarray(at / 8, at / 8 + C),
});

/**
 * Batchnorm's whole backward in one pass. Arrays dy, x, dx; ints N, C, P, training, relu; tables mean, gain,
 * invstd, shift (the forward's y = x*gain + shift); sums sum(dy), sum(dy * (x - mean)) (dy masked).
 * A group of channels at a time, their planes of every image are staged in the module once: dy is masked
 * there by the ReLU (its output recomputed from x) as it is summed (bnSumsMasked), and turned into dx while
 * still in the cache (training: batchNormCoefficients' b and d from the group's sums; eval: dx = gain * dy). The two
 * passes it replaces staged dy and x twice, staged the forward output, and wrote and re-read the masked dy.
 * Sums and values are those of the two passes, bit for bit.
 */
const bnBackwardRange: KernelPass = (k, a, c0, c1) => {
  const [N, C, P, training, relu] = a.ints as [number, number, number, number, number];
  const [dy, x, dx] = a.arrays as [Float32Array, Float32Array, Float32Array];
  const [mean, gain, invstd, shift] = a.tables;
  const { groups, floats } = channelGroups(N, P, c0, c1), region = regionBytes(floats + 4);
  const DY = Math.ceil(tableBytes(6, 2, C) / 16) * 16, X = DY + region;
  reserve(k, X + region);
  const zeros = new Float32Array(C);
  const [meanAt, gainAt, invstdAt, shiftAt, bAt, dAt, sumDyAt, sumDyXcAt] = writeTables(k, [mean!, gain!, invstd!, shift!, zeros, zeros], 2, C) as Tuple8;
  const { f32, f64 } = tableViews(k, C);
  const sumDyXhat = new Float32Array(C);
  for (const [cg, g] of groups) {
    const planes = N * g, [gain4, mean4] = [gainAt + 4 * cg, meanAt + 4 * cg];
    stageGroup(k, dy, DY, N, C, P, cg, g, false);
    stageGroup(k, x, X, N, C, P, cg, g, false);
    const sums = [mean4, sumDyAt + 8 * cg, sumDyXcAt + 8 * cg];
    if (relu) sumGroup(k.bnSumsMasked, [DY, X], P, planes, g, [...sums, gain4, shiftAt + 4 * cg]);
    else sumGroup(k.bnSums, [DY, X], P, planes, g, sums);
    if (training) {
      batchNormCoefficients(f32(gainAt), f32(invstdAt), f64(sumDyAt), f64(sumDyXcAt), N * P, sumDyXhat, f32(bAt), f32(dAt), cg, cg + g);
      k.bnInputGradient(DY, X, DY, P, planes, g, 0, gain4, mean4, bAt + 4 * cg, dAt + 4 * cg);
    } else {
      k.affine(DY, DY, P, planes, g, 0, gain4, bAt + 4 * cg); // b is zeros here
    }
    stageGroup(k, dx, DY, N, C, P, cg, g, true);
  }
  readSums(k, [sumDyAt, sumDyXcAt], a.sums, c0, c1);
};

/**
 * Batchnorm's forward in training, in one pass. Arrays x, y; ints N, C, P, relu, eps (float64Words); tables
 * first (each channel's first value), gamma, beta; sums s1 = sum(x - first), s2 = sum((x - first)^2).
 * A group of channels at a time, their planes of every image are staged in the module once, summed, and
 * normalized there with the statistics the sums give (batchNormMoments, batchNormNormalization), then copied
 * out: the two passes it replaces (moments, then the scale and shift) staged x twice. Sums and values are
 * theirs, bit for bit.
 */
const bnForwardRange: KernelPass = (k, a, c0, c1) => {
  const [N, C, P, relu] = a.ints as [number, number, number, number], [eps] = fromFloat64Words(a.ints.slice(4)) as [number];
  const [x, y] = a.arrays as [Float32Array, Float32Array];
  const [first, gamma, beta] = a.tables as [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>];
  const { groups, floats } = channelGroups(N, P, c0, c1), X = Math.ceil(tableBytes(5, 2, C) / 16) * 16;
  reserve(k, X + regionBytes(floats + 4));
  const [firstAt, gainAt, biasAt, s1At, s2At] = writeTables(k, [first, new Float32Array(C), new Float32Array(C)], 2, C) as Tuple5;
  const { f32, f64 } = tableViews(k, C);
  const stats = { mean: new Float64Array(C), variance: new Float64Array(C), invstd: new Float32Array(C) };
  for (const [cg, g] of groups) {
    stageGroup(k, x, X, N, C, P, cg, g, false);
    sumGroup(k.moments, [X], P, N * g, g, [firstAt + 4 * cg, s1At + 8 * cg, s2At + 8 * cg]);
    batchNormMoments(f64(s1At), f64(s2At), f32(firstAt), N * P, stats.mean, stats.variance, cg, cg + g);
    batchNormNormalization(stats.mean, stats.variance, eps, gamma, beta, stats.invstd, f32(gainAt), f32(biasAt), cg, cg + g);
    k[relu ? 'affineRelu' : 'affine'](X, X, P, N * g, g, 0, gainAt + 4 * cg, biasAt + 4 * cg);
    stageGroup(k, y, X, N, C, P, cg, g, true);
  }
  readSums(k, [s1At, s2At], a.sums, c0, c1);
};

/**
 * Batchnorm's batch statistics of channels [from, to) from their shifted sums (see bnForwardRange): mean and
 * biased variance, in float64. Shifting by a value of the data keeps var = E[(x-s)^2] - E[x-s]^2 well
 * conditioned (s is within a few deviations of the mean), where E[x^2] - E[x]^2 would cancel
 * catastrophically for a large mean.
 */
export function batchNormMoments(
  s1: ArrayLike<number>, s2: ArrayLike<number>, first: ArrayLike<number>, M: number, mean: Float64Array, variance: Float64Array, from = 0, to = s1.length,
): void {
  for (let c = from; c < to; c++) {
    const m1 = s1[c]! / M;
    mean[c] = first[c]! + m1;
    variance[c] = Math.max(0, s2[c]! / M - m1 * m1);
  }
}

/**
 * Batchnorm as y = x*gain + bias, channels [from, to), in the arrays' precision: invstd = 1/sqrt(variance + eps),
 * gain = gamma*invstd, bias = beta - mean*gain (gamma 1 and beta 0 when null).
 */
export function batchNormNormalization(
  mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number, gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null,
  invstd: TypedArrayLike, gain: TypedArrayLike, bias: TypedArrayLike, from = 0, to = mean.length,
): void {
  for (let c = from; c < to; c++) {
    invstd[c] = 1 / Math.sqrt(variance[c]! + eps);
    gain[c] = (gamma ? gamma[c]! : 1) * invstd[c]!;
    bias[c] = (beta ? beta[c]! : 0) - mean[c]! * gain[c]!;
  }
}

/**
 * Batchnorm's training-mode input-gradient coefficients for channels [from, to) (see batchnorm.ts), stored in
 * the arrays' precision: sumDyXhat = sum(dy * (x - mean)) * invstd, b = gain * invstd * sumDyXhat / M,
 * d = gain * sum(dy) / M. Here so that the fused pass computes them as batchnorm.ts does, on any thread.
 */
export function batchNormCoefficients(
  gain: ArrayLike<number>, invstd: ArrayLike<number>, sumDy: ArrayLike<number>, sumDyXc: ArrayLike<number>, M: number,
  sumDyXhat: TypedArrayLike, b: TypedArrayLike, d: TypedArrayLike, from = 0, to = gain.length,
): void {
  for (let c = from; c < to; c++) {
    sumDyXhat[c] = sumDyXc[c]! * invstd[c]!;
    b[c] = (gain[c]! * invstd[c]! * sumDyXhat[c]!) / M;
    d[c] = (gain[c]! * sumDy[c]!) / M;
  }
}
type TypedArrayLike = { [i: number]: number; length: number };
type Tuple8 = [number, number, number, number, number, number, number, number];
type Tuple5 = [number, number, number, number, number];

const FLAT = ['mask', 'relu', 'add', 'sub', 'mul', 'abs', 'leaky', 'leakyGrad', 'residual', 'residualRelu'] as const;

/** Arrays inputs..., out; ints the kernel (an index into FLAT), then its scalar if any (float64Words). Values [from, to). */
const flatRange: KernelPass = (k, a, from, to) => {
  const scalar = a.ints.length > 1 ? fromFloat64Words(a.ints.slice(1))[0] : undefined;
  overValues(k, k[FLAT[a.ints[0]!]!], a.arrays.slice(0, -1), a.arrays[a.arrays.length - 1]!, scalar, from, to);
};

/** Float64 tables at `addresses` (C values each), channels [c0, c1), into sums. */
function readSums(k: Instance, addresses: number[], sums: Float64Array[], c0: number, c1: number): void {
  sums.forEach((s, i) => s.set(k.heap64.subarray(addresses[i]! / 8 + c0, addresses[i]! / 8 + c1), c0));
}

registerPass(PASS.AFFINE, kernels, affineRange);
registerPass(PASS.MOMENTS, kernels, momentsRange);
registerPass(PASS.BN_SUMS, kernels, bnSumsRange);
registerPass(PASS.BN_INPUT_GRADIENT, kernels, bnInputGradientRange);
registerPass(PASS.BN_BACKWARD, kernels, bnBackwardRange);
registerPass(PASS.BN_FORWARD, kernels, bnForwardRange);
registerPass(PASS.FLAT, kernels, flatRange);

const planePass = (arrays: ArrayLike<number>[], ints: number[], tables: ArrayLike<number>[], C: number): Omit<PassArgs, 'sums'> =>
  ({ arrays: arrays as Float32Array[], ints, tables, tableLength: C });

/**
 * y = x * scale[c] + shift[c] over [N, C, P], then `activation`: true for max(0, .), per-channel slopes for
 * PReLU (v > 0 ? v : slope[c] * v, as preluPlanes), false for none. False where the kernels do not run.
 */
export function affinePlanes(
  x: ArrayLike<number>, y: ArrayLike<number>, N: number, C: number, P: number, scale: ArrayLike<number>, shift: ArrayLike<number>,
  activation: boolean | ArrayLike<number>,
): boolean {
  if (!kernels() || !isF32(x, y)) return false;
  const slopes = typeof activation === 'boolean' ? null : activation;
  const tables = slopes ? [scale, shift, slopes] : [scale, shift];
  const kind = AFFINE_ACTIVATIONS.indexOf(slopes ? 'prelu' : activation ? 'relu' : 'none');
  runPass(PASS.AFFINE, planePass([x, y], [N, C, P, kind], tables, C), 0, C, 1, N * C * P);
  return true;
}

const EQUAL_CHANNELS = 64;

/**
 * y = x * scale + shift over all n values (a scalar add, subtract or multiply). The affine pass's threads
 * split channels, so one plane of n values would run on one thread: it runs as the per-channel map of
 * [1, C, n / C] with C equal channels, C the largest divisor of n up to EQUAL_CHANNELS (the same bits).
 */
export function affineValues(x: ArrayLike<number>, y: ArrayLike<number>, scale: number, shift: number): boolean {
  const n = x.length;
  let C = Math.max(1, Math.min(EQUAL_CHANNELS, n));
  while (C > 1 && n % C !== 0) C--;
  return affinePlanes(x, y, 1, C, n / C, new Float32Array(C).fill(scale), new Float32Array(C).fill(shift), false);
}

/** y = x > 0 ? x : alpha[c] * x over [N, C, P] (PReLU; y may be x); false where the kernels do not run. */
export function preluPlanes(x: ArrayLike<number>, y: ArrayLike<number>, N: number, C: number, P: number, alpha: ArrayLike<number>): boolean {
  const k = kernels();
  if (!k || !isF32(x, y)) return false;
  const { buffer } = layout(k, tableBytes(1, 0, C));
  const tables = writeTables(k, [alpha], 0, C);
  overPlanes(k, k.prelu, [x as Float32Array], [[0, y as Float32Array]], [0, 0], N, C, P, tables, buffer);
  return true;
}

/** Per channel, float64 sums of x - shift[c] and of its square over [N, C, P]; null where the kernels do not run. */
export function shiftedSums(x: ArrayLike<number>, N: number, C: number, P: number, shift: ArrayLike<number>): { s1: Float64Array; s2: Float64Array } | null {
  if (!kernels() || !isF32(x)) return null;
  const [s1, s2] = runPass(PASS.MOMENTS, planePass([x], [N, C, P], [shift], C), 2, C, 1, N * C * P) as [Float64Array, Float64Array];
  return { s1, s2 };
}

/**
 * Batchnorm's backward sums per channel: sum(dy) and sum(dy * (x - mean[c])), in float64. With `reluOf`
 * (the forward output), dy is first masked where that output is not > 0, and the masked dy written to
 * `masked`. Null where the kernels do not run.
 */
export function batchNormSums(
  dy: ArrayLike<number>, x: ArrayLike<number>, N: number, C: number, P: number, mean: ArrayLike<number>,
  reluOf: ArrayLike<number> | null, masked: ArrayLike<number> | null,
): { sumDy: Float64Array; sumDyXc: Float64Array } | null {
  if (!kernels() || !isF32(dy, x) || (reluOf && !isF32(reluOf, masked!))) return null;
  const arrays = reluOf ? [dy, x, reluOf, masked!] : [dy, x];
  const [sumDy, sumDyXc] = runPass(PASS.BN_SUMS, planePass(arrays, [N, C, P], [mean], C), 2, C, 1, N * C * P) as [Float64Array, Float64Array];
  return { sumDy, sumDyXc };
}

/**
 * Batchnorm's forward in training in one pass (bnForwardRange): y = x*gain + bias with the batch statistics
 * (then max(0, .) when relu), and per channel float64 s1 = sum(x - first[c]), s2 = sum((x - first[c])^2), from
 * which the caller gets the same statistics (batchNormMoments). Gamma and beta as arrays of C (ones, zeros
 * for none). Null where the kernels do not run.
 */
export function batchNormForward(
  x: ArrayLike<number>, y: ArrayLike<number>, N: number, C: number, P: number, relu: boolean,
  first: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, eps: number,
): { s1: Float64Array; s2: Float64Array } | null {
  if (!kernels() || !isF32(x, y)) return null;
  const ints = [N, C, P, relu ? 1 : 0, ...float64Words(eps)];
  const [s1, s2] = runPass(PASS.BN_FORWARD, planePass([x, y], ints, [first, gamma, beta], C), 2, C, 1, N * C * P) as [Float64Array, Float64Array];
  return { s1, s2 };
}

/**
 * Batchnorm's backward in one pass (bnBackwardRange): dx, and per channel float64 sum(dy) and
 * sum(dy * (x - mean[c])), with relu dy first masked where the forward output max(0, x*gain + shift) is not > 0. Training:
 * dx = gain*dy - b*(x - mean) - d (batchNormCoefficients); eval: dx = gain * dy. Null where the kernels do not run.
 */
export function batchNormBackward(
  dy: ArrayLike<number>, x: ArrayLike<number>, relu: boolean, dx: ArrayLike<number>, N: number, C: number, P: number,
  mean: ArrayLike<number>, gain: ArrayLike<number>, invstd: ArrayLike<number>, shift: ArrayLike<number>, training: boolean,
): { sumDy: Float64Array; sumDyXc: Float64Array } | null {
  if (!kernels() || !isF32(dy, x, dx)) return null;
  const ints = [N, C, P, training ? 1 : 0, relu ? 1 : 0];
  const [sumDy, sumDyXc] = runPass(PASS.BN_BACKWARD, planePass([dy, x, dx], ints, [mean, gain, invstd, shift], C), 2, C, 1, N * C * P) as [Float64Array, Float64Array];
  return { sumDy, sumDyXc };
}

/**
 * dx = a[c] * dy - b[c] * (x - mean[c]) - d[c] over [N, C, P] (dx may be dy); false where the kernels do not run.
 * batchNorm takes the fused pass (batchNormBackward); this is its two-pass counterpart, which the tests hold it to.
 */
export function batchNormInputGradient(
  dy: ArrayLike<number>, x: ArrayLike<number>, dx: ArrayLike<number>, N: number, C: number, P: number,
  a: ArrayLike<number>, mean: ArrayLike<number>, b: ArrayLike<number>, d: ArrayLike<number>,
): boolean {
  if (!kernels() || !isF32(dy, x, dx)) return false;
  runPass(PASS.BN_INPUT_GRADIENT, planePass([dy, x, dx], [N, C, P], [a, mean, b, d], C), 0, C, 1, N * C * P);
  return true;
}

/**
 * A flat kernel over `inputs` (copied in by chunk), values [from, to), its result copied out into `out`
 * (which may be an input); `scalar`, when given, is stored at address 0 and its address passed last.
 */
function overValues(k: Instance, kernel: Fn, inputs: Float32Array[], out: Float32Array, scalar?: number, from = 0, to = out.length): void {
  const { buffer } = layout(k, 16);
  if (scalar !== undefined) k.heap[0] = scalar;
  for (let at = from; at < to; at += CHUNK) {
    const length = Math.min(CHUNK, to - at);
    inputs.forEach((a, i) => k.heap.set(a.subarray(at, at + length), buffer(i) / 4));
    kernel(...inputs.map((_, i) => buffer(i)), buffer(inputs.length), Math.ceil(length / 4), ...(scalar !== undefined ? [0] : []));
    out.set(k.heap.subarray(buffer(inputs.length) / 4, buffer(inputs.length) / 4 + length), at);
  }
}

/** A FLAT kernel over same-length arrays (the last one the output), with its scalar if any, on all threads where worth it. */
function flatPass(kernel: (typeof FLAT)[number], arrays: ArrayLike<number>[], scalar?: number): void {
  const n = arrays[0]!.length, ints = [FLAT.indexOf(kernel), ...(scalar === undefined ? [] : float64Words(scalar))];
  runPass(PASS.FLAT, { arrays: arrays as Float32Array[], ints, tables: [], tableLength: 0 }, 0, n, 16, n);
}

/** out = ref > 0 ? dy : 0 (ReLU's gradient; out may be dy); false where the kernels do not run. */
export function maskPositive(dy: ArrayLike<number>, ref: ArrayLike<number>, out: ArrayLike<number>): boolean {
  if (!kernels() || !isF32(dy, ref, out)) return false;
  flatPass('mask', [dy, ref, out]);
  return true;
}

/** out = max(x, 0) (out may be x; NaN kept); false where the kernels do not run. */
export function reluValues(x: ArrayLike<number>, out: ArrayLike<number> = x): boolean {
  if (!kernels() || !isF32(x, out)) return false;
  flatPass('relu', [x, out]);
  return true;
}

/** out = a op b for same-length arrays (out may be a or b); false where the kernels do not run. */
export function binaryValues(name: 'add' | 'sub' | 'mul', a: ArrayLike<number>, b: ArrayLike<number>, out: ArrayLike<number>): boolean {
  if (!kernels() || !isF32(a, b, out)) return false;
  flatPass(name, [a, b, out]);
  return true;
}

/** out = |x|; false where the kernels do not run. */
export function absValues(x: ArrayLike<number>, out: ArrayLike<number>): boolean {
  if (!kernels() || !isF32(x, out)) return false;
  flatPass('abs', [x, out]);
  return true;
}

/** Leaky ReLU (out = x > 0 ? x : alpha x), or with dy its gradient (out = x > 0 ? dy : alpha dy); false where the kernels do not run. */
export function leakyValues(x: ArrayLike<number>, alpha: number, out: ArrayLike<number>, dy?: ArrayLike<number>): boolean {
  if (!kernels() || !isF32(x, out, ...(dy ? [dy] : []))) return false;
  if (dy) flatPass('leakyGrad', [dy, x, out], alpha);
  else flatPass('leaky', [x, out], alpha);
  return true;
}

/** out = x + scale * branch (the product rounded first), then max(0, .) when relu; false where the kernels do not run. */
export function residualValues(x: ArrayLike<number>, branch: ArrayLike<number>, scale: number, relu: boolean, out: ArrayLike<number>): boolean {
  if (!kernels() || !isF32(x, branch, out)) return false;
  flatPass(relu ? 'residualRelu' : 'residual', [x, branch, out], scale);
  return true;
}
