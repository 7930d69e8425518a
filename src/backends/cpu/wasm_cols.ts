/**
 * im2col and col2im in WebAssembly: conv.ts's path for every convolution whose tap map is not too large
 * (all the face models' layers at their input sizes) or whose output rows are long enough for row runs (a
 * detector's first layers on a photo: there without a map). Where output rows are short, each value of a
 * cols block is gathered through a per-tap index map (its input's offset within the channel plane, or -1
 * for padding): one scalar load, select and store (four at once
 * where the four offsets are consecutive). JavaScript ran that gather at about 4 ns a value on small
 * planes (2.1 M values per image in a nn4.small2 training step, an eighth of its time). Where rows are
 * longer, blocks move run by run instead: an output row's pixels of one tap read one stretch of one input
 * row, copied (or added) with vector loads and stores, padding filled without a lookup per value. The
 * input planes a block reads (its channels, of its images) are copied into the module's memory (memcpy),
 * the block is gathered there and copied out. For col2im the planes of dx are copied in, the block is
 * added onto them in conv.ts's order (rows, then columns: the same float32 sums, bit for bit) and copied
 * back. Blocks of the GEMM kernel's products run in a second instance over its memory, where the GEMM
 * packs the block from or wrote it: the block itself is not copied.
 */
import { body, I32, repeat, V128, w, whileAtLeast, type WasmFunction, type WasmMemory } from './wasm_writer.js';
import { isF32, passModule, passModuleOver, regionBytes, reserve } from './wasm_module.js';
import type { ModuleRoom } from './gemm.js';

/**
 * cols (out, map, P, taps, tap, plane, rows, cols, q0, imageBytes, planeBytes, rowGap): rows x cols values
 * into out (row by row, rowGap bytes between rows), row r being tap `tap + r` (wrapping at taps onto the next
 * channel plane, planeBytes on) of the input planes at `plane`; columns are output pixels q0.. of that image
 * and on through the next images (imageBytes apart), P pixels each. map[t * P + q] (int32) is the input's
 * offset within its plane, or negative for padding (a zero). Addresses in bytes.
 * addCols (same, then slot): planes[...] += out[...] instead, padding's values added onto the scratch slot.
 */
function colsKernel(add: boolean): WasmFunction {
  const { code, emit: e } = body();
  const [OUT, MAP, P, TAPS, TAP, PLANE, ROWS, COLS, Q0, IMAGE_BYTES, PLANE_BYTES, ROW_GAP, SLOT] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const L = add ? 13 : 12, SRC = L, Q = L + 1, LEFT = L + 2, RUN = L + 3, M = L + 4, OFF = L + 5, ADDR = L + 6, OFFS = L + 7;
  repeat(e, ROWS, () => {
    e(w.get(PLANE), w.set(SRC), w.get(Q0), w.set(Q), w.get(COLS), w.set(LEFT));
    e(w.block, w.loop, w.get(LEFT), w.eqz, w.brIf(1)); // runs of one image's pixels
    e(w.get(P), w.get(Q), w.sub, w.get(LEFT), w.get(P), w.get(Q), w.sub, w.get(LEFT), w.ltS, w.select, w.set(RUN)); // min(P - q, left)
    e(w.get(LEFT), w.get(RUN), w.sub, w.set(LEFT));
    e(w.get(TAP), w.get(P), w.mul, w.get(Q), w.add, w.i32(4), w.mul, w.get(MAP), w.add, w.set(M));
    const one = (): void => {
      e(w.get(M), w.i32Load(0), w.tee(OFF), w.i32(4), w.mul, w.get(SRC), w.add, w.set(ADDR)); // padding reads or aims at the float before: harmless
      if (add) {
        e(w.get(ADDR), w.get(SLOT), w.get(OFF), w.i32(-1), w.gtS, w.select, w.tee(ADDR));
        e(w.get(ADDR), w.f32Load(0), w.get(OUT), w.f32Load(0), w.f32Add, w.f32Store(0));
      } else {
        e(w.get(OUT), w.get(ADDR), w.f32Load(0), w.f32Const0, w.get(OFF), w.i32(-1), w.gtS, w.select, w.f32Store(0));
      }
      e(w.get(OUT), w.i32(4), w.add, w.set(OUT), w.get(M), w.i32(4), w.add, w.set(M));
    };
    // Four pixels whose offsets are consecutive (no padding: a stride-1 tap inside the image) move as one
    // vector; others one by one. Each input value gets the same additions in the same order either way.
    whileAtLeast(e, RUN, 4, () => {
      e(w.get(M), w.v128Load(0), w.tee(OFFS), w.i32x4Lane(0), w.tee(OFF), w.i32(0), w.geS);
      e(w.get(OFFS), w.get(OFF), w.i32x4Splat, w.i32x4Lanes(0, 1, 2, 3), w.i32x4Add, w.i32x4Eq, w.i32x4AllTrue, w.and, w.if);
      e(w.get(OFF), w.i32(4), w.mul, w.get(SRC), w.add, w.set(ADDR));
      if (add) e(w.get(ADDR), w.get(ADDR), w.v128Load(0), w.get(OUT), w.v128Load(0), w.f32x4Add, w.v128Store(0));
      else e(w.get(OUT), w.get(ADDR), w.v128Load(0), w.v128Store(0));
      e(w.get(OUT), w.i32(16), w.add, w.set(OUT), w.get(M), w.i32(16), w.add, w.set(M));
      e(w.else);
      for (let i = 0; i < 4; i++) one();
      e(w.end);
    });
    repeat(e, RUN, one);
    e(w.get(SRC), w.get(IMAGE_BYTES), w.add, w.set(SRC), w.i32(0), w.set(Q), w.br(0), w.end, w.end);
    e(w.get(OUT), w.get(ROW_GAP), w.add, w.set(OUT)); // out's next row
    // the next row's tap, and channel plane when the taps wrap
    e(w.get(TAP), w.i32(1), w.add, w.tee(TAP), w.get(TAPS), w.eq, w.if);
    e(w.i32(0), w.set(TAP), w.get(PLANE), w.get(PLANE_BYTES), w.add, w.set(PLANE), w.end);
  });
  return { name: add ? 'addCols' : 'cols', params: new Array<number>(L).fill(I32), locals: [...new Array<number>(7).fill(I32), V128], code };
}

/**
 * rowCols (out, runs, segments, segmentCount, tapBytes, taps, tap, plane, rows, planeBytes, rowGap, step): the
 * same block, copied run by run instead of value by value. A segment is one output row's pixels within
 * the block: [image's byte offset from plane, output row * 12, first ow, end ow] (int32s, 16 bytes).
 * runs[t * OH + oh] (tapBytes = OH * 12 bytes a tap) is [offset within the plane of the input for ow = 0,
 * first ow inside the image, end ow inside] for tap t and output row oh (first = end where the tap's input
 * row is padding); consecutive pixels read inputs `step` bytes apart (4 * stride). Each segment's inside
 * pixels move four at a time (unaligned vectors; at stride 2, two loads and a shuffle), its padding
 * pixels are zeros. addRowCols adds them onto the planes instead (at stride 2, spread over two vectors'
 * even lanes); padding's values are dropped. A row of the block adds onto each input at most once (distinct pixels of one tap read
 * distinct inputs), so the values reach each input in addCols's order, bit for bit.
 */
function rowColsKernel(add: boolean): WasmFunction {
  const { code, emit: e } = body();
  const [OUT, RUNS, SEGS, SEG_COUNT, TAP_BYTES, TAPS, TAP, PLANE, ROWS, PLANE_BYTES, ROW_GAP, STEP] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const [SEG, LEFT, RUN_ROW, RUN, A, B, LO, HI, SRC, N] = [12, 13, 14, 15, 16, 17, 18, 19, 20, 21];
  const max = (x: number[], y: number[]): number[] => [...x, ...y, ...x, ...y, ...w.gtS, ...w.select];
  const min = (x: number[], y: number[]): number[] => [...x, ...y, ...x, ...y, ...w.ltS, ...w.select];
  const advance = (local: number, bytes: number[]): void => e(w.get(local), bytes, w.add, w.set(local));
  /** count pixels of padding: zeros into the block (cols), or skipped (addRowCols) */
  const padding = (count: number[]): void => {
    if (add) { e(count, w.i32(4), w.mul, w.get(OUT), w.add, w.set(OUT)); return; }
    e(count, w.set(N));
    repeat(e, N, () => { e(w.get(OUT), w.f32Const0, w.f32Store(0)); advance(OUT, w.i32(4)); });
  };
  repeat(e, ROWS, () => {
    e(w.get(RUNS), w.get(TAP), w.get(TAP_BYTES), w.mul, w.add, w.set(RUN_ROW));
    e(w.get(SEGS), w.set(SEG), w.get(SEG_COUNT), w.set(LEFT));
    repeat(e, LEFT, () => {
      e(w.get(SEG), w.i32Load(8), w.set(A), w.get(SEG), w.i32Load(12), w.set(B));
      e(w.get(RUN_ROW), w.get(SEG), w.i32Load(4), w.add, w.set(RUN));
      e(min(max(w.get(A), [...w.get(RUN), ...w.i32Load(4)]), w.get(B)), w.set(LO)); // the inside pixels: [LO, HI), maybe empty
      e(min(w.get(B), [...w.get(RUN), ...w.i32Load(8)]), w.set(HI));
      e(max(w.get(HI), w.get(LO)), w.set(HI));
      e(w.get(PLANE), w.get(SEG), w.i32Load(0), w.add, w.get(RUN), w.i32Load(0), w.i32(4), w.mul, w.add, w.get(LO), w.get(STEP), w.mul, w.add, w.set(SRC));
      padding([...w.get(LO), ...w.get(A), ...w.sub]);
      e(w.get(HI), w.get(LO), w.sub, w.set(N));
      e(w.get(STEP), w.i32(4), w.eq, w.if);
      whileAtLeast(e, N, 4, () => {
        if (add) e(w.get(SRC), w.get(SRC), w.v128Load(0), w.get(OUT), w.v128Load(0), w.f32x4Add, w.v128Store(0));
        else e(w.get(OUT), w.get(SRC), w.v128Load(0), w.v128Store(0));
        advance(OUT, w.i32(16)); advance(SRC, w.i32(16));
      });
      // Stride 2: the even lanes of two vectors of inputs. That reaches one float past the run's last
      // input (staged memory either way): im2col only reads it; col2im adds -0 to it and to every odd
      // lane, which leaves each value's bits as they were (x + -0 is x, -0 included).
      e(w.else, w.get(STEP), w.i32(8), w.eq, w.if);
      whileAtLeast(e, N, 4, () => {
        if (add) {
          for (const [half, lanes] of [[0, [0, 4, 1, 4]], [16, [2, 4, 3, 4]]] as const) {
            e(w.get(SRC), w.get(SRC), w.v128Load(half), w.get(OUT), w.v128Load(0), w.i32x4Const(0x80000000), w.shuffle([...lanes]), w.f32x4Add, w.v128Store(half));
          }
        } else e(w.get(OUT), w.get(SRC), w.v128Load(0), w.get(SRC), w.v128Load(16), w.shuffle([0, 2, 4, 6]), w.v128Store(0));
        advance(OUT, w.i32(16)); advance(SRC, w.i32(32));
      });
      e(w.end);
      e(w.end);
      repeat(e, N, () => {
        if (add) e(w.get(SRC), w.get(SRC), w.f32Load(0), w.get(OUT), w.f32Load(0), w.f32Add, w.f32Store(0));
        else e(w.get(OUT), w.get(SRC), w.f32Load(0), w.f32Store(0));
        advance(OUT, w.i32(4)); advance(SRC, w.get(STEP));
      });
      padding([...w.get(B), ...w.get(HI), ...w.sub]);
      advance(SEG, w.i32(16));
    });
    advance(OUT, w.get(ROW_GAP)); // out's next row
    e(w.get(TAP), w.i32(1), w.add, w.tee(TAP), w.get(TAPS), w.eq, w.if);
    e(w.i32(0), w.set(TAP), w.get(PLANE), w.get(PLANE_BYTES), w.add, w.set(PLANE), w.end);
  });
  return { name: add ? 'addRowCols' : 'rowCols', params: new Array<number>(12).fill(I32), locals: new Array<number>(10).fill(I32), code };
}

type ColsKernel = 'cols' | 'addCols' | 'rowCols' | 'addRowCols';
const functions = (): WasmFunction[] => [colsKernel(false), colsKernel(true), rowColsKernel(false), rowColsKernel(true)];
/** The kernels in a module of their own, and over another module's memory (the GEMM kernel's: see colsInModule). */
const kernels = passModule<ColsKernel>(functions), kernelsOver = passModuleOver<ColsKernel>(functions);

/** Whether these kernels run here (and the passes are switched on). */
export const wasmColsAvailable = (): boolean => kernels() !== null;

/**
 * Blocks moved through the map and by row runs in this thread so far, and of them those moved in place in
 * the GEMM kernel's memory (for tests: which kernels ran).
 */
export const colsBlocks = { map: 0, runs: 0, inPlace: 0 };

/**
 * The table each memory holds (the map or the row runs), where, and for which room: the blocks of one
 * convolution copy it once. In a GEMM's memory it lasts only as long as that GEMM's room (a later GEMM
 * may write there).
 */
const loadedTables = new WeakMap<WasmMemory, { table: Int32Array; at: number; room: ModuleRoom | undefined }>();
/** A memory as int32s (tables and segments), renewed when it is another memory or has grown. */
let ints = new Int32Array(0);

/**
 * A convolution's cols as the kernels see them (conv.ts's tap map, null where it would be too large, and
 * geometry), and where output rows are long enough for runs to pay, their row runs (see rowColsKernel:
 * [offset of ow = 0, first ow, end ow] for each tap and output row, consecutive pixels reading inputs
 * `stride` apart). One of the two at least.
 */
export interface TapLayout { map: Int32Array | null; taps: number; P: number; plane: number; rowRuns: { table: Int32Array; OW: number; stride: number } | null }

const SEGMENT = 4; // int32s: [image's byte offset, output row * 12, first ow, end ow]
let segments = new Int32Array(256);

/** The block's columns [q0, q0 + cols) from image 0 (of its staged images, `imageBytes` apart) as segments of one output row each. */
function rowSegments(q0: number, cols: number, P: number, OW: number, imageBytes: number): Int32Array {
  const most = (Math.ceil(cols / OW) + 2) * SEGMENT;
  if (segments.length < most) segments = new Int32Array(2 * most);
  let n = Math.floor(q0 / P), oh = Math.floor((q0 - n * P) / OW), ow = q0 - n * P - oh * OW, k = 0;
  for (let left = cols; left > 0; k += SEGMENT) {
    const end = Math.min(OW, ow + left);
    segments[k] = n * imageBytes; segments[k + 1] = oh * 12; segments[k + 2] = ow; segments[k + 3] = end;
    left -= end - ow;
    ow = 0;
    if ((oh += 1) * OW === P) { oh = 0; n++; }
  }
  return segments.subarray(0, k);
}

/**
 * Block rows [r0, r0+rows) x columns [c0, c0+cols) of the cols matrix of the images at x[base..] (imageStride
 * floats apart, `plane` floats a channel): into buf[at + r*ld + c], or, when add, added from there onto x
 * (col2im). False (nothing done) where the kernels do not run or the arrays are not float32.
 * The block's channel planes are staged in the module whole, or, when its columns lie in one image, only the
 * span of each plane its taps and pixels reach (a 512-column block of a 79x79 plane reads 8 of its 79 rows:
 * staging whole planes had copied more floats than the block gathers).
 * With a `room` in the memory buf views (the GEMM kernel's), the kernels run over that memory, staging
 * there, and read or write the block where it is: the copy of the block between the two modules' memories
 * (a KxK convolution's block is KH*KW times its share of the input) is saved.
 */
export function colsInModule(
  x: ArrayLike<number>, base: number, imageStride: number, layout: TapLayout,
  r0: number, rows: number, c0: number, cols: number, buf: ArrayLike<number>, at: number, ld: number, add: boolean, room?: ModuleRoom,
): boolean {
  if (!isF32(x, buf)) return false;
  const xs = x as Float32Array, b = buf as Float32Array;
  const inPlace = room !== undefined && b.buffer === room.memory.buffer;
  const k = inPlace ? kernelsOver(room.memory) : kernels();
  if (!k) return false;
  const { map, taps, P, plane, rowRuns } = layout;
  const n0 = Math.floor(c0 / P), images = Math.floor((c0 + cols - 1) / P) - n0 + 1;
  const ch0 = Math.floor(r0 / taps), channels = Math.floor((r0 + rows - 1) / taps) - ch0 + 1;
  const [lo, hi] = images === 1 ? planeSpan(layout, r0 - ch0 * taps, Math.min(rows, taps), c0 - n0 * P, cols) : [0, plane];
  const span = hi - lo, staged = channels * span; // floats per staged image
  // Memory from `origin` (0 in the module's own, the room's start in a GEMM's): [slot: addCols's scratch
  // for padding's values][the map or row runs][row segments][staged planes][the block, unless in place].
  // Staged plane c of image i at regionAt + (i * staged + c * span) * 4, seen by the kernels as starting
  // lo floats before.
  const origin = inPlace ? regionBytes(room.from / 4) : 0, tableAt = origin + 16;
  const table = rowRuns ? rowRuns.table : map!, segs = rowRuns ? rowSegments(c0 - n0 * P, cols, P, rowRuns.OW, staged * 4) : null;
  const segsAt = tableAt + regionBytes(table.length), regionAt = Math.max(segsAt + regionBytes(segs?.length ?? 0), regionBytes(lo, 16));
  const blockAt = regionAt + regionBytes(images * staged);
  // The block as the kernels see it: where it is (in place), or a copy with buf's row gaps, made in one
  // memcpy, where they are no wider than the block (a GEMM's tile); else rows cols apart (the threaded
  // GEMM's C, whose rows are the whole product's: its gaps would make every block copy all of C).
  const gaps = inPlace || (add && ld - cols <= cols), outAt = inPlace ? at * 4 : blockAt;
  reserve(k, inPlace ? blockAt + 16 : blockAt + ((rows - 1) * (gaps ? ld : cols) + cols) * 4); // 16: addRowCols at stride 2 adds -0 one float past a run
  if (ints.buffer !== k.memory.buffer) ints = new Int32Array(k.memory.buffer);
  const loaded = loadedTables.get(k.memory);
  if (loaded?.table !== table || loaded.at !== tableAt || loaded.room !== room) {
    ints.set(table, tableAt / 4);
    loadedTables.set(k.memory, { table, at: tableAt, room });
  }
  if (segs) ints.set(segs, segsAt / 4);
  const heap = k.heap, region = regionAt / 4, out = outAt / 4;
  const planeAt = (i: number, c: number): number => base + (n0 + i) * imageStride + (ch0 + c) * plane + lo; // in x
  const stage = (toX: boolean): void => {
    for (let i = 0; i < images; i++) {
      if (span === plane) { // the images' planes are contiguous: one copy each
        if (toX) xs.set(heap.subarray(region + i * staged, region + (i + 1) * staged), planeAt(i, 0));
        else heap.set(xs.subarray(planeAt(i, 0), planeAt(i, 0) + staged), region + i * staged);
        continue;
      }
      for (let c = 0; c < channels; c++) {
        const to = region + i * staged + c * span;
        if (toX) xs.set(heap.subarray(to, to + span), planeAt(i, c));
        else heap.set(xs.subarray(planeAt(i, c), planeAt(i, c) + span), to);
      }
    }
  };
  stage(false);
  const tap = r0 - ch0 * taps, planes = regionAt - lo * 4, rowGap = gaps ? (ld - cols) * 4 : 0;
  colsBlocks[segs ? 'runs' : 'map']++;
  if (inPlace) colsBlocks.inPlace++;
  const run = (kernel: 'cols' | 'addCols'): void => {
    if (segs) k[kernel === 'cols' ? 'rowCols' : 'addRowCols'](outAt, tableAt, segsAt, segs.length / SEGMENT, (P / rowRuns!.OW) * 12, taps, tap, planes, rows, span * 4, rowGap, 4 * rowRuns!.stride);
    else k[kernel](outAt, tableAt, P, taps, tap, planes, rows, cols, c0 - n0 * P, staged * 4, span * 4, rowGap, origin);
  };
  if (add) {
    if (!gaps) for (let r = 0; r < rows; r++) heap.set(b.subarray(at + r * ld, at + r * ld + cols), out + r * cols);
    else if (!inPlace) heap.set(b.subarray(at, at + (rows - 1) * ld + cols), out); // gaps read only, so harmless
    run('addCols');
    stage(true);
  } else { // written out row by row unless rows are contiguous in buf: the gaps may hold other values
    run('cols');
    if (inPlace) return true;
    if (ld === cols) b.set(heap.subarray(out, out + rows * cols), at);
    else for (let r = 0; r < rows; r++) b.set(heap.subarray(out + r * cols, out + (r + 1) * cols), at + r * ld);
  }
  return true;
}

/**
 * [lo, hi): the offsets within a channel plane that taps tap0.. (n of them, wrapping at taps) read for
 * output pixels [q0, q0 + count) of one image. A tap's offsets rise with the pixel (-1, padding, aside),
 * so its first and last readable pixels bound them. Without a map, the row runs of the output rows the
 * pixels touch (whole rows: a few more offsets at most).
 */
function planeSpan({ map, taps, P, rowRuns }: TapLayout, tap0: number, n: number, q0: number, count: number): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let j = 0; j < n; j++) {
    const t = (tap0 + j) % taps;
    if (!map) {
      const { table, OW, stride } = rowRuns!, OH = P / OW;
      for (let oh = Math.floor(q0 / OW); oh <= Math.floor((q0 + count - 1) / OW); oh++) {
        const at = (t * OH + oh) * 3, first = table[at + 1]!, end = table[at + 2]!;
        if (first < end) { lo = Math.min(lo, table[at]! + first * stride); hi = Math.max(hi, table[at]! + (end - 1) * stride + 1); }
      }
      continue;
    }
    const row = t * P;
    for (let q = q0; q < q0 + count; q++) if (map[row + q]! >= 0) { lo = Math.min(lo, map[row + q]!); break; }
    for (let q = q0 + count - 1; q >= q0; q--) if (map[row + q]! >= 0) { hi = Math.max(hi, map[row + q]! + 1); break; }
  }
  return lo < hi ? [lo, hi] : [0, 1]; // all padding: nothing is read (one float staged)
}
