/**
 * WebAssembly kernels for max and L2 pooling (pool.ts runs them, and its TypeScript loops where they do not
 * run): max pooling separably (row maxima, then column maxima, with the argmax tracked through both folds
 * for the backward; SIMD for horizontal strides 1 and 2); L2 pooling and its gradient one value at a time in
 * float64, as pool.ts computes them; max pooling's gradient (a scatter-add through the argmax). Each gives
 * the TypeScript loops' values bit for bit.
 */
import { body, F32, F64, I32, repeat, V128, w, type Emit, type WasmFunction } from './wasm_writer.js';
import { CHUNK, isF32, passModule, regionBytes, reserve } from './wasm_module.js';
import { PASS, registerPass, runPass } from './threads.js';

/** Loads table[i] (int32) onto the stack. */
const tableAt = (table: number, i: number): number[] => [...w.get(table), ...w.get(i), ...w.i32(4), ...w.mul, ...w.add, ...w.i32Load(0)];

/**
 * L2 pooling, one value at a time in float64 as pool.ts computes it (so both paths give the same bits),
 * over `planes` planes with the window tables (see maxPoolPlanes):
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
  e(w.get(H), w.get(W), w.mul, w.i32(4), w.mul, w.set(PLANE_BYTES), w.get(X), w.set(PLANE));
  if (grad) e(w.get(DX), w.set(DX_PLANE));
  repeat(e, PLANES, () => {
    e(w.i32(0), w.set(OY), w.get(OH), w.set(ROWS_LEFT));
    repeat(e, ROWS_LEFT, () => {
      e(w.i32(0), w.set(OX), w.get(OW), w.set(OUTS_LEFT));
      repeat(e, OUTS_LEFT, () => {
        e(tableAt(H0, OY), w.set(ROW), tableAt(H1, OY), w.set(ROW_END), tableAt(W1, OX), w.set(COL_END));
        if (grad) { // s = y == 0 ? 0 : dy / y, and the window only when s != 0
          e(w.f64Const0, w.set(S), w.get(Y), w.f32Load(0), w.tee(YV), w.f32Const0, w.f32Eq, w.eqz, w.if);
          e(w.get(DY), w.f32Load(0), w.f64FromF32, w.get(YV), w.f64FromF32, w.f64Div, w.set(S), w.end);
          e(w.get(S), w.f64Const0, w.f64Ne, w.if);
        } else e(w.f64Const0, w.set(S));
        e(w.block, w.loop, w.get(ROW), w.get(ROW_END), w.eq, w.brIf(1));
        e(tableAt(W0, OX), w.set(COL));
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
 * inside the row; stride 1 or 2, the even lanes of two loads) by vectors, the others one by one over their
 * clipped window [w0, w1).
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
    e(tableAt(H0, OHI), w.set(ROW), tableAt(H1, OHI), w.set(END));
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
    if (arg) e(tableAt(H0, OHI), w.set(ROW)); // back to the window's first row
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

/**
 * Max pooling's gradient, (dy, index, dx, n, base, length, slot): dx[index[i] - base] += dy[i] for i < n,
 * in order (so the sums are the TypeScript loop's); an index outside [base, base + length) (an empty
 * window's -1) adds onto the scratch slot instead. Addresses in bytes.
 */
function maxPoolGradKernel(): WasmFunction {
  const { code, emit: e } = body();
  const [DY, INDEX, DX, N, BASE, LENGTH, SLOT, AT] = [0, 1, 2, 3, 4, 5, 6, 7];
  repeat(e, N, () => {
    e(w.get(INDEX), w.i32Load(0), w.get(BASE), w.sub, w.tee(AT), w.i32(4), w.mul, w.get(DX), w.add);
    e(w.get(SLOT), w.get(AT), w.get(LENGTH), w.ltU, w.select, w.tee(AT)); // unsigned: below base wraps high
    e(w.get(AT), w.f32Load(0), w.get(DY), w.f32Load(0), w.f32Add, w.f32Store(0));
    e(w.get(DY), w.i32(4), w.add, w.set(DY), w.get(INDEX), w.i32(4), w.add, w.set(INDEX));
  });
  return { name: 'maxPoolGrad', params: new Array<number>(7).fill(I32), locals: [I32], code };
}

type Name = 'maxRows' | 'maxRowsArg' | 'maxCols' | 'maxColsArg' | 'l2Pool' | 'l2PoolGrad' | 'maxPoolGrad';
const kernels = passModule<Name>(() => [maxRowsKernel(false), maxRowsKernel(true), maxColsKernel(false), maxColsKernel(true), l2PoolKernel(false), l2PoolKernel(true), maxPoolGradKernel()]);

/** Whether these kernels run here (and the passes are switched on). */
export const wasmPoolAvailable = (): boolean => kernels() !== null;

type Tables = [Int32Array, Int32Array, Int32Array, Int32Array];

/** Whether a clipped window is empty (the TypeScript loops handle those). */
const hasEmptyWindow = ([h0, h1, w0, w1]: Tables): boolean => h0.some((v, i) => v >= h1[i]!) || w0.some((v, i) => v >= w1[i]!);

/** Planes per chunk copied into the module: as many as fit CHUNK floats, at least one. */
const planesPerChunk = (plane: number): number => Math.max(1, Math.floor(CHUNK / Math.max(plane, 1)));

/** The window tables h0, h1, w0, w1 (int32) written at address 0 on; their addresses. */
function writeWindowTables(k: Instance, tables: ArrayLike<number>[]): [number, number, number, number] {
  const ints = new Int32Array(k.memory.buffer);
  let at = 0;
  return tables.map((t) => { ints.set(t, at / 4); const a = at; at += t.length * 4; return a; }) as [number, number, number, number];
}

type Instance = NonNullable<ReturnType<typeof kernels>>;

/** An int32 array's values as a float32 view of the same memory (argmax travels to the workers that way). */
const asFloats = (a: Int32Array): Float32Array => new Float32Array(a.buffer, a.byteOffset, a.length);
const asInts = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);

/**
 * Max pooling over N*C planes of H x W, separably (see maxRowsKernel): the values, and the argmax (flat
 * input indices, for the backward) when `argmax` is given. tables: each output row's input rows [h0, h1)
 * and each output column's columns [w0, w1), clipped (pool.ts's windows). Vectors for horizontal strides
 * 1 and 2, scalars otherwise. False where the kernels do not run or a window is empty.
 */
export function maxPoolPlanes(
  x: ArrayLike<number>, y: ArrayLike<number>, argmax: Int32Array | null, planes: number, H: number, W: number, OH: number, OW: number,
  tables: Tables, strideW: number, KW: number, padLeft: number,
): boolean {
  if (!kernels() || !isF32(x, y) || H * W > 1 << 22 || hasEmptyWindow(tables)) return false;
  const arrays = [x, y, ...(argmax ? [asFloats(argmax)] : [])] as Float32Array[];
  runPass(PASS.MAX_POOL, { arrays, ints: [H, W, OH, OW, strideW, KW, padLeft], tables, tableLength: Math.max(OH, OW) }, 0, planes, 1, planes * H * W);
  return true;
}

/** Arrays x, y (then argmax as floats); ints H, W, OH, OW, strideW, KW, padLeft; tables h0, h1, w0, w1. Planes [q0, q1). */
registerPass(PASS.MAX_POOL, kernels, (k, a, q0, q1) => {
  const [H, W, OH, OW, strideW, KW, padLeft] = a.ints as [number, number, number, number, number, number, number];
  const [xs, ys, argmaxFloats] = a.arrays as [Float32Array, Float32Array, Float32Array?];
  const argmax = argmaxFloats ? asInts(argmaxFloats) : null;
  // Outputs whose whole window lies inside the row, a multiple of 4 of them, go by vectors.
  const vectors = strideW === 1 || strideW === 2;
  const lo = vectors ? Math.min(OW, Math.ceil(padLeft / strideW)) : 0;
  const inside = vectors ? Math.max(lo, Math.min(OW, Math.floor((W - KW + padLeft) / strideW) + 1)) : 0;
  const hi = lo + Math.floor((inside - lo) / 4) * 4;
  const inPlane = H * W, rowsPlane = H * OW, outPlane = OH * OW, step = planesPerChunk(inPlane);
  const xAt = regionBytes(2 * OH + 2 * OW), tAt = xAt + regionBytes(step * inPlane, 32), tiAt = tAt + regionBytes(step * rowsPlane, 32);
  const yAt = tiAt + regionBytes(step * rowsPlane, 32), yiAt = yAt + regionBytes(step * outPlane, 32);
  reserve(k, yiAt + regionBytes(step * outPlane, 32));
  const [h0At, h1At, w0At, w1At] = writeWindowTables(k, a.tables), ints = new Int32Array(k.memory.buffer);
  for (let q = q0; q < q1; q += step) {
    const n = Math.min(step, q1 - q);
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
});

/**
 * L2 pooling (see l2PoolKernel) chunk by chunk of planes: y when dy is null, else dx += (dy / y) * x over
 * each window (dx zeroed). Tables as maxPoolPlanes'. False where the kernels do not run.
 */
export function l2PoolPlanes(
  x: ArrayLike<number>, y: ArrayLike<number>, dy: ArrayLike<number> | null, dx: ArrayLike<number> | null,
  planes: number, H: number, W: number, OH: number, OW: number, tables: Tables,
): boolean {
  if (!kernels() || !isF32(x, y) || (dy && !isF32(dy, dx!)) || H * W > 1 << 22) return false;
  const arrays = (dy ? [x, y, dy, dx!] : [x, y]) as Float32Array[];
  runPass(PASS.L2_POOL, { arrays, ints: [H, W, OH, OW], tables, tableLength: Math.max(OH, OW) }, 0, planes, 1, planes * H * W);
  return true;
}

/** Arrays x, y (then dy, dx for the gradient); ints H, W, OH, OW; tables h0, h1, w0, w1. Planes [q0, q1). */
registerPass(PASS.L2_POOL, kernels, (k, a, q0, q1) => {
  const [H, W, OH, OW] = a.ints as [number, number, number, number];
  const [x, y, dy, dx] = a.arrays as [Float32Array, Float32Array, Float32Array?, Float32Array?];
  const inPlane = H * W, outPlane = OH * OW, step = planesPerChunk(inPlane);
  const xAt = regionBytes(2 * OH + 2 * OW), yAt = xAt + regionBytes(step * inPlane), dyAt = yAt + regionBytes(step * outPlane), dxAt = dyAt + regionBytes(step * outPlane);
  reserve(k, dxAt + regionBytes(step * inPlane));
  const [h0, h1, w0, w1] = writeWindowTables(k, a.tables);
  for (let q = q0; q < q1; q += step) {
    const n = Math.min(step, q1 - q);
    k.heap.set(x.subarray(q * inPlane, (q + n) * inPlane), xAt / 4);
    if (!dy) {
      k.l2Pool(xAt, yAt, n, H, W, OH, OW, h0, h1, w0, w1);
      y.set(k.heap.subarray(yAt / 4, yAt / 4 + n * outPlane), q * outPlane);
      continue;
    }
    k.heap.set(y.subarray(q * outPlane, (q + n) * outPlane), yAt / 4);
    k.heap.set(dy.subarray(q * outPlane, (q + n) * outPlane), dyAt / 4);
    k.heap.fill(0, dxAt / 4, dxAt / 4 + n * inPlane);
    k.l2PoolGrad(dyAt, xAt, yAt, dxAt, n, H, W, OH, OW, h0, h1, w0, w1);
    dx!.set(k.heap.subarray(dxAt / 4, dxAt / 4 + n * inPlane), q * inPlane);
  }
});

/**
 * Max pooling's backward, dx += dy at each output's argmax (flat input indices), chunk by chunk of planes
 * (an output's argmax lies in its own plane); dx zeroed here. False where the kernels do not run.
 */
export function maxPoolGradPlanes(dy: ArrayLike<number>, argmax: Int32Array, dx: ArrayLike<number>, planes: number, inPlane: number, outPlane: number): boolean {
  if (!kernels() || !isF32(dy, dx)) return false;
  const arrays = [dy, asFloats(argmax), dx] as Float32Array[];
  runPass(PASS.MAX_POOL_GRAD, { arrays, ints: [inPlane, outPlane], tables: [], tableLength: 0 }, 0, planes, 1, planes * inPlane);
  return true;
}

/** Arrays dy, argmax (as floats), dx; ints inPlane, outPlane. Planes [q0, q1). */
registerPass(PASS.MAX_POOL_GRAD, kernels, (k, a, q0, q1) => {
  const [inPlane, outPlane] = a.ints as [number, number];
  const [dys, argmaxFloats, dxs] = a.arrays as [Float32Array, Float32Array, Float32Array];
  const argmax = asInts(argmaxFloats), step = planesPerChunk(inPlane);
  const dyAt = 16, indexAt = dyAt + regionBytes(step * outPlane), dxAt = indexAt + regionBytes(step * outPlane); // 0-15: the slot
  reserve(k, dxAt + regionBytes(step * inPlane));
  const ints = new Int32Array(k.memory.buffer);
  for (let q = q0; q < q1; q += step) {
    const n = Math.min(step, q1 - q);
    k.heap.set(dys.subarray(q * outPlane, (q + n) * outPlane), dyAt / 4);
    ints.set(argmax.subarray(q * outPlane, (q + n) * outPlane), indexAt / 4);
    k.heap.fill(0, dxAt / 4, dxAt / 4 + n * inPlane);
    k.maxPoolGrad(dyAt, indexAt, dxAt, n * outPlane, q * inPlane, n * inPlane, 0);
    dxs.set(k.heap.subarray(dxAt / 4, dxAt / 4 + n * inPlane), q * inPlane);
  }
});
