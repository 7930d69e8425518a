/**
 * Depthwise convolution and its gradients in WebAssembly SIMD (conv.ts runs them, and its TypeScript loops
 * where they do not run). Each input plane is first staged into a zero-padded copy in the module's memory
 * whose columns are split into `stride` phases: column j of a padded row goes to phase j % stride, index
 * j / stride. Then every tap of four neighbouring outputs (ow .. ow+3) is one contiguous vector load at a
 * fixed offset from ow, whatever the stride, dilation or padding, and each output vector sums its taps in
 * registers and is stored once (where adding each tap's row onto y would load and store y once a tap).
 * 3x3 filters with horizontal stride 1 or 2 (MobileFaceNet, the tiny face detector) run unrolled kernels
 * with the nine weights held in registers; other filters a loop over a table of tap offsets. The
 * gradients use the same layout: dW takes each tap's staged x against dy, and dx is summed tap by tap in a
 * staged plane of its own, then moved back to dx's layout.
 *
 * Taps are summed in row-major order in float32, as the TypeScript loops add them (tested to float32
 * rounding). The forward runs on every thread when the arrays are shared (a pass over (image, channel)
 * planes), the gradients too (over channels, so that each thread's dW sums are its own).
 */
import { body, I32, moduleBytes, repeat, V128, w, whileAtLeast, type Emit, type WasmFunction } from './wasm_writer.js';
import { isF32, passModule, regionBytes, reserve } from './wasm_module.js';
import { highToLow } from './wasm_planes.js';
import { AFFINE_ACTIVATIONS, affineVector, type AffineActivation, type Epilogue } from './wasm_affine.js';
import { PASS, registerPass, runPass, type PassArgs } from './threads.js';
import type { ConvGeometry } from './conv.js';

// ---- the staged layout ----

/**
 * Where the staged plane puts things, in bytes, for a geometry: rows of `rowBytes` (stride phases of
 * `phaseBytes` each), the image's first row at `topBytes`; `rows` rows in all; each tap's offset from the
 * position of its output (row oh*strideH, index ow of phase 0).
 */
export interface StagedLayout { rows: number; rowBytes: number; phaseBytes: number; topBytes: number; taps: Int32Array }

export function stagedLayout(g: ConvGeometry): StagedLayout {
  const s = g.strideW, vectorsWide = Math.ceil(g.OW / 4) * 4;
  // A phase holds the image's columns, and every tap read of the last (partly past the row) output vector.
  const phase = Math.max(Math.floor((g.W - 1 + g.padLeft) / s) + 1, vectorsWide + Math.floor(((g.KW - 1) * g.dilationW) / s));
  const phaseBytes = Math.ceil(phase / 4) * 16, rowBytes = s * phaseBytes;
  const rows = Math.max(g.padTop + g.H, (g.OH - 1) * g.strideH + (g.KH - 1) * g.dilationH + 1);
  const taps = new Int32Array(g.KH * g.KW);
  for (let ki = 0; ki < g.KH; ki++) {
    for (let kj = 0; kj < g.KW; kj++) {
      const column = kj * g.dilationW; // from the output's column ow * s: phase column % s, index ow + column / s
      taps[ki * g.KW + kj] = ki * g.dilationH * rowBytes + (column % s) * phaseBytes + Math.floor(column / s) * 4;
    }
  }
  return { rows, rowBytes, phaseBytes, topBytes: g.padTop * rowBytes, taps };
}

// ---- kernels ----

/*
 * Each kernel: (geo, x, weights, y, scratch, planes, tables). For each of `planes` input planes at x
 * (H x W), stage it into scratch, then compute its M output planes at y (OH x OW each), with weights (T
 * floats an output plane) from `weights`. geo holds int32 fields (GEO) and then the T tap offsets. The
 * scratch is zeroed by the caller: staging writes the same positions for every plane, so padding stays
 * zero. With an epilogue (inference: a folded batchnorm or bias, then ReLU or PReLU), each output vector is
 * mapped as wasm_planes.ts's affine pass would map it (same operations, same bits) before it is stored:
 * its plane's scale, shift and slope at tables, tables + TABLE_BYTES, tables + 2 * TABLE_BYTES.
 * Output rows are written in order, a vector at a time: a row's last vector may spill up to three values
 * into the next row (rewritten next) or, after the last plane, into 16 bytes of slack.
 */
// EPILOGUE: 0 for none, else 1 + the index of its activation in AFFINE_ACTIVATIONS. The backward's: NEED (1:
// dx, 2: dW, 4: dx added onto the planes at DX), FULL and TAIL (whole vectors an output row, and whether a
// partial one follows), SCRATCH_BYTES (a staged plane's bytes).
const GEO = {
  M: 0, H: 1, W: 2, OH: 3, VECTORS: 4, OW_BYTES: 5, ROW_STEP: 6, ROW_BYTES: 7, PHASE_BYTES: 8, STRIDE: 9, TOP_BYTES: 10, PAD_LEFT: 11, TAPS: 12,
  EPILOGUE: 13, TABLE_BYTES: 14, NEED: 15, FULL: 16, TAIL: 17, SCRATCH_BYTES: 18,
} as const;
const MASK_AT = 80; // bytes: the tail vector's lane mask (all ones where a lane is an output)
const TAPS_AT = 96; // bytes: the tap offsets follow the fields
const NEED = { DX: 1, DW: 2, ONTO: 4 } as const;

const VARIANTS = ['taps', '3x3s1', '3x3s2'] as const;
type Variant = (typeof VARIANTS)[number];
const KERNEL_NAME = { taps: 'depthwiseTaps', '3x3s1': 'depthwise3x3s1', '3x3s2': 'depthwise3x3s2' } as const;

// Parameters, then the i32 locals, then the v128 ones.
// The backward's Y is dy, TABLES its dW sums (float64), DX dx's planes and D the scratch dx is summed in.
const [GEO_, X, WT, Y, S, PLANES, TABLES, DX, D] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const PARAMS = 9;
const I32_LOCALS = [...Object.keys(GEO) as (keyof typeof GEO)[],
  'M_LEFT', 'ROWS_LEFT', 'COUNT', 'SRC', 'DST', 'N', 'PH', 'IDX', 'PE', 'PO', 'P', 'Q', 'YP', 'YROW', 'T_LEFT', 'TP', 'WP', 'B1', 'B2', 'SP', 'X_SRC', 'OFF'] as const;
const L = Object.fromEntries(I32_LOCALS.map((name, i) => [name, PARAMS + i])) as Record<(typeof I32_LOCALS)[number], number>;
const V = PARAMS + I32_LOCALS.length; // v128 locals: ACC, two for staging (VA also the epilogue's scratch), the epilogue's scale, shift, slope, nine weights
const [ACC, VA, VB, SCALE, SHIFT, SLOPE, WEIGHT0] = [V, V + 1, V + 2, V + 3, V + 4, V + 5, V + 6];
const MASK = V + 15; // the backward's
const V128_LOCALS = 16;
const LOCAL_TYPES = [...new Array<number>(I32_LOCALS.length).fill(I32), ...new Array<number>(V128_LOCALS).fill(V128)];

const addTo = (e: Emit, local: number, bytes: number | number[]): void =>
  e(w.get(local), typeof bytes === 'number' ? w.i32(bytes) : bytes, w.add, w.set(local));

/**
 * Moves a plane between its array at SRC (advancing SRC past it) and its staged copy in the scratch at
 * `scratch` (see the file's comment): 'in' stages it, 'out' writes the staged values back over the plane,
 * 'outAdd' adds them onto it.
 */
function transfer(e: Emit, scratch: number, direction: 'in' | 'out' | 'outAdd'): void {
  const into = direction === 'in';
  /** The plane's vector at SRC + offset = the scratch's vector on the stack (or plus it). */
  const toPlane = (offset: number, value: () => void): void => {
    e(w.get(L.SRC));
    if (direction === 'outAdd') e(w.get(L.SRC), w.v128Load(offset));
    value();
    if (direction === 'outAdd') e(w.f32x4Add);
    e(w.v128Store(offset));
  };
  e(w.get(scratch), w.get(L.TOP_BYTES), w.add, w.set(L.DST), w.get(L.H), w.set(L.ROWS_LEFT));
  repeat(e, L.ROWS_LEFT, () => {
    e(w.get(L.W), w.set(L.N));
    // Column iw goes to phase (iw + padLeft) % s, index (iw + padLeft) / s.
    e(w.get(L.PAD_LEFT), w.get(L.STRIDE), w.remU, w.set(L.PH), w.get(L.PAD_LEFT), w.get(L.STRIDE), w.divU, w.set(L.IDX));
    e(w.get(L.STRIDE), w.i32(1), w.eq, w.if); // stride 1: the row at column padLeft, four columns at a time
    e(w.get(L.DST), w.get(L.PAD_LEFT), w.i32(4), w.mul, w.add, w.set(L.PE));
    whileAtLeast(e, L.N, 4, () => {
      if (into) e(w.get(L.PE), w.get(L.SRC), w.v128Load(0), w.v128Store(0));
      else toPlane(0, () => e(w.get(L.PE), w.v128Load(0)));
      addTo(e, L.PE, 16); addTo(e, L.SRC, 16); addTo(e, L.IDX, 4);
    });
    e(w.else);
    e(w.get(L.STRIDE), w.i32(2), w.eq, w.if); // stride 2: eight columns at a time, the even ones in phase PH, the odd ones in the other
    e(w.get(L.DST), w.get(L.PH), w.get(L.PHASE_BYTES), w.mul, w.add, w.get(L.IDX), w.i32(4), w.mul, w.add, w.set(L.PE));
    e(w.get(L.DST), w.i32(1), w.get(L.PH), w.sub, w.get(L.PHASE_BYTES), w.mul, w.add, w.get(L.IDX), w.get(L.PH), w.add, w.i32(4), w.mul, w.add, w.set(L.PO));
    whileAtLeast(e, L.N, 8, () => {
      if (into) {
        e(w.get(L.SRC), w.v128Load(0), w.set(VA), w.get(L.SRC), w.v128Load(16), w.set(VB));
        e(w.get(L.PE), w.get(VA), w.get(VB), w.shuffle([0, 2, 4, 6]), w.v128Store(0));
        e(w.get(L.PO), w.get(VA), w.get(VB), w.shuffle([1, 3, 5, 7]), w.v128Store(0));
      } else { // interleaved back: evens and odds
        e(w.get(L.PE), w.v128Load(0), w.set(VA), w.get(L.PO), w.v128Load(0), w.set(VB));
        toPlane(0, () => e(w.get(VA), w.get(VB), w.shuffle([0, 4, 1, 5])));
        toPlane(16, () => e(w.get(VA), w.get(VB), w.shuffle([2, 6, 3, 7])));
      }
      addTo(e, L.PE, 16); addTo(e, L.PO, 16); addTo(e, L.SRC, 32); addTo(e, L.IDX, 4);
    });
    e(w.end, w.end);
    repeat(e, L.N, () => { // the rest one by one
      e(w.get(L.DST), w.get(L.PH), w.get(L.PHASE_BYTES), w.mul, w.add, w.get(L.IDX), w.i32(4), w.mul, w.add, w.set(L.PE));
      if (into) e(w.get(L.PE), w.get(L.SRC), w.f32Load(0), w.f32Store(0));
      else {
        e(w.get(L.SRC));
        if (direction === 'outAdd') e(w.get(L.SRC), w.f32Load(0));
        e(w.get(L.PE), w.f32Load(0));
        if (direction === 'outAdd') e(w.f32Add);
        e(w.f32Store(0));
      }
      addTo(e, L.SRC, 4);
      e(w.get(L.PH), w.i32(1), w.add, w.tee(L.PH), w.get(L.STRIDE), w.eq, w.if, w.i32(0), w.set(L.PH), w.end);
      e(w.get(L.PH), w.eqz, w.get(L.IDX), w.add, w.set(L.IDX));
    });
    addTo(e, L.DST, w.get(L.ROW_BYTES));
  });
}

/** ACC = the four outputs at Q: taps summed in order, each a weight times the vector at Q + its offset. */
function outputVector(e: Emit, variant: Variant): void {
  if (variant === 'taps') {
    e(w.zero, w.set(ACC), w.get(GEO_), w.i32(TAPS_AT), w.add, w.set(L.TP), w.get(WT), w.set(L.WP), w.get(L.TAPS), w.set(L.T_LEFT));
    repeat(e, L.T_LEFT, () => {
      e(w.get(ACC), w.get(L.WP), w.load32Splat(0), w.get(L.Q), w.get(L.TP), w.i32Load(0), w.add, w.v128Load(0), w.f32x4Mul, w.f32x4Add, w.set(ACC));
      addTo(e, L.TP, 4); addTo(e, L.WP, 4);
    });
    return;
  }
  // The nine taps' bases and immediate offsets: row ki at Q + ki * rowBytes; stride 1: columns +0, +4, +8
  // of phase 0; stride 2: +0 of phase 0, +0 of phase 1 (+phaseBytes), +4 of phase 0.
  const tap = (t: number, base: number, offset: number): void => {
    e(w.get(base), w.v128Load(offset), w.get(WEIGHT0 + t), w.f32x4Mul);
    if (t > 0) e(w.get(ACC), w.f32x4Add);
    e(w.set(ACC));
  };
  for (let ki = 0; ki < 3; ki++) {
    const row = [L.Q, L.B1, L.B2][ki]!;
    if (ki > 0) e(w.get(ki === 1 ? L.Q : L.B1), w.get(L.ROW_BYTES), w.add, w.set(row));
    if (variant === '3x3s1') for (let kj = 0; kj < 3; kj++) tap(3 * ki + kj, row, 4 * kj);
    else {
      tap(3 * ki, row, 0);
      e(w.get(row), w.get(L.PHASE_BYTES), w.add, w.set(L.PE)); // phase 1 of this row
      tap(3 * ki + 1, L.PE, 0);
      tap(3 * ki + 2, row, 4);
    }
  }
}

/** Where the epilogue field is `mode`: ACC mapped by the plane's scale and shift, then the activation. */
function epilogue(e: Emit, mode: number, activation: AffineActivation): void {
  e(w.get(L.EPILOGUE), w.i32(mode), w.eq, w.if, w.get(ACC));
  affineVector(e, activation, SCALE, SHIFT, SLOPE, VA);
  e(w.set(ACC), w.end);
}

function depthwiseKernel(variant: Variant): WasmFunction {
  const { code, emit: e } = body();
  Object.entries(GEO).forEach(([name, field]) => e(w.get(GEO_), w.i32Load(4 * field), w.set(L[name as keyof typeof GEO])));
  e(w.get(X), w.set(L.SRC));
  repeat(e, PLANES, () => {
    transfer(e, S, 'in');
    e(w.get(L.M), w.set(L.M_LEFT));
    repeat(e, L.M_LEFT, () => { // output planes: weights at WT, values at Y
      if (variant !== 'taps') for (let t = 0; t < 9; t++) e(w.get(WT), w.load32Splat(4 * t), w.set(WEIGHT0 + t));
      e(w.get(L.EPILOGUE), w.if);
      e(w.get(TABLES), w.load32Splat(0), w.set(SCALE));
      e(w.get(TABLES), w.get(L.TABLE_BYTES), w.add, w.tee(L.TP), w.load32Splat(0), w.set(SHIFT));
      e(w.get(L.TP), w.get(L.TABLE_BYTES), w.add, w.load32Splat(0), w.set(SLOPE));
      e(w.end);
      e(w.get(S), w.set(L.P), w.get(Y), w.set(L.YROW), w.get(L.OH), w.set(L.ROWS_LEFT));
      repeat(e, L.ROWS_LEFT, () => {
        e(w.get(L.P), w.set(L.Q), w.get(L.YROW), w.set(L.YP), w.get(L.VECTORS), w.set(L.COUNT));
        repeat(e, L.COUNT, () => {
          outputVector(e, variant);
          AFFINE_ACTIVATIONS.forEach((activation, i) => epilogue(e, i + 1, activation));
          e(w.get(L.YP), w.get(ACC), w.v128Store(0));
          addTo(e, L.YP, 16); addTo(e, L.Q, 16);
        });
        addTo(e, L.P, w.get(L.ROW_STEP)); addTo(e, L.YROW, w.get(L.OW_BYTES));
      });
      e(w.get(L.YROW), w.set(Y)); // the next plane follows this one's OH rows
      addTo(e, WT, [...w.get(L.TAPS), ...w.i32(4), ...w.mul]); // the next plane's T weights
      addTo(e, TABLES, 4);
    });
  });
  return { name: KERNEL_NAME[variant], params: new Array<number>(PARAMS).fill(I32), locals: LOCAL_TYPES, code };
}

/**
 * Over the rows of an output plane (dy at YROW, a row of OW_BYTES apart) and the staged plane's row of each
 * (from P, ROW_STEP apart): `vector(masked)` on the four outputs at YP and their tap at Q, for each whole
 * vector, then the partial one (TAIL) with its lanes past the row masked.
 */
function overOutputs(e: Emit, vector: (masked: boolean) => void): void {
  e(w.get(L.OH), w.set(L.ROWS_LEFT));
  repeat(e, L.ROWS_LEFT, () => {
    e(w.get(L.P), w.set(L.Q), w.get(L.YROW), w.set(L.YP), w.get(L.FULL), w.set(L.COUNT));
    repeat(e, L.COUNT, () => { vector(false); addTo(e, L.YP, 16); addTo(e, L.Q, 16); });
    e(w.get(L.TAIL), w.if);
    vector(true);
    e(w.end);
    addTo(e, L.P, w.get(L.ROW_STEP)); addTo(e, L.YROW, w.get(L.OW_BYTES));
  });
}

/**
 * The gradients (geo, x, weights, dy, scratch, planes, sums, dx, dxScratch): for each of `planes` input
 * channels, its x plane staged (for dW), then for each of its M output planes (dy at Y) and each tap t:
 * dW: sums[t] += sum over outputs of dy * the tap's staged x (four float32 lanes, then float64);
 * dx: the tap's positions in the staged dx += w[t] * dy; then the staged dx back onto (or over) the dx
 * plane at DX. The partial vector's products are masked to +0.
 */
function backwardKernel(): WasmFunction {
  const { code, emit: e } = body();
  const need = (bit: number): void => e(w.get(L.NEED), w.i32(bit), w.and, w.if);
  Object.entries(GEO).forEach(([name, field]) => e(w.get(GEO_), w.i32Load(4 * field), w.set(L[name as keyof typeof GEO])));
  e(w.get(GEO_), w.v128Load(MASK_AT), w.set(MASK), w.get(X), w.set(L.SRC));
  repeat(e, PLANES, () => {
    need(NEED.DW); transfer(e, S, 'in'); e(w.end);
    need(NEED.DX); // dx is summed in the zeroed scratch D
    e(w.get(D), w.set(L.Q), w.get(L.SCRATCH_BYTES), w.i32(4), w.shrU, w.set(L.COUNT));
    repeat(e, L.COUNT, () => { e(w.get(L.Q), w.zero, w.v128Store(0)); addTo(e, L.Q, 16); });
    e(w.end);
    e(w.get(L.M), w.set(L.M_LEFT));
    repeat(e, L.M_LEFT, () => { // output planes: dy at Y, weights at WT, sums at TABLES
      e(w.get(GEO_), w.i32(TAPS_AT), w.add, w.set(L.TP), w.get(WT), w.set(L.WP), w.get(TABLES), w.set(L.SP), w.get(L.TAPS), w.set(L.T_LEFT));
      repeat(e, L.T_LEFT, () => {
        e(w.get(L.TP), w.i32Load(0), w.set(L.OFF));
        need(NEED.DW);
        e(w.zero, w.set(ACC), w.get(S), w.get(L.OFF), w.add, w.set(L.P), w.get(Y), w.set(L.YROW));
        overOutputs(e, (masked) => {
          e(w.get(ACC), w.get(L.YP), w.v128Load(0), w.get(L.Q), w.v128Load(0), w.f32x4Mul);
          if (masked) e(w.get(MASK), w.and128);
          e(w.f32x4Add, w.set(ACC));
        });
        e(w.get(L.SP), w.get(L.SP), w.f64Load(0), w.get(ACC), w.f64x2FromF32Low, w.get(ACC), highToLow, w.f64x2FromF32Low, w.f64x2Add);
        e(w.tee(VB), w.f64x2Lane(0), w.get(VB), w.f64x2Lane(1), w.f64Add, w.f64Add, w.f64Store(0));
        e(w.end);
        need(NEED.DX);
        e(w.get(L.WP), w.load32Splat(0), w.set(VA), w.get(D), w.get(L.OFF), w.add, w.set(L.P), w.get(Y), w.set(L.YROW));
        overOutputs(e, (masked) => {
          e(w.get(L.Q), w.get(L.Q), w.v128Load(0), w.get(VA), w.get(L.YP), w.v128Load(0), w.f32x4Mul);
          if (masked) e(w.get(MASK), w.and128);
          e(w.f32x4Add, w.v128Store(0));
        });
        e(w.end);
        addTo(e, L.TP, 4); addTo(e, L.WP, 4); addTo(e, L.SP, 8);
      });
      e(w.get(L.YROW), w.set(Y)); // the next dy plane follows this one's OH rows
      e(w.get(L.WP), w.set(WT), w.get(L.SP), w.set(TABLES));
    });
    need(NEED.DX);
    e(w.get(L.SRC), w.set(L.X_SRC), w.get(DX), w.set(L.SRC)); // transfer walks SRC: dx's plane here, x's after
    need(NEED.ONTO); transfer(e, D, 'outAdd'); e(w.else); transfer(e, D, 'out'); e(w.end);
    e(w.get(L.SRC), w.set(DX), w.get(L.X_SRC), w.set(L.SRC));
    e(w.end);
  });
  return { name: 'depthwiseBackward', params: new Array<number>(PARAMS).fill(I32), locals: LOCAL_TYPES, code };
}

function depthwiseFunctions(): WasmFunction[] {
  return [...VARIANTS.map(depthwiseKernel), backwardKernel()];
}

export function depthwiseModuleBytes(): Uint8Array {
  return moduleBytes(depthwiseFunctions());
}

// ---- running them ----

type Name = (typeof KERNEL_NAME)[Variant] | 'depthwiseBackward';
const kernels = passModule<Name>(depthwiseFunctions);
type Instance = NonNullable<ReturnType<typeof kernels>>;

/** Whether the depthwise kernels run here (WebAssembly SIMD, passes switched on). */
export function wasmDepthwiseAvailable(): boolean {
  return kernels() !== null;
}

/** The kernel for a geometry: unrolled for 3x3, undilated, horizontal stride 1 or 2 (any vertical stride). */
export function depthwiseVariant(g: ConvGeometry): Variant {
  const threeByThree = g.KH === 3 && g.KW === 3 && g.dilationH === 1 && g.dilationW === 1;
  return threeByThree && g.strideW <= 2 ? (g.strideW === 1 ? '3x3s1' : '3x3s2') : 'taps';
}

/**
 * y = the depthwise convolution of x (NCHW) with w ([C*M, 1, KH, KW]), every value written, mapped by the
 * epilogue when given; false where the kernels do not run (or a plane would not fit the module's memory),
 * y untouched.
 */
export function depthwisePlanes(x: ArrayLike<number>, wt: ArrayLike<number>, y: ArrayLike<number>, g: ConvGeometry, epilogue?: Epilogue): boolean {
  const layout = fittingLayout(g, x, wt, y);
  if (!layout) return false;
  const mode = epilogue ? 1 + AFFINE_ACTIVATIONS.indexOf(epilogue.activation) : 0;
  const tables = [wt, ...(epilogue ? [epilogue.scale, epilogue.shift, epilogue.slopes ?? new Float32Array(g.O)] : [])];
  const planes = g.N * g.C;
  runPass(PASS.DEPTHWISE, { arrays: [x, y] as Float32Array[], ints: [VARIANTS.indexOf(depthwiseVariant(g)), mode, ...geometryInts(g, layout)], tables, tableLength: Math.max(wt.length, g.O) }, 0, planes, 1, planes * work(g));
  return true;
}

/** Whether depthwisePlanes (and depthwiseBackwardPlanes) run for this geometry and these arrays. */
export function depthwiseRuns(g: ConvGeometry, ...arrays: ArrayLike<number>[]): boolean {
  return fittingLayout(g, ...arrays) !== null;
}

/** The staged layout, or null where the kernels do not run (no WebAssembly SIMD, not float32, a plane too large). */
function fittingLayout(g: ConvGeometry, ...arrays: ArrayLike<number>[]): StagedLayout | null {
  if (!kernels() || !isF32(...arrays) || g.padTop < 0 || g.padLeft < 0 || g.OH * g.OW === 0) return null;
  const layout = stagedLayout(g);
  return layout.rows * layout.rowBytes + 4 * (g.H * g.W + (g.O / g.C) * g.OH * g.OW) <= 1 << 26 ? layout : null;
}

/** Values one input plane's pass touches: its plane, and its output planes once a tap. */
const work = (g: ConvGeometry): number => g.H * g.W + (g.O / g.C) * g.OH * g.OW * g.KH * g.KW;

/** A geometry as a pass carries it to the threads: 14 integers, then the tap offsets (see readGeometry). */
const geometryInts = (g: ConvGeometry, l: StagedLayout): number[] =>
  [g.N, g.C, g.O / g.C, g.H, g.W, g.OH, g.OW, g.strideH, g.strideW, g.padLeft, l.rows, l.rowBytes, l.phaseBytes, l.topBytes, ...l.taps];

interface Geometry { N: number; C: number; M: number; H: number; W: number; OH: number; OW: number; strideH: number; strideW: number; padLeft: number; layout: StagedLayout; T: number }

function readGeometry(ints: number[]): Geometry {
  const [N, C, M, H, W, OH, OW, strideH, strideW, padLeft, rows, rowBytes, phaseBytes, topBytes] = ints as Tuple14;
  const taps = Int32Array.from(ints.slice(14));
  return { N, C, M, H, W, OH, OW, strideH, strideW, padLeft, layout: { rows, rowBytes, phaseBytes, topBytes, taps }, T: taps.length };
}
type Tuple14 = [number, number, number, number, number, number, number, number, number, number, number, number, number, number];

/** Writes the kernels' geometry block at 0: the GEO fields (`fields` for the pass's own), the tail mask, the tap offsets. */
function writeGeometry(k: Instance, d: Geometry, fields: Partial<Record<keyof typeof GEO, number>>): void {
  const { OW, layout: l } = d, geo = new Int32Array(k.memory.buffer, 0, TAPS_AT / 4 + d.T);
  const values: Record<keyof typeof GEO, number> = {
    M: d.M, H: d.H, W: d.W, OH: d.OH, VECTORS: Math.ceil(OW / 4), OW_BYTES: OW * 4, ROW_STEP: d.strideH * l.rowBytes, ROW_BYTES: l.rowBytes,
    PHASE_BYTES: l.phaseBytes, STRIDE: d.strideW, TOP_BYTES: l.topBytes, PAD_LEFT: d.padLeft, TAPS: d.T,
    EPILOGUE: 0, TABLE_BYTES: 0, NEED: 0, FULL: Math.floor(OW / 4), TAIL: OW % 4 ? 1 : 0, SCRATCH_BYTES: l.rows * l.rowBytes, ...fields,
  };
  for (const [name, field] of Object.entries(GEO)) geo[field] = values[name as keyof typeof GEO];
  geo.set([0, 1, 2, 3].map((lane) => (lane < OW % 4 ? -1 : 0)), MASK_AT / 4);
  geo.set(l.taps, TAPS_AT / 4);
}

/** Input planes per call: a chunk of about 64 k floats in and out (L2-resident), one plane at least. */
const PLANES_FLOATS = 65536;

/** Arrays x, y; ints the variant, the epilogue, the geometry; tables the weights (then the epilogue's scale, shift and slopes). Input planes [q0, q1) of the N*C. */
registerPass(PASS.DEPTHWISE, kernels, (k, a: PassArgs, q0, q1) => {
  const [variant, mode] = a.ints as [number, number], d = readGeometry(a.ints.slice(2));
  const { C, M, T } = d, O = C * M, scratchBytes = d.layout.rows * d.layout.rowBytes;
  const [xs, ys] = a.arrays as [Float32Array, Float32Array];
  const inPlane = d.H * d.W, outPlanes = M * d.OH * d.OW;
  const step = Math.max(1, Math.floor(PLANES_FLOATS / (inPlane + outPlanes)));
  const wAt = regionBytes(TAPS_AT / 4 + T), tablesAt = wAt + regionBytes(O * T), scratchAt = tablesAt + regionBytes(3 * O);
  const xAt = scratchAt + regionBytes(scratchBytes / 4, 16), yAt = xAt + regionBytes(step * inPlane);
  reserve(k, yAt + regionBytes(step * outPlanes, 16));
  writeGeometry(k, d, { EPILOGUE: mode, TABLE_BYTES: O * 4 });
  k.heap.set(a.tables[0]!, wAt / 4);
  if (mode) a.tables.slice(1).forEach((t, i) => k.heap.set(t, tablesAt / 4 + i * O));
  k.heap.fill(0, scratchAt / 4, scratchAt / 4 + scratchBytes / 4);
  const kernel = k[KERNEL_NAME[VARIANTS[variant]!]];
  for (let q = q0; q < q1;) {
    // A run of planes within one image (consecutive channels): their x and y planes are contiguous.
    const c = q % C, n = Math.min(step, q1 - q, C - c);
    k.heap.set(xs.subarray(q * inPlane, (q + n) * inPlane), xAt / 4);
    kernel(0, xAt, wAt + c * M * T * 4, yAt, scratchAt, n, tablesAt + c * M * 4);
    ys.set(k.heap.subarray(yAt / 4, yAt / 4 + n * outPlanes), q * outPlanes);
    q += n;
  }
});

/**
 * The gradients of a depthwise convolution (see backwardKernel), each when given: dx (written over, or
 * with `onto` added onto its values) and dw (written over); false where the kernels do not run. Threaded
 * over channels, so each thread's dW sums are its own.
 */
export function depthwiseBackwardPlanes(
  x: ArrayLike<number>, wt: ArrayLike<number>, dy: ArrayLike<number>, dx: ArrayLike<number> | null, dw: ArrayLike<number> | null, g: ConvGeometry, onto: boolean,
): boolean {
  const given = [dx, dw].filter((a) => a !== null) as ArrayLike<number>[];
  const layout = given.length > 0 ? fittingLayout(g, x, wt, dy, ...given) : null;
  if (!layout) return false;
  const need = (dx ? NEED.DX : 0) | (dw ? NEED.DW : 0) | (dx && onto ? NEED.ONTO : 0);
  const arrays = [x, dy, ...(dx ? [dx] : [])] as Float32Array[], T = g.KH * g.KW;
  const sums = runPass(PASS.DEPTHWISE_BACKWARD, { arrays, ints: [need, ...geometryInts(g, layout)], tables: [wt], tableLength: g.O * T }, dw ? 1 : 0, g.C, 1, g.N * g.C * work(g));
  if (dw) (dw as Float32Array).set(sums[0]!.subarray(0, g.O * T));
  return true;
}

/** Arrays x, dy (then dx); ints what is needed, the geometry; tables the weights; sums dW. Channels [c0, c1), every image. */
registerPass(PASS.DEPTHWISE_BACKWARD, kernels, (k, a: PassArgs, c0, c1) => {
  const need = a.ints[0]!, d = readGeometry(a.ints.slice(1)), { N, C, M, T } = d;
  const [xs, dys, dxs] = a.arrays as [Float32Array, Float32Array, Float32Array?];
  const inPlane = d.H * d.W, outPlanes = M * d.OH * d.OW, O = C * M, scratchBytes = d.layout.rows * d.layout.rowBytes;
  const step = Math.max(1, Math.floor(PLANES_FLOATS / (2 * inPlane + outPlanes)));
  const wAt = regionBytes(TAPS_AT / 4 + T), sumsAt = wAt + regionBytes(O * T), sAt = sumsAt + regionBytes(2 * O * T);
  const dAt = sAt + regionBytes(scratchBytes / 4, 16), xAt = dAt + regionBytes(scratchBytes / 4, 16), dyAt = xAt + regionBytes(step * inPlane);
  const dxAt = dyAt + regionBytes(step * outPlanes, 16);
  reserve(k, dxAt + regionBytes(step * inPlane));
  writeGeometry(k, d, { NEED: need });
  k.heap.set(a.tables[0]!, wAt / 4);
  k.heap64.fill(0, sumsAt / 8 + c0 * M * T, sumsAt / 8 + c1 * M * T);
  k.heap.fill(0, sAt / 4, sAt / 4 + scratchBytes / 4); // x's padding (the kernel zeroes dx's scratch itself)
  for (let n = 0; n < N; n++) {
    for (let c = c0; c < c1;) { // a run of channels of image n: contiguous planes
      const r = Math.min(step, c1 - c), q = n * C + c;
      if (need & NEED.DW) k.heap.set(xs.subarray(q * inPlane, (q + r) * inPlane), xAt / 4);
      k.heap.set(dys.subarray(q * outPlanes, (q + r) * outPlanes), dyAt / 4);
      if (need & NEED.ONTO) k.heap.set(dxs!.subarray(q * inPlane, (q + r) * inPlane), dxAt / 4);
      k.depthwiseBackward(0, xAt, wAt + c * M * T * 4, dyAt, sAt, r, sumsAt + c * M * T * 8, dxAt, dAt);
      if (need & NEED.DX) dxs!.set(k.heap.subarray(dxAt / 4, dxAt / 4 + r * inPlane), q * inPlane);
      c += r;
    }
  }
  if (need & NEED.DW) a.sums[0]!.set(k.heap64.subarray(sumsAt / 8 + c0 * M * T, sumsAt / 8 + c1 * M * T), c0 * M * T);
});
