/**
 * Naive reference implementations: the textbook definitions as nested loops over plain number arrays,
 * written independently of src/ (no shared helpers), so a fast kernel is checked against the maths,
 * not against itself. NCHW everywhere; `pad` is [top, bottom, left, right].
 */

export type Arr = ArrayLike<number>;

export interface RefConv {
  stride: [number, number];
  pad: [number, number, number, number];
  dilation: [number, number];
  groups: number;
}

export function refConv2d(x: Arr, xs: number[], w: Arr, ws: number[], bias: Arr | null, p: RefConv): { y: number[]; shape: number[] } {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [O, Cg, KH, KW] = ws as [number, number, number, number];
  const OH = Math.floor((H + p.pad[0] + p.pad[1] - (p.dilation[0] * (KH - 1) + 1)) / p.stride[0]) + 1;
  const OW = Math.floor((W + p.pad[2] + p.pad[3] - (p.dilation[1] * (KW - 1) + 1)) / p.stride[1]) + 1;
  const Og = O / p.groups;
  const y: number[] = new Array(N * O * OH * OW).fill(0);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = bias ? bias[o]! : 0;
          for (let c = 0; c < Cg; c++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * p.stride[0] - p.pad[0] + kh * p.dilation[0];
                const iw = ow * p.stride[1] - p.pad[2] + kw * p.dilation[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x[((n * C + g * Cg + c) * H + ih) * W + iw]! * w[((o * Cg + c) * KH + kh) * KW + kw]!;
              }
          y[((n * O + o) * OH + oh) * OW + ow] = s;
        }
    }
  return { y, shape: [N, O, OH, OW] };
}

export function refMatmul(a: Arr, M: number, K: number, b: Arr, N: number): number[] {
  const y: number[] = [];
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
      y.push(s);
    }
  return y;
}

export interface RefPool {
  kernel: [number, number];
  stride: [number, number];
  pad: [number, number, number, number];
  ceil: boolean;
}

/** PyTorch's pooling output size, written out independently of src/tensor/shape.ts. */
export function refPoolOut(size: number, k: number, s: number, before: number, after: number, ceil: boolean): number {
  const span = size + before + after - k;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= size + before) out -= 1;
  return out;
}

/** kind: max | avg (includePad or not) | l2 (sqrt of the sum of squares). */
export function refPool(x: Arr, xs: number[], p: RefPool, kind: 'max' | 'avg' | 'avg-exclude' | 'l2'): { y: number[]; shape: number[] } {
  const [N, C, H, W] = xs as [number, number, number, number];
  const OH = refPoolOut(H, p.kernel[0], p.stride[0], p.pad[0], p.pad[1], p.ceil);
  const OW = refPoolOut(W, p.kernel[1], p.stride[1], p.pad[2], p.pad[3], p.ceil);
  const y: number[] = [];
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let max = -Infinity, sum = 0, sumsq = 0, inside = 0, padded = 0;
          for (let kh = 0; kh < p.kernel[0]; kh++)
            for (let kw = 0; kw < p.kernel[1]; kw++) {
              const ih = oh * p.stride[0] - p.pad[0] + kh;
              const iw = ow * p.stride[1] - p.pad[2] + kw;
              // Positions inside the padded image count for the include-pad divisor.
              if (ih < H + p.pad[1] && iw < W + p.pad[3]) padded++;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const v = x[((n * C + c) * H + ih) * W + iw]!;
              max = Math.max(max, v);
              sum += v;
              sumsq += v * v;
              inside++;
            }
          y.push(kind === 'max' ? max : kind === 'avg' ? sum / padded : kind === 'avg-exclude' ? sum / inside : Math.sqrt(sumsq));
        }
  return { y, shape: [N, C, OH, OW] };
}

export function refLrn(x: Arr, xs: number[], size: number, alpha: number, beta: number, k: number, torchConvention: boolean): number[] {
  const [N, C, H, W] = xs as [number, number, number, number];
  const y: number[] = new Array(N * C * H * W);
  const half = (size - 1) / 2;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) {
          let ss = 0;
          for (let j = c - half; j <= c + half; j++) if (j >= 0 && j < C) ss += x[((n * C + j) * H + h) * W + w]! ** 2;
          const i = ((n * C + c) * H + h) * W + w;
          y[i] = x[i]! / (k + (torchConvention ? alpha / size : alpha) * ss) ** beta;
        }
  return y;
}

export function refBatchNorm(x: Arr, xs: number[], gamma: Arr, beta: Arr, mean: Arr | null, variance: Arr | null, eps: number): number[] {
  const N = xs[0]!, C = xs[1]!, P = xs.slice(2).reduce((a, b) => a * b, 1);
  const y: number[] = new Array(N * C * P);
  for (let c = 0; c < C; c++) {
    const vals: number[] = [];
    for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) vals.push(x[(n * C + c) * P + p]!);
    const m = mean ? mean[c]! : vals.reduce((a, b) => a + b, 0) / vals.length;
    const v = variance ? variance[c]! : vals.reduce((a, b) => a + (b - m) ** 2, 0) / vals.length;
    for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) {
      const i = (n * C + c) * P + p;
      y[i] = gamma[c]! * (x[i]! - m) / Math.sqrt(v + eps) + beta[c]!;
    }
  }
  return y;
}

/** Row-wise L2 normalization of [N, D]: x / max(|x|, eps). */
export function refL2NormalizeRows(x: Arr, N: number, D: number, eps: number): number[] {
  const y: number[] = [];
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[n * D + d]! ** 2;
    for (let d = 0; d < D; d++) y.push(x[n * D + d]! / Math.max(Math.sqrt(ss), eps));
  }
  return y;
}

export function refSoftmaxRows(x: Arr, N: number, D: number): number[] {
  const y: number[] = [];
  for (let n = 0; n < N; n++) {
    const row = Array.from({ length: D }, (_, d) => x[n * D + d]!);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const z = e.reduce((a, b) => a + b, 0);
    y.push(...e.map((v) => v / z));
  }
  return y;
}

/** Multi-index helpers for the shape ops. */
export function unravel(i: number, shape: number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

export function ravel(idx: number[], shape: number[]): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d]! + idx[d]!;
  return i;
}
