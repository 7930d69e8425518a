/**
 * WebAssembly SIMD kernels for the per-channel and elementwise passes around the convolutions: batchnorm's
 * statistics, normalization and gradient, the inference scale-and-shift and conv bias, ReLU and leaky ReLU
 * and their gradients, elementwise add/sub/mul/abs (and so gradient accumulation), and the per-plane passes
 * of depthwise convolution and max pooling. JavaScript runs these loops at 1.2-2.5 ns a value on typed arrays (measured here:
 * no vectorization, a float64 round trip per value); WebAssembly SIMD takes four float32 values an
 * instruction. The data lives in JavaScript arrays, so each pass copies chunks into the module's memory
 * (native memcpy, ~0.1-0.3 ns a value), runs a kernel on them, and copies the result out. Chunks are whole
 * planes of P values where the kernel is per channel, and stay small enough to live in the L2 cache.
 *
 * Values are float32 in the kernels (per-channel constants too); sums are accumulated in float64. The
 * TypeScript loops in the op files remain the path for float64 tensors and where WebAssembly SIMD is
 * missing; both agree to float32 rounding (tested). NaN passes through ReLU with either sign bit.
 */
import { body, F32, F64, I32, instantiate, moduleBytes, repeat, reserveBytes, V128, w, whileAtLeast, type Emit, type WasmFunction, type WasmMemory } from './wasm_writer.js';

// ---- kernels ----

/** Lanes 2-3 of the f32x4 on the stack moved to lanes 0-1 (to be promoted to float64 next). */
const highToLow = [...w.zero, ...w.shuffle([2, 3, 4, 5])];

/** v (on the stack) with its lanes that are not > 0 zeroed, NaN kept (as integers, x > 0 iff float > 0). */
function relu4(e: Emit, tmp: number): void {
  e(w.tee(tmp), w.get(tmp), w.zero, w.i32x4GtS, w.get(tmp), w.get(tmp), w.f32x4Ne, w.or128, w.and128);
}
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

/** dst = src * a[c] + b[c] (and ReLU). */
function affineKernel(relu: boolean): WasmFunction {
  const A = 0, B = 1, A1 = 2, B1 = 3; // extra locals: v128 a, b; f32 a, b
  return planeKernel({
    name: relu ? 'affineRelu' : 'affine', pointers: 2, tables: 2, locals: [V128, V128, F32, F32],
    perPlane: (e, L) => {
      f32OfChannel(e, L, 0); e(w.tee(L.extra(A1)), w.f32x4Splat, w.set(L.extra(A)));
      f32OfChannel(e, L, 1); e(w.tee(L.extra(B1)), w.f32x4Splat, w.set(L.extra(B)));
    },
    vector: (e, L) => {
      e(w.get(L.ptr(1)), w.get(L.ptr(0)), w.load(0), w.get(L.extra(A)), w.f32x4Mul, w.get(L.extra(B)), w.f32x4Add);
      if (relu) relu4(e, L.tmp4);
      e(w.store(0));
    },
    scalar: (e, L) => {
      e(w.get(L.ptr(1)), w.get(L.ptr(0)), w.f32Load(0), w.get(L.extra(A1)), w.f32Mul, w.get(L.extra(B1)), w.f32Add);
      if (relu) relu1(e, L.tmp1);
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
 */
function sumsKernel(name: string, pointers: 1 | 2): WasmFunction {
  const S = 0, U = 1, V = 2, SUM_U_LO = 3, SUM_U_HI = 4, SUM_UV_LO = 5, SUM_UV_HI = 6, S1 = 7, U1 = 8, SU = 9, SUV = 10;
  const locals = [V128, V128, V128, V128, V128, V128, V128, F32, F32, F64, F64];
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
    name, pointers, tables: 3, locals,
    perPlane: (e, L) => {
      f32OfChannel(e, L, 0); e(w.tee(L.extra(S1)), w.f32x4Splat, w.set(L.extra(S)));
      for (const acc of [SUM_U_LO, SUM_U_HI, SUM_UV_LO, SUM_UV_HI]) e(w.zero, w.set(L.extra(acc)));
      e(w.f64Const0, w.set(L.extra(SU)), w.f64Const0, w.set(L.extra(SUV)));
    },
    vector: (e, L) => {
      const v = pointers === 1 ? 0 : 1; // v = (pointer v) - shift
      e(w.get(L.ptr(v)), w.load(0), w.get(L.extra(S)), w.f32x4Sub, w.set(L.extra(V)));
      if (pointers === 1) e(w.get(L.extra(V)), w.set(L.extra(U)));
      else e(w.get(L.ptr(0)), w.load(0), w.set(L.extra(U)));
      accumulate(e, L, SUM_U_LO, SUM_U_HI, () => e(w.get(L.extra(U))));
      accumulate(e, L, SUM_UV_LO, SUM_UV_HI, () => e(w.get(L.extra(U)), w.get(L.extra(V)), w.f32x4Mul));
    },
    scalar: (e, L) => {
      const v = pointers === 1 ? 0 : 1;
      e(w.get(L.ptr(v)), w.f32Load(0), w.get(L.extra(S1)), w.f32Sub, w.set(L.tmp1));
      if (pointers === 1) e(w.get(L.tmp1), w.set(L.extra(U1)));
      else e(w.get(L.ptr(0)), w.f32Load(0), w.set(L.extra(U1)));
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
function flatKernel(name: string, inputs: number, value: (e: Emit, tmp: number) => void): WasmFunction {
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

const load = (i: number): number[] => [...w.get(i), ...w.load(0)];

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

const flatKernels = [
  flatKernel('mask', 2, (e) => e(load(0), load(1), w.zero, w.i32x4GtS, w.and128)),
  flatKernel('relu', 1, (e, tmp) => { e(load(0)); relu4(e, tmp); }),
  flatKernel('add', 2, (e) => e(load(0), load(1), w.f32x4Add)),
  flatKernel('sub', 2, (e) => e(load(0), load(1), w.f32x4Sub)),
  flatKernel('mul', 2, (e) => e(load(0), load(1), w.f32x4Mul)),
  flatKernel('abs', 1, (e) => e(load(0), w.i32x4Const(0x7fffffff), w.and128)),
];

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

/**
 * Depthwise convolution of one image: (rows, n, w, x, y, sw). Each of the n rows of the table (six int32:
 * y row start, x row start, weight index, first ow, end ow, input column shift; conv.ts's tapRows) adds
 * w[weight] * x[x row + ow*sw + shift] onto y[y row + ow] for ow in [first, end): four at a time when
 * sw is 1, else one by one.
 */
function depthwiseKernel(): WasmFunction {
  const { code, emit: e } = body();
  const [ROWS, N, W, X, Y, SW] = [0, 1, 2, 3, 4, 5];
  const [YP, XP, COUNT, STEP, WV] = [6, 7, 8, 9, 10]; // i32 x4, then f32
  const WV4 = 11; // v128
  const field = (i: number): number[] => [...w.get(ROWS), ...w.i32Load(4 * i)];
  e(w.get(SW), w.i32(4), w.mul, w.set(STEP));
  repeat(e, N, () => {
    e(w.get(W), field(2), w.i32(4), w.mul, w.add, w.f32Load(0), w.tee(WV), w.f32x4Splat, w.set(WV4));
    e(w.get(Y), field(0), field(3), w.add, w.i32(4), w.mul, w.add, w.set(YP));
    e(w.get(X), field(1), field(3), w.get(SW), w.mul, w.add, field(5), w.add, w.i32(4), w.mul, w.add, w.set(XP));
    e(field(4), field(3), w.sub, w.set(COUNT));
    e(w.get(SW), w.i32(1), w.eq, w.if);
    whileAtLeast(e, COUNT, 4, () => {
      e(w.get(YP), w.get(YP), w.load(0), w.get(WV4), w.get(XP), w.load(0), w.f32x4Mul, w.f32x4Add, w.store(0));
      e(w.get(YP), w.i32(16), w.add, w.set(YP), w.get(XP), w.i32(16), w.add, w.set(XP));
    });
    e(w.end);
    repeat(e, COUNT, () => {
      e(w.get(YP), w.get(YP), w.f32Load(0), w.get(WV), w.get(XP), w.f32Load(0), w.f32Mul, w.f32Add, w.f32Store(0));
      e(w.get(YP), w.i32(4), w.add, w.set(YP), w.get(XP), w.get(STEP), w.add, w.set(XP));
    });
    e(w.get(ROWS), w.i32(24), w.add, w.set(ROWS));
  });
  return { name: 'depthwise', params: new Array<number>(6).fill(I32), locals: [I32, I32, I32, I32, F32, V128], code };
}

/**
 * Max pooling of `planes` planes: (src, dst, arg, planes, H, W, OH, OW, h0, h1, w0, w1, base). The window of
 * output (oh, ow) is rows [h0[oh], h1[oh]) x columns [w0[ow], w1[ow]) (int32 tables); dst gets its maximum
 * and arg the flat input index of the first maximum, counted from `base` (the first plane's index in the
 * whole input), or of the window's last NaN, as in the TypeScript loop.
 */
function maxPoolKernel(): WasmFunction {
  const { code, emit: e } = body();
  const [SRC, DST, ARG, PLANES, H, W, OH, OW, H0, H1, W0, W1, BASE] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; // parameters
  const [PLANE, OY, OX, ROWS_LEFT, OUTS_LEFT, ROW, ROW_END, COL, COL_END, AT, IDX, PLANE_BYTES] = [13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24];
  const [BEST, V] = [25, 26]; // f32
  const tab = (table: number, i: number): number[] => [...w.get(table), ...w.get(i), ...w.i32(4), ...w.mul, ...w.add, ...w.i32Load(0)];
  e(w.get(H), w.get(W), w.mul, w.i32(4), w.mul, w.set(PLANE_BYTES), w.get(SRC), w.set(PLANE));
  repeat(e, PLANES, () => {
    e(w.i32(0), w.set(OY), w.get(OH), w.set(ROWS_LEFT));
    repeat(e, ROWS_LEFT, () => {
      e(w.i32(0), w.set(OX), w.get(OW), w.set(OUTS_LEFT));
      repeat(e, OUTS_LEFT, () => {
        e(tab(H0, OY), w.set(ROW), tab(H1, OY), w.set(ROW_END), tab(W1, OX), w.set(COL_END), w.i32(-1), w.set(AT), w.f32Const0, w.set(BEST));
        e(w.block, w.loop, w.get(ROW), w.get(ROW_END), w.eq, w.brIf(1));
        e(tab(W0, OX), w.set(COL));
        e(w.block, w.loop, w.get(COL), w.get(COL_END), w.eq, w.brIf(1));
        e(w.get(ROW), w.get(W), w.mul, w.get(COL), w.add, w.set(IDX));
        e(w.get(PLANE), w.get(IDX), w.i32(4), w.mul, w.add, w.f32Load(0), w.set(V));
        // take v when it beats the best so far, is the window's first value, or is NaN
        e(w.get(V), w.get(BEST), w.f32Gt, w.get(AT), w.i32(0), w.ltS, w.i32Or, w.get(V), w.get(V), w.f32Ne, w.i32Or, w.if);
        e(w.get(V), w.set(BEST), w.get(IDX), w.set(AT), w.end);
        e(w.get(COL), w.i32(1), w.add, w.set(COL), w.br(0), w.end, w.end);
        e(w.get(ROW), w.i32(1), w.add, w.set(ROW), w.br(0), w.end, w.end);
        e(w.get(DST), w.get(BEST), w.f32Store(0), w.get(ARG), w.get(BASE), w.get(AT), w.add, w.i32Store(0));
        e(w.get(DST), w.i32(4), w.add, w.set(DST), w.get(ARG), w.i32(4), w.add, w.set(ARG), w.get(OX), w.i32(1), w.add, w.set(OX));
      });
      e(w.get(OY), w.i32(1), w.add, w.set(OY));
    });
    e(w.get(PLANE), w.get(PLANE_BYTES), w.add, w.set(PLANE), w.get(BASE), w.get(H), w.get(W), w.mul, w.add, w.set(BASE));
  });
  return { name: 'maxPool', params: new Array<number>(13).fill(I32), locals: [...new Array<number>(12).fill(I32), F32, F32], code };
}

/**
 * L2 pooling, one value at a time in float64 as pool.ts computes it (so both paths give the same bits),
 * over `planes` planes with the window tables of maxPoolKernel:
 * l2Pool (x, y, planes, H, W, OH, OW, h0, h1, w0, w1): y = sqrt(sum of x² over the window), the sum in
 * float64 rounded to float32 before the square root;
 * l2PoolGrad (dy, x, y, dx, planes, H, W, OH, OW, h0, h1, w0, w1): dx += (dy / y) * x over each window
 * (nothing where y or dy is 0), dx zeroed by the caller.
 */
function l2PoolKernel(grad: boolean): WasmFunction {
  const { code, emit: e } = body();
  const params = grad ? 13 : 11;
  const [DY, X, Y, DX] = grad ? [0, 1, 2, 3] : [-1, 0, 1, -1];
  const b = params - 9, PLANES = b, H = b + 1, W = b + 2, OH = b + 3, OW = b + 4, H0 = b + 5, H1 = b + 6, W0 = b + 7, W1 = b + 8;
  const L = params, PLANE = L, DX_PLANE = L + 1, OY = L + 2, OX = L + 3, ROWS_LEFT = L + 4, OUTS_LEFT = L + 5; // i32 locals
  const ROW = L + 6, ROW_END = L + 7, COL = L + 8, COL_END = L + 9, OFFSET = L + 10, PLANE_BYTES = L + 11;
  const S = params + 12, YV = params + 13; // f64 sum or dy / y; f32 y
  const tab = (table: number, i: number): number[] => [...w.get(table), ...w.get(i), ...w.i32(4), ...w.mul, ...w.add, ...w.i32Load(0)];
  e(w.get(H), w.get(W), w.mul, w.i32(4), w.mul, w.set(PLANE_BYTES), w.get(X), w.set(PLANE));
  if (grad) e(w.get(DX), w.set(DX_PLANE));
  repeat(e, PLANES, () => {
    e(w.i32(0), w.set(OY), w.get(OH), w.set(ROWS_LEFT));
    repeat(e, ROWS_LEFT, () => {
      e(w.i32(0), w.set(OX), w.get(OW), w.set(OUTS_LEFT));
      repeat(e, OUTS_LEFT, () => {
        e(tab(H0, OY), w.set(ROW), tab(H1, OY), w.set(ROW_END), tab(W1, OX), w.set(COL_END));
        if (grad) { // s = y == 0 ? 0 : dy / y, and the window only when s != 0
          e(w.f64Const0, w.set(S), w.get(Y), w.f32Load(0), w.tee(YV), w.f32Const0, w.f32Eq, w.eqz, w.if);
          e(w.get(DY), w.f32Load(0), w.f64FromF32, w.get(YV), w.f64FromF32, w.f64Div, w.set(S), w.end);
          e(w.get(S), w.f64Const0, w.f64Ne, w.if);
        } else e(w.f64Const0, w.set(S));
        e(w.block, w.loop, w.get(ROW), w.get(ROW_END), w.eq, w.brIf(1));
        e(tab(W0, OX), w.set(COL));
        e(w.block, w.loop, w.get(COL), w.get(COL_END), w.eq, w.brIf(1));
        e(w.get(ROW), w.get(W), w.mul, w.get(COL), w.add, w.i32(4), w.mul, w.set(OFFSET));
        if (grad) { // dx = f32(dx + s * x)
          e(w.get(DX_PLANE), w.get(OFFSET), w.add);
          e(w.get(DX_PLANE), w.get(OFFSET), w.add, w.f32Load(0), w.f64FromF32);
          e(w.get(S), w.get(PLANE), w.get(OFFSET), w.add, w.f32Load(0), w.f64FromF32, w.f64Mul, w.f64Add, w.f32FromF64, w.f32Store(0));
        } else { // s += x * x
          e(w.get(PLANE), w.get(OFFSET), w.add, w.f32Load(0), w.f64FromF32, w.tee(S + 1), w.get(S + 1), w.f64Mul, w.get(S), w.f64Add, w.set(S));
        }
        e(w.get(COL), w.i32(1), w.add, w.set(COL), w.br(0), w.end, w.end);
        e(w.get(ROW), w.i32(1), w.add, w.set(ROW), w.br(0), w.end, w.end);
        if (grad) e(w.end, w.get(Y), w.i32(4), w.add, w.set(Y), w.get(DY), w.i32(4), w.add, w.set(DY));
        else e(w.get(Y), w.get(S), w.f32FromF64, w.f64FromF32, w.f64Sqrt, w.f32FromF64, w.f32Store(0), w.get(Y), w.i32(4), w.add, w.set(Y)); // the sum rounded to float32 first, as pool.ts stores it
        e(w.get(OX), w.i32(1), w.add, w.set(OX));
      });
      e(w.get(OY), w.i32(1), w.add, w.set(OY));
    });
    e(w.get(PLANE), w.get(PLANE_BYTES), w.add, w.set(PLANE));
    if (grad) e(w.get(DX_PLANE), w.get(PLANE_BYTES), w.add, w.set(DX_PLANE));
  });
  return {
    name: grad ? 'l2PoolGrad' : 'l2Pool', params: new Array<number>(params).fill(I32),
    locals: [...new Array<number>(12).fill(I32), F64, grad ? F32 : F64], code,
  };
}

/** mask = v > best or v is NaN, lane by lane (max pooling's rule: see maxPoolForward); best = v there. */
function takeGreaterOrNaN(e: Emit, v: number, best: number, mask: number): void {
  e(w.get(v), w.get(best), w.f32x4Gt, w.get(v), w.get(v), w.f32x4Ne, w.or128, w.set(mask));
  e(w.get(v), w.get(best), w.get(mask), w.bitselect, w.set(best));
}

/** The same selection for the index vectors: bestIndex = index where mask. */
const takeIndex = (e: Emit, index: number, bestIndex: number, mask: number): void =>
  e(w.get(index), w.get(bestIndex), w.get(mask), w.bitselect, w.set(bestIndex));

/*
 * Max pooling, separably: each input row's horizontal window maxima, then the maxima of those over each
 * output row's input rows, four outputs at a time. Both folds keep the first value and take a later one
 * only when it is greater or NaN, so the result is maxPool's: the first maximum in row-major window order,
 * or the window's last NaN (ties, ±0 and NaN bits alike). The "Arg" variants also track where the winner
 * was (its column, then its flat index): the argmax backward needs.
 *
 * maxRows (x, t, rows, W, OW, stride, KW, padL, lo, hi, w0, w1[, ti]): for each of `rows` input rows of W
 * values, t's row of OW values (and ti's of columns); outputs [lo, hi) (a multiple of 4 apart, windows
 * inside the row) by vectors, with stride 1 or 2 (even lanes of two loads), the others one by one over
 * their clipped window [w0, w1).
 */
function maxRowsKernel(arg: boolean): WasmFunction {
  const { code, emit: e } = body();
  const X = 0, T = 1, ROWS = 2, W = 3, OW = 4, STRIDE = 5, KW = 6, PAD = 7, LO = 8, HI = 9, W0 = 10, W1 = 11, TI = 12;
  const L = arg ? 13 : 12; // locals
  const OWI = L, TAP = L + 1, AT = L + 2, END = L + 3, ROW_AT = L + 4, WIN_AT = L + 5; // i32
  const BEST = L + 6, V = L + 7, MASK = L + 8, IDX = L + 9, BEST_IDX = L + 10, STEPS = L + 11; // v128
  const BEST1 = L + 12, V1 = L + 13; // f32
  const tap = (): void => { // the tap's four values, from address AT
    e(w.get(STRIDE), w.i32(1), w.eq, w.if);
    e(w.get(AT), w.v128Load(0), w.set(V), w.else);
    e(w.get(AT), w.v128Load(0), w.get(AT), w.v128Load(16), w.shuffle([0, 2, 4, 6]), w.set(V), w.end);
  };
  const slot = (base: number): void => void e(w.get(base), w.get(OWI), w.i32(4), w.mul, w.add); // base + ow * 4
  if (arg) e(w.get(STRIDE), w.i32x4Splat, w.i32x4Lanes(0, 1, 2, 3), w.i32x4Mul, w.set(STEPS)); // lane j's column offset: j * stride
  e(w.block, w.loop, w.get(ROWS), w.eqz, w.brIf(1));
  e(w.i32(0), w.set(OWI));
  e(w.block, w.loop, w.get(OWI), w.get(OW), w.eq, w.brIf(1));
  e(w.get(OWI), w.get(LO), w.ltS, w.get(OWI), w.get(HI), w.ltS, w.eqz, w.i32Or, w.if);
  // one output: its clipped window [w0, w1), by scalars
  slot(W0); e(w.i32Load(0), w.i32(4), w.mul, w.get(X), w.add, w.tee(AT), w.tee(WIN_AT), w.f32Load(0), w.set(BEST1));
  slot(W1); e(w.i32Load(0), w.i32(4), w.mul, w.get(X), w.add, w.set(END));
  e(w.block, w.loop, w.get(AT), w.i32(4), w.add, w.tee(AT), w.get(END), w.ltS, w.eqz, w.brIf(1));
  e(w.get(AT), w.f32Load(0), w.tee(V1), w.get(BEST1), w.f32Gt, w.get(V1), w.get(V1), w.f32Ne, w.i32Or, w.if);
  e(w.get(V1), w.set(BEST1), w.get(AT), w.set(WIN_AT), w.end, w.br(0), w.end, w.end);
  slot(T); e(w.get(BEST1), w.f32Store(0));
  if (arg) { slot(TI); e(w.get(WIN_AT), w.get(X), w.sub, w.i32(2), w.shrU, w.i32Store(0)); } // the column
  e(w.get(OWI), w.i32(1), w.add, w.set(OWI), w.else);
  // four outputs: taps 0..KW-1 from column ow * stride - padL
  e(w.get(OWI), w.get(STRIDE), w.mul, w.get(PAD), w.sub, w.tee(ROW_AT), w.i32(4), w.mul, w.get(X), w.add, w.set(AT));
  tap();
  e(w.get(V), w.set(BEST), w.i32(1), w.set(TAP));
  if (arg) e(w.get(ROW_AT), w.i32x4Splat, w.get(STEPS), w.i32x4Add, w.tee(IDX), w.set(BEST_IDX));
  e(w.block, w.loop, w.get(TAP), w.get(KW), w.eq, w.brIf(1));
  e(w.get(AT), w.i32(4), w.add, w.set(AT));
  tap();
  takeGreaterOrNaN(e, V, BEST, MASK);
  if (arg) { e(w.get(IDX), w.i32x4Const(1), w.i32x4Add, w.set(IDX)); takeIndex(e, IDX, BEST_IDX, MASK); }
  e(w.get(TAP), w.i32(1), w.add, w.set(TAP), w.br(0), w.end, w.end);
  slot(T); e(w.get(BEST), w.store(0));
  if (arg) { slot(TI); e(w.get(BEST_IDX), w.store(0)); }
  e(w.get(OWI), w.i32(4), w.add, w.set(OWI), w.end);
  e(w.br(0), w.end, w.end);
  e(w.get(X), w.get(W), w.i32(4), w.mul, w.add, w.set(X), w.get(T), w.get(OW), w.i32(4), w.mul, w.add, w.set(T));
  if (arg) e(w.get(TI), w.get(OW), w.i32(4), w.mul, w.add, w.set(TI));
  e(w.get(ROWS), w.i32(1), w.sub, w.set(ROWS), w.br(0), w.end, w.end);
  return {
    name: arg ? 'maxRowsArg' : 'maxRows', params: new Array<number>(L).fill(I32),
    locals: [I32, I32, I32, I32, I32, I32, V128, V128, V128, V128, V128, V128, F32, F32], code,
  };
}

/**
 * maxCols (t, y, planes, H, OW, OH, h0, h1[, ti, yi, W, base]): y's row oh of each plane is the fold of t's
 * rows [h0, h1) of that plane (and yi's the winner's flat index, base + plane * H * W + row * W + column),
 * by vectors over ceil(OW / 4) groups (the lanes past a row's end land in the next output row, which is
 * written after it, or in the buffer's padding).
 */
function maxColsKernel(arg: boolean): WasmFunction {
  const { code, emit: e } = body();
  const T = 0, Y = 1, PLANES = 2, H = 3, OW = 4, OH = 5, H0 = 6, H1 = 7, TI = 8, YI = 9, W = 10, BASE = 11;
  const L = arg ? 12 : 8;
  const OHI = L, ROW = L + 1, END = L + 2, G = L + 3, SRC = L + 4, LEFT = L + 5, ROW_BYTES = L + 6, FLAT = L + 7; // i32
  const BEST = L + 8, V = L + 9, MASK = L + 10, IDX = L + 11, BEST_IDX = L + 12; // v128
  /** The flat indices of row ROW's winners in this group: base + row * W + their columns (from ti). */
  const indices = (): void => void e(w.get(FLAT), w.get(ROW), w.get(W), w.mul, w.add, w.i32x4Splat, w.get(SRC), w.get(T), w.sub, w.get(TI), w.add, w.load(0), w.i32x4Add);
  e(w.get(OW), w.i32(4), w.mul, w.set(ROW_BYTES));
  if (arg) e(w.get(BASE), w.set(FLAT));
  repeat(e, PLANES, () => {
    e(w.i32(0), w.set(OHI));
    e(w.block, w.loop, w.get(OHI), w.get(OH), w.eq, w.brIf(1));
    e(w.get(H0), w.get(OHI), w.i32(4), w.mul, w.add, w.i32Load(0), w.set(ROW));
    e(w.get(H1), w.get(OHI), w.i32(4), w.mul, w.add, w.i32Load(0), w.set(END));
    e(w.i32(0), w.set(G));
    e(w.block, w.loop, w.get(G), w.get(OW), w.ltS, w.eqz, w.brIf(1));
    e(w.get(T), w.get(ROW), w.get(ROW_BYTES), w.mul, w.add, w.get(G), w.i32(4), w.mul, w.add, w.tee(SRC), w.load(0), w.set(BEST));
    if (arg) { indices(); e(w.set(BEST_IDX)); }
    e(w.get(END), w.get(ROW), w.sub, w.i32(1), w.sub, w.set(LEFT)); // rows left to fold
    repeat(e, LEFT, () => {
      e(w.get(SRC), w.get(ROW_BYTES), w.add, w.tee(SRC), w.load(0), w.set(V));
      takeGreaterOrNaN(e, V, BEST, MASK);
      if (arg) { e(w.get(ROW), w.i32(1), w.add, w.set(ROW)); indices(); e(w.set(IDX)); takeIndex(e, IDX, BEST_IDX, MASK); }
    });
    if (arg) e(w.get(H0), w.get(OHI), w.i32(4), w.mul, w.add, w.i32Load(0), w.set(ROW)); // back to the window's first row
    e(w.get(Y), w.get(G), w.i32(4), w.mul, w.add, w.get(BEST), w.store(0));
    if (arg) e(w.get(YI), w.get(G), w.i32(4), w.mul, w.add, w.get(BEST_IDX), w.store(0));
    e(w.get(G), w.i32(4), w.add, w.set(G), w.br(0), w.end, w.end);
    e(w.get(Y), w.get(ROW_BYTES), w.add, w.set(Y), w.get(OHI), w.i32(1), w.add, w.set(OHI));
    if (arg) e(w.get(YI), w.get(ROW_BYTES), w.add, w.set(YI));
    e(w.br(0), w.end, w.end);
    e(w.get(T), w.get(H), w.get(ROW_BYTES), w.mul, w.add, w.set(T));
    if (arg) e(w.get(TI), w.get(H), w.get(ROW_BYTES), w.mul, w.add, w.set(TI), w.get(FLAT), w.get(H), w.get(W), w.mul, w.add, w.set(FLAT));
  });
  return {
    name: arg ? 'maxColsArg' : 'maxCols', params: new Array<number>(L).fill(I32),
    locals: [I32, I32, I32, I32, I32, I32, I32, I32, V128, V128, V128, V128, V128], code,
  };
}

export function planesModuleBytes(): Uint8Array {
  return moduleBytes([affineKernel(false), affineKernel(true), preluKernel(), sumsKernel('moments', 1), sumsKernel('bnSums', 2), bnInputGradientKernel(), ...flatKernels, leakyKernel(false), leakyKernel(true), lrnKernel(), lrnGradKernel(false), lrnGradKernel(true), depthwiseKernel(), maxPoolKernel(), maxRowsKernel(false), maxRowsKernel(true), maxColsKernel(false), maxColsKernel(true), l2PoolKernel(false), l2PoolKernel(true)]);
}

// ---- running them ----

type Fn = (...args: number[]) => void;
interface Instance {
  memory: WasmMemory; heap: Float32Array; heap64: Float64Array;
  affine: Fn; affineRelu: Fn; prelu: Fn; moments: Fn; bnSums: Fn; bnInputGradient: Fn; mask: Fn; relu: Fn; add: Fn; sub: Fn; mul: Fn; abs: Fn; leaky: Fn; leakyGrad: Fn; lrn: Fn; lrnGradT: Fn; lrnGradDx: Fn; depthwise: Fn; maxPool: Fn; maxRows: Fn; maxRowsArg: Fn; maxCols: Fn; maxColsArg: Fn; l2Pool: Fn; l2PoolGrad: Fn;
}

let instance: Instance | null | undefined;
let enabled = globalThis.process?.env?.FACENET_PLANES !== 'js';

/** Turns the WebAssembly passes off (false: the TypeScript loops run everywhere) or back on; for tests. */
export function setWasmPlanes(on: boolean): void {
  enabled = on;
}

/** Whether the passes run in WebAssembly here (and are switched on). */
export function wasmPlanesAvailable(): boolean {
  return kernels() !== null;
}

function kernels(): Instance | null {
  if (!enabled) return null;
  if (instance !== undefined) return instance;
  const exports = instantiate(planesModuleBytes()) as Omit<Instance, 'heap' | 'heap64'> | null;
  instance = exports && { ...exports, heap: new Float32Array(exports.memory.buffer), heap64: new Float64Array(exports.memory.buffer) };
  return instance;
}

/** Float32 values per chunk buffer: 64 kB, so a few buffers and the tables stay in the L2 cache. */
const CHUNK = 16384;
const BUFFERS = 3;

/** Makes the module's memory hold `bytes`, renewing the views when it grows. */
function reserve(k: Instance, bytes: number): void {
  if (!reserveBytes(k.memory, bytes)) return;
  k.heap = new Float32Array(k.memory.buffer);
  k.heap64 = new Float64Array(k.memory.buffer);
}

/** Room for `tableBytes` of tables at 0, then BUFFERS chunk buffers (each padded to whole groups of 4). */
function layout(k: Instance, tableBytes: number): { buffer: (i: number) => number } {
  const tables = Math.ceil(tableBytes / 16) * 16, stride = (CHUNK + 4) * 4;
  reserve(k, tables + BUFFERS * stride);
  return { buffer: (i) => tables + i * stride };
}

const isF32 = (...arrays: ArrayLike<number>[]): boolean => arrays.every((a) => a instanceof Float32Array);

/**
 * The chunks of N*C planes of P values: whole planes, or pieces of one plane when a plane is larger than a
 * chunk; `ch` is the channel of the chunk's first plane.
 */
function forChunks(N: number, C: number, P: number, run: (at: number, length: number, p: number, planes: number, ch: number) => void): void {
  const planes = N * C;
  if (P <= CHUNK) {
    const step = Math.floor(CHUNK / P);
    for (let q = 0; q < planes; q += step) run(q * P, Math.min(step, planes - q) * P, P, Math.min(step, planes - q), q % C);
    return;
  }
  for (let q = 0; q < planes; q++) {
    for (let i = 0; i < P; i += CHUNK) run(q * P + i, Math.min(CHUNK, P - i), Math.min(CHUNK, P - i), 1, q % C);
  }
}

/**
 * Runs a per-plane kernel over N*C planes of P values, chunk by chunk: `inputs[i]` is copied into buffer
 * i, the kernel gets the buffer addresses `pointers` and then (P, planes, C, ch, ...tables), and
 * `outputs` ([buffer, array]) are copied out.
 */
function overPlanes(
  k: Instance, kernel: Fn, inputs: Float32Array[], outputs: [number, Float32Array][], pointers: number[],
  N: number, C: number, P: number, tables: number[], buffer: (i: number) => number,
): void {
  forChunks(N, C, P, (at, length, p, planes, ch) => {
    inputs.forEach((a, i) => k.heap.set(a.subarray(at, at + length), buffer(i) / 4));
    kernel(...pointers.map(buffer), p, planes, C, ch, ...tables);
    for (const [i, a] of outputs) a.set(k.heap.subarray(buffer(i) / 4, buffer(i) / 4 + length), at);
  });
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

/** y = x * scale[c] + shift[c] (then max(0, .) when relu) over [N, C, P]; false where the kernels do not run. */
export function affinePlanes(x: ArrayLike<number>, y: ArrayLike<number>, N: number, C: number, P: number, scale: ArrayLike<number>, shift: ArrayLike<number>, relu: boolean): boolean {
  const k = kernels();
  if (!k || !isF32(x, y)) return false;
  const { buffer } = layout(k, tableBytes(2, 0, C));
  const tables = writeTables(k, [scale, shift], 0, C);
  overPlanes(k, relu ? k.affineRelu : k.affine, [x as Float32Array], [[0, y as Float32Array]], [0, 0], N, C, P, tables, buffer);
  return true;
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
  const k = kernels();
  if (!k || !isF32(x)) return null;
  const { buffer } = layout(k, tableBytes(1, 2, C));
  const tables = writeTables(k, [shift], 2, C);
  overPlanes(k, k.moments, [x as Float32Array], [], [0], N, C, P, tables, buffer);
  return { s1: k.heap64.slice(tables[1]! / 8, tables[1]! / 8 + C), s2: k.heap64.slice(tables[2]! / 8, tables[2]! / 8 + C) };
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
  const k = kernels();
  if (!k || !isF32(dy, x) || (reluOf && !isF32(reluOf, masked!))) return null;
  const { buffer } = layout(k, tableBytes(1, 2, C));
  const tables = writeTables(k, [mean], 2, C);
  const b0 = buffer(0), b1 = buffer(1), b2 = buffer(2);
  forChunks(N, C, P, (at, length, p, planes, ch) => {
    k.heap.set((dy as Float32Array).subarray(at, at + length), b0 / 4);
    if (reluOf) {
      k.heap.set((reluOf as Float32Array).subarray(at, at + length), b2 / 4);
      k.mask(b0, b2, b0, Math.ceil(length / 4));
      (masked as Float32Array).set(k.heap.subarray(b0 / 4, b0 / 4 + length), at);
    }
    k.heap.set((x as Float32Array).subarray(at, at + length), b1 / 4);
    k.bnSums(b0, b1, p, planes, C, ch, ...tables);
  });
  return { sumDy: k.heap64.slice(tables[1]! / 8, tables[1]! / 8 + C), sumDyXc: k.heap64.slice(tables[2]! / 8, tables[2]! / 8 + C) };
}

/** dx = a[c] * dy - b[c] * (x - mean[c]) - d[c] over [N, C, P] (dx may be dy); false where the kernels do not run. */
export function batchNormInputGradient(
  dy: ArrayLike<number>, x: ArrayLike<number>, dx: ArrayLike<number>, N: number, C: number, P: number,
  a: ArrayLike<number>, mean: ArrayLike<number>, b: ArrayLike<number>, d: ArrayLike<number>,
): boolean {
  const k = kernels();
  if (!k || !isF32(dy, x, dx)) return false;
  const { buffer } = layout(k, tableBytes(4, 0, C));
  const tables = writeTables(k, [a, mean, b, d], 0, C);
  overPlanes(k, k.bnInputGradient, [dy as Float32Array, x as Float32Array], [[2, dx as Float32Array]], [0, 1, 2], N, C, P, tables, buffer);
  return true;
}

/**
 * A flat kernel over `inputs` (copied in by chunk), its result copied out into `out` (which may be an
 * input); `scalar`, when given, is stored at address 0 and its address passed last.
 */
function overValues(k: Instance, kernel: Fn, inputs: Float32Array[], out: Float32Array, scalar?: number): void {
  const { buffer } = layout(k, 16);
  if (scalar !== undefined) k.heap[0] = scalar;
  for (let at = 0; at < out.length; at += CHUNK) {
    const length = Math.min(CHUNK, out.length - at);
    inputs.forEach((a, i) => k.heap.set(a.subarray(at, at + length), buffer(i) / 4));
    kernel(...inputs.map((_, i) => buffer(i)), buffer(inputs.length), Math.ceil(length / 4), ...(scalar !== undefined ? [0] : []));
    out.set(k.heap.subarray(buffer(inputs.length) / 4, buffer(inputs.length) / 4 + length), at);
  }
}

/** out = ref > 0 ? dy : 0 (ReLU's gradient; out may be dy); false where the kernels do not run. */
export function maskPositive(dy: ArrayLike<number>, ref: ArrayLike<number>, out: ArrayLike<number>): boolean {
  const k = kernels();
  if (!k || !isF32(dy, ref, out)) return false;
  overValues(k, k.mask, [dy as Float32Array, ref as Float32Array], out as Float32Array);
  return true;
}

/** out = max(x, 0) (out may be x; NaN kept); false where the kernels do not run. */
export function reluValues(x: ArrayLike<number>, out: ArrayLike<number> = x): boolean {
  const k = kernels();
  if (!k || !isF32(x, out)) return false;
  overValues(k, k.relu, [x as Float32Array], out as Float32Array);
  return true;
}

/** out = a op b for same-length arrays (out may be a or b); false where the kernels do not run. */
export function binaryValues(name: 'add' | 'sub' | 'mul', a: ArrayLike<number>, b: ArrayLike<number>, out: ArrayLike<number>): boolean {
  const k = kernels();
  if (!k || !isF32(a, b, out)) return false;
  overValues(k, k[name], [a as Float32Array, b as Float32Array], out as Float32Array);
  return true;
}

/** out = |x|; false where the kernels do not run. */
export function absValues(x: ArrayLike<number>, out: ArrayLike<number>): boolean {
  const k = kernels();
  if (!k || !isF32(x, out)) return false;
  overValues(k, k.abs, [x as Float32Array], out as Float32Array);
  return true;
}

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
  const k = kernels();
  if (!k || !isF32(x, y) || (s && !isF32(s, sPow!))) return false;
  const n = C * P, regions = imageRegions(k, n);
  if (!regions) return false;
  const [X, Q, SUM, S, SP, Y] = regions;
  new Float64Array(k.memory.buffer, 0, 3).set([kBase, scale, 1]);
  for (let img = 0; img < N; img++) {
    k.heap.set((x as Float32Array).subarray(img * n, (img + 1) * n), X / 4);
    k.mul(X, X, Q, Math.ceil(n / 4));
    channelWindowSums(k, Q, SUM, C, P, r);
    k.lrn(SUM, X, S, SP, Y, Math.ceil(n / 4), 0);
    (y as Float32Array).set(k.heap.subarray(Y / 4, Y / 4 + n), img * n);
    if (s) {
      (s as Float32Array).set(k.heap.subarray(S / 4, S / 4 + n), img * n);
      (sPow as Float32Array).set(k.heap.subarray(SP / 4, SP / 4 + n), img * n);
    }
  }
  return true;
}

/**
 * LRN's input gradient (see lrn.ts), image by image: t = dy * x * sPow / s, its channel-window sums, then
 * dx = dy * sPow - c * x * sums with c = 2 * beta * scale. False where the kernels do not run.
 */
export function lrnGradImages(
  dy: ArrayLike<number>, x: ArrayLike<number>, s: ArrayLike<number>, sPow: ArrayLike<number>, dx: ArrayLike<number>,
  N: number, C: number, P: number, r: number, c: number,
): boolean {
  const k = kernels();
  if (!k || !isF32(dy, x, s, sPow, dx)) return false;
  const n = C * P, regions = imageRegions(k, n);
  if (!regions) return false;
  const [DY, X, S, SP, T, SUM, DX] = regions;
  new Float64Array(k.memory.buffer, 0, 1)[0] = c;
  const image = (a: ArrayLike<number>, img: number): Float32Array => (a as Float32Array).subarray(img * n, (img + 1) * n);
  for (let img = 0; img < N; img++) {
    k.heap.set(image(dy, img), DY / 4);
    k.heap.set(image(x, img), X / 4);
    k.heap.set(image(s, img), S / 4);
    k.heap.set(image(sPow, img), SP / 4);
    k.lrnGradT(DY, X, SP, S, T, Math.ceil(n / 4));
    channelWindowSums(k, T, SUM, C, P, r);
    k.lrnGradDx(DY, SP, X, SUM, DX, Math.ceil(n / 4), 0);
    (dx as Float32Array).set(k.heap.subarray(DX / 4, DX / 4 + n), img * n);
  }
  return true;
}

type Seven = [number, number, number, number, number, number, number];

/** Addresses of seven regions of n floats (padded to whole groups) after 32 bytes of constants; null if too large. */
function imageRegions(k: Instance, n: number): Seven | null {
  const stride = Math.ceil(n / 4) * 16 + 16;
  if (7 * stride > 1 << 27) return null;
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

/**
 * y = depthwise convolution of N images (imageIn / imageOut floats each) with the tap-row table `rows`
 * (see depthwiseKernel), image by image through the module's memory; false where the kernels do not run
 * or an image would not fit.
 */
export function depthwiseImages(x: ArrayLike<number>, w: ArrayLike<number>, y: ArrayLike<number>, rows: Int32Array, N: number, imageIn: number, imageOut: number, strideW: number): boolean {
  const k = kernels();
  if (!k || !isF32(x, w, y) || imageIn + imageOut > 1 << 24) return false;
  const at = { rows: 0, w: rows.length * 4 }, wBytes = Math.ceil((w.length * 4) / 16) * 16;
  const xAt = at.w + wBytes, yAt = xAt + Math.ceil((imageIn * 4) / 16) * 16;
  reserve(k, yAt + imageOut * 4);
  new Int32Array(k.memory.buffer).set(rows, 0);
  k.heap.set(w as Float32Array, at.w / 4);
  const xs = x as Float32Array, ys = y as Float32Array;
  for (let n = 0; n < N; n++) {
    k.heap.set(xs.subarray(n * imageIn, (n + 1) * imageIn), xAt / 4);
    k.heap.fill(0, yAt / 4, yAt / 4 + imageOut); // the kernel adds every tap onto y
    k.depthwise(at.rows, rows.length / 6, at.w, xAt, yAt, strideW);
    ys.set(k.heap.subarray(yAt / 4, yAt / 4 + imageOut), n * imageOut);
  }
  return true;
}

/** Leaky ReLU (out = x > 0 ? x : alpha x), or with dy its gradient (out = x > 0 ? dy : alpha dy); false where the kernels do not run. */
export function leakyValues(x: ArrayLike<number>, alpha: number, out: ArrayLike<number>, dy?: ArrayLike<number>): boolean {
  const k = kernels();
  if (!k || !isF32(x, out, ...(dy ? [dy] : []))) return false;
  if (dy) overValues(k, k.leakyGrad, [dy as Float32Array, x as Float32Array], out as Float32Array, alpha);
  else overValues(k, k.leaky, [x as Float32Array], out as Float32Array, alpha);
  return true;
}

/**
 * Max pooling over [N*C planes of H x W] with the window tables of pool.ts (rows [h0[oh], h1[oh]) x
 * columns [w0[ow], w1[ow]), each non-empty): y and argmax (flat input indices), plane chunks through the
 * module's memory; false where the kernels do not run.
 */
export function maxPoolPlanes(x: ArrayLike<number>, y: ArrayLike<number>, argmax: Int32Array, planes: number, H: number, W: number, OH: number, OW: number, tables: [Int32Array, Int32Array, Int32Array, Int32Array]): boolean {
  const k = kernels();
  if (!k || !isF32(x, y) || H * W > 1 << 22) return false;
  const [h0, h1, w0, w1] = tables;
  if (h0.some((v, i) => v >= h1[i]!) || w0.some((v, i) => v >= w1[i]!)) return false; // an empty window: the TypeScript loop
  const tableBytes = 4 * (2 * OH + 2 * OW), inPlane = H * W, outPlane = OH * OW;
  const step = Math.max(1, Math.floor(CHUNK / Math.max(inPlane, 1)));
  const xAt = Math.ceil(tableBytes / 16) * 16, yAt = xAt + Math.ceil((step * inPlane * 4) / 16) * 16, argAt = yAt + step * outPlane * 4;
  reserve(k, argAt + step * outPlane * 4);
  const ints = new Int32Array(k.memory.buffer);
  let at = 0;
  const addresses = tables.map((t) => { ints.set(t, at / 4); const a = at; at += t.length * 4; return a; });
  const xs = x as Float32Array, ys = y as Float32Array;
  for (let q = 0; q < planes; q += step) {
    const n = Math.min(step, planes - q);
    k.heap.set(xs.subarray(q * inPlane, (q + n) * inPlane), xAt / 4);
    k.maxPool(xAt, yAt, argAt, n, H, W, OH, OW, ...addresses, q * inPlane);
    ys.set(k.heap.subarray(yAt / 4, yAt / 4 + n * outPlane), q * outPlane);
    argmax.set(ints.subarray(argAt / 4, argAt / 4 + n * outPlane), q * outPlane);
  }
  return true;
}

/**
 * Max pooling for horizontal strides 1 and 2, separably (see maxRowsKernel): the values, and the argmax
 * (flat input indices, for the backward) when `argmax` is given. tables: each output row's input rows
 * [h0, h1) and each output column's columns [w0, w1), clipped. False where the kernels do not run (or for
 * other strides, or an empty window).
 */
export function maxPoolSeparable(
  x: ArrayLike<number>, y: ArrayLike<number>, argmax: Int32Array | null, planes: number, H: number, W: number, OH: number, OW: number,
  tables: [Int32Array, Int32Array, Int32Array, Int32Array], strideW: number, KW: number, padLeft: number,
): boolean {
  const k = kernels();
  if (!k || !isF32(x, y) || (strideW !== 1 && strideW !== 2) || H * W > 1 << 22) return false;
  const [h0, h1, w0, w1] = tables;
  if (h0.some((v, i) => v >= h1[i]!) || w0.some((v, i) => v >= w1[i]!)) return false;
  // Outputs whose whole window lies inside the row, a multiple of 4 of them, go by vectors.
  const lo = Math.min(OW, Math.ceil(padLeft / strideW));
  const inside = Math.max(lo, Math.min(OW, Math.floor((W - KW + padLeft) / strideW) + 1));
  const hi = lo + Math.floor((inside - lo) / 4) * 4;
  const inPlane = H * W, rowsPlane = H * OW, outPlane = OH * OW;
  const step = Math.max(1, Math.floor(CHUNK / Math.max(inPlane, 1)));
  const bytes = (floats: number): number => Math.ceil((floats * 4 + 32) / 16) * 16; // a region, padded
  const xAt = Math.ceil((4 * (2 * OH + 2 * OW)) / 16) * 16, tAt = xAt + bytes(step * inPlane), tiAt = tAt + bytes(step * rowsPlane);
  const yAt = tiAt + bytes(step * rowsPlane), yiAt = yAt + bytes(step * outPlane);
  reserve(k, yiAt + bytes(step * outPlane));
  const ints = new Int32Array(k.memory.buffer);
  let at = 0;
  const [h0At, h1At, w0At, w1At] = tables.map((t) => { ints.set(t, at / 4); const a = at; at += t.length * 4; return a; }) as [number, number, number, number];
  const xs = x as Float32Array, ys = y as Float32Array;
  for (let q = 0; q < planes; q += step) {
    const n = Math.min(step, planes - q);
    k.heap.set(xs.subarray(q * inPlane, (q + n) * inPlane), xAt / 4);
    if (argmax) {
      k.maxRowsArg(xAt, tAt, n * H, W, OW, strideW, KW, padLeft, lo, hi, w0At, w1At, tiAt);
      k.maxColsArg(tAt, yAt, n, H, OW, OH, h0At, h1At, tiAt, yiAt, W, q * inPlane);
      argmax.set(ints.subarray(yiAt / 4, yiAt / 4 + n * outPlane), q * outPlane);
    } else {
      k.maxRows(xAt, tAt, n * H, W, OW, strideW, KW, padLeft, lo, hi, w0At, w1At);
      k.maxCols(tAt, yAt, n, H, OW, OH, h0At, h1At);
    }
    ys.set(k.heap.subarray(yAt / 4, yAt / 4 + n * outPlane), q * outPlane);
  }
  return true;
}

/**
 * L2 pooling (see l2PoolKernel) chunk by chunk of planes: y when dy is null, else dx += (dy / y) * x over
 * each window (dx zeroed). Tables as maxPoolPlanes'. False where the kernels do not run.
 */
export function l2PoolPlanes(
  x: ArrayLike<number>, y: ArrayLike<number>, dy: ArrayLike<number> | null, dx: ArrayLike<number> | null,
  planes: number, H: number, W: number, OH: number, OW: number, tables: [Int32Array, Int32Array, Int32Array, Int32Array],
): boolean {
  const k = kernels();
  if (!k || !isF32(x, y) || (dy && !isF32(dy, dx!)) || H * W > 1 << 22) return false;
  const inPlane = H * W, outPlane = OH * OW, step = Math.max(1, Math.floor(CHUNK / Math.max(inPlane, 1)));
  const bytes = (floats: number): number => Math.ceil((floats * 4) / 16) * 16;
  const xAt = bytes(2 * OH + 2 * OW), yAt = xAt + bytes(step * inPlane), dyAt = yAt + bytes(step * outPlane), dxAt = dyAt + bytes(step * outPlane);
  reserve(k, dxAt + bytes(step * inPlane));
  const ints = new Int32Array(k.memory.buffer);
  let at = 0;
  const [h0, h1, w0, w1] = tables.map((t) => { ints.set(t, at / 4); const a = at; at += t.length * 4; return a; }) as [number, number, number, number];
  const f = (a: ArrayLike<number>): Float32Array => a as Float32Array;
  for (let q = 0; q < planes; q += step) {
    const n = Math.min(step, planes - q);
    k.heap.set(f(x).subarray(q * inPlane, (q + n) * inPlane), xAt / 4);
    if (!dy) {
      k.l2Pool(xAt, yAt, n, H, W, OH, OW, h0, h1, w0, w1);
      f(y).set(k.heap.subarray(yAt / 4, yAt / 4 + n * outPlane), q * outPlane);
      continue;
    }
    k.heap.set(f(y).subarray(q * outPlane, (q + n) * outPlane), yAt / 4);
    k.heap.set(f(dy).subarray(q * outPlane, (q + n) * outPlane), dyAt / 4);
    k.heap.fill(0, dxAt / 4, dxAt / 4 + n * inPlane);
    k.l2PoolGrad(dyAt, xAt, yAt, dxAt, n, H, W, OH, OW, h0, h1, w0, w1);
    f(dx!).set(k.heap.subarray(dxAt / 4, dxAt / 4 + n * inPlane), q * inPlane);
  }
  return true;
}
