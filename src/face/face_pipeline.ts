/**
 * The face pipeline: decode -> detect -> landmarks -> align -> embed, and compare / distance on top.
 * This is the platform-free core: where models and image decoders come from is given by PipelineSources.
 * In Node, createPipeline (pipeline.ts) takes models from the registry or .safetensors files and decodes
 * PNG/JPEG; in a browser (browser.ts), models are fetched as bytes and images arrive as pixels.
 * Detectors: 'tiny' (face-api's tiny face detector + 68-point landmarks) or 'mtcnn' (5 points).
 */
import { synchronously, useBackend, type BackendName } from '../backends/backend.js';
import { ArgumentError, FacenetError } from '../errors.js';
import { resetPeakBytes, tensorBytes, tidyAndRecycle } from '../autograd/memory.js';
import type { ImageLimits, RgbImage } from '../io/image.js';
import { imagesToTensor, resizeBilinear } from '../io/transform.js';
import type { LoadedModel } from '../models/load.js';
import { MODEL_SPECS, type Metric, type ModelSpec } from '../models/specs.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PNet, RNet, ONet } from '../models/mtcnn.js';
import type { TinyFaceDetector } from '../models/tiny_face_detector.js';
import type { FaceLandmark68Net } from '../models/landmarks68.js';
import { MtcnnDetector } from './mtcnn_detector.js';
import { TinyDetector } from './tiny_detector.js';
import { fivePoints, landmarks68, type Point } from './landmarks.js';
import { alignFace } from './align.js';
import type { Corners } from './boxes.js';

export type ImageInput = string | Uint8Array | { data: ArrayLike<number>; width: number; height: number; channels: 1 | 3 | 4 };
export type Pick = 'largest' | 'center' | 'all';
const PICKS: readonly Pick[] = ['largest', 'center', 'all'];

export interface PipelineOptions {
  /** Registry id (see `facenet models`) or a path to a converted .safetensors file. Default: dlib-resnet34. */
  model?: string;
  detector?: 'tiny' | 'mtcnn';
  /** Smallest face to find, in pixels (MTCNN; default 20). */
  minFaceSize?: number;
  /** Detection score threshold (tiny detector; default 0.5). */
  scoreThreshold?: number;
  /** Tiny detector input sides (multiples of 32; default [416, 224, 160]). */
  detectorInputSizes?: number[];
  /** Mirror directory of source weights (default: FACENET_WEIGHTS_MIRROR). */
  from?: string;
  limits?: ImageLimits;
  /** Per-image time budget in ms (checked between stages); over it, the image fails with code TIMEOUT. */
  timeoutMs?: number;
  /**
   * Most tensor memory one embedding batch may hold, in bytes (default 1 GiB). A larger batch (many faces
   * in one photo, or run() with many crops) is embedded in chunks that fit; one crop over it is refused
   * with code BATCH_MEMORY.
   */
  maxBatchBytes?: number;
  /**
   * 'cpu' (default), 'gpu' (the best gpu.js mode here) or 'gpu:MODE'. The backend is process-wide:
   * creating a pipeline switches every op in the process to it.
   */
  backend?: BackendName;
  log?: (line: string) => void;
}

export interface DetectedFace {
  /** [x, y, width, height] in image pixels. */
  box: [number, number, number, number];
  score: number;
  /** Eye centers (image left first), nose tip, mouth corners. */
  landmarks: Point[];
  warnings: string[];
}

export interface EmbeddedFace extends DetectedFace {
  embedding: Float32Array;
}

export class NoFaceError extends FacenetError {
  readonly file: string;
  constructor(file: string) {
    super('NO_FACE', `${file}: no face found`);
    this.file = file;
  }
}

export interface Comparison {
  distance: number;
  metric: Metric;
  threshold: number;
  same: boolean;
  model: string;
}

export function distance(a: ArrayLike<number>, b: ArrayLike<number>, metric: Metric): number {
  if (a.length !== b.length) throw new ArgumentError('distance', `embeddings of ${a.length} and ${b.length} values: compare embeddings of one model`);
  let dot = 0, na = 0, nb = 0, sq = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    sq += (x - y) ** 2;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (metric === 'squared-euclidean') return sq;
  if (metric === 'euclidean') return Math.sqrt(sq);
  return 1 - dot / Math.max(Math.sqrt(na * nb), 1e-12);
}

const isBytes = (a: unknown): boolean => a instanceof Uint8Array || a instanceof Uint8ClampedArray;

/**
 * Raw pixels to RGB. 8-bit values only: a Uint8Array or Uint8ClampedArray as is, any other array only if
 * every value is an integer in 0-255 (a float image in [0, 1] would otherwise become black, and 300 would
 * wrap to 44, without a word).
 */
function toRgb(input: Exclude<ImageInput, string | Uint8Array>): RgbImage {
  const { width, height, channels } = input;
  const src = input.data;
  if (![1, 3, 4].includes(channels)) throw new FacenetError('BAD_IMAGE', `raw image: channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got ${String(channels)}`);
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) throw new FacenetError('BAD_IMAGE', `raw image: width and height must be positive integers, got ${String(width)}x${String(height)}`);
  if (src.length !== width * height * channels) throw new FacenetError('BAD_IMAGE', `raw image: ${src.length} values for ${width}x${height}x${channels} (${width * height * channels} expected)`);
  if (!isBytes(src)) {
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      if (!(Number.isInteger(v) && v >= 0 && v <= 255)) throw new FacenetError('BAD_IMAGE', `raw image: pixel values must be 8-bit integers 0-255, got ${v} at index ${i} (scale a float image in [0, 1] by 255 and round it)`);
    }
  }
  const data = new Uint8Array(width * height * 3);
  if (channels === 3) data.set(src); // converts each value as an assignment would (a photo: 8 -> 2.3 ms)
  else {
    const step = channels, green = channels === 1 ? 0 : 1, blue = channels === 1 ? 0 : 2; // gray: all three from it; RGBA: alpha dropped
    for (let p = 0, i = 0; p < 3 * width * height; p += 3, i += step) {
      data[p] = src[i]!;
      data[p + 1] = src[i + green]!;
      data[p + 2] = src[i + blue]!;
    }
  }
  return { data, width, height };
}

/** Files being decoded ahead (io/read_ahead.ts): take(path) gives the next one's image, or null: decode it here. */
export interface FilesAhead {
  take(path: string): Promise<RgbImage | null> | null;
  close(): void;
}

/** Where a pipeline gets its models and image decoders. */
export interface PipelineSources {
  /** The model for a registry id or a file path. */
  model(idOrPath: string): LoadedModel;
  /** The registry's metric and threshold for an embedding model id, where it sets them. */
  registryEntry?(id: string): { metric?: string; threshold?: number } | undefined;
  /** Decoders for paths and encoded bytes; without them only raw pixels are accepted. */
  images?: {
    read(path: string, limits: ImageLimits): RgbImage;
    decode(bytes: Uint8Array, name: string, limits: ImageLimits): RgbImage;
    /** Decodes a list of files ahead of their use, elsewhere (Node: a worker thread); null where it cannot. */
    readAhead?(paths: readonly string[], limits: ImageLimits): FilesAhead | null;
  };
}

/** The spec of a loaded embedding model, with the registry's metric and threshold where it gives them. */
function specFor(id: string, loaded: LoadedModel, sources: PipelineSources): ModelSpec {
  const base = MODEL_SPECS[loaded.architecture] ?? MODEL_SPECS[loaded.metadata.model_id ?? id] ?? MODEL_SPECS[id];
  if (!base) throw new FacenetError('NOT_EMBEDDING', `${id} (${loaded.architecture}) is not an embedding model`);
  const entry = sources.registryEntry?.(id);
  return { ...base, id, ...(entry?.metric ? { metric: entry.metric as Metric } : {}), ...(entry?.threshold !== undefined ? { threshold: entry.threshold } : {}) };
}

const DEFAULT_MAX_BATCH_BYTES = 2 ** 30;

export class FacePipeline {
  /** What runs the networks: 'cpu', 'gpu:headlessgl', 'gpu:webasm', ... */
  backend = 'cpu';
  private constructor(
    readonly model: string,
    readonly spec: ModelSpec,
    private readonly embedder: LoadedModel['model'],
    readonly detectorName: 'tiny' | 'mtcnn',
    private readonly detector: TinyDetector | MtcnnDetector,
    private readonly landmarkNet: FaceLandmark68Net | null,
    private readonly limits: ImageLimits,
    private readonly timeoutMs: number | undefined,
    private readonly maxBatchBytes: number,
    private readonly images: PipelineSources['images'],
  ) {}

  private bytesPerCrop = 0;

  /** Tensor bytes one crop takes through the embedding model (measured on the first batch; 0 before). */
  get batchBytesPerCrop(): number {
    return this.bytesPerCrop;
  }

  static create(o: PipelineOptions, sources: PipelineSources): FacePipeline {
    const [id, ...detectorIds] = pipelineModels(o) as [string, ...string[]];
    const loaded = sources.model(id);
    const spec = specFor(id, loaded, sources);
    const detectorName = o.detector ?? 'tiny';
    const [first, second, third] = detectorIds.map((name) => sources.model(name).model);
    const detector = detectorName === 'mtcnn'
      ? new MtcnnDetector(first as PNet, second as RNet, third as ONet, { minFaceSize: o.minFaceSize })
      : new TinyDetector(first as TinyFaceDetector, { inputSizes: o.detectorInputSizes, scoreThreshold: o.scoreThreshold });
    const landmarkNet = detectorName === 'tiny' ? (second as FaceLandmark68Net) : null;
    return new FacePipeline(id, spec, loaded.model, detectorName, detector, landmarkNet, o.limits ?? {}, o.timeoutMs, o.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES, sources.images);
  }

  private ahead: FilesAhead | null = null;

  /**
   * Decodes these files ahead of their use where the sources can (Node: on a worker thread, see
   * io/read_ahead.ts), while the networks work on the ones before: for going through a list of files
   * with embed / detect / embedAligned, in this order (a file taken out of order is decoded as usual).
   * A new list replaces the previous one; an empty list stops reading ahead.
   */
  readAhead(paths: readonly string[]): void {
    this.ahead?.close();
    this.ahead = paths.length > 0 ? this.images?.readAhead?.(paths, this.limits) ?? null : null;
  }

  /** loadImage, taking a file's image from the read-ahead when it has it. */
  private async image(input: ImageInput): Promise<RgbImage> {
    const ahead = typeof input === 'string' ? this.ahead?.take(input) : null;
    return (ahead && await ahead) ?? this.loadImage(input);
  }

  loadImage(input: ImageInput, name = '<buffer>'): RgbImage {
    if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
      const raw = input as Partial<Exclude<ImageInput, string | Uint8Array>> | null;
      if (typeof raw !== 'object' || raw === null || typeof raw.data?.length !== 'number') {
        throw new FacenetError('BAD_IMAGE', `an image must be a file path, encoded image bytes (a Uint8Array or Buffer), or raw pixels { data, width, height, channels }; got ${raw === null ? 'null' : typeof raw}`);
      }
      return toRgb(input);
    }
    if (!this.images) throw new FacenetError('UNSUPPORTED_FORMAT', `${typeof input === 'string' ? input : name}: this pipeline has no image decoder (in a browser, pass pixels: { data, width, height, channels })`);
    return typeof input === 'string' ? this.images.read(input, this.limits) : this.images.decode(input, name, this.limits);
  }

  /** Detection and landmarks read scores mid-graph: on an asynchronous device (WebGPU) they run on the CPU. */
  private geometry(img: RgbImage, pick: Pick): { face: DetectedFace; l68: Point[] | null; corners: Corners }[] {
    if (!PICKS.includes(pick)) throw new ArgumentError('pick', `must be ${PICKS.join(', ')}, got ${String(pick)}`);
    return synchronously(() => this.findFaces(img, pick));
  }

  private findFaces(img: RgbImage, pick: Pick): { face: DetectedFace; l68: Point[] | null; corners: Corners }[] {
    let raw = this.detector.detect(img);
    if (pick !== 'all' && raw.length > 1) {
      const score = (b: Corners): number => pick === 'largest'
        ? (b[2] - b[0]) * (b[3] - b[1])
        : -Math.hypot((b[0] + b[2]) / 2 - img.width / 2, (b[1] + b[3]) / 2 - img.height / 2);
      raw = [raw.reduce((best, d) => (score(d.box) > score(best.box) ? d : best))];
    }
    return raw.map((d) => {
      const l68 = this.landmarkNet ? landmarks68(this.landmarkNet, img, d.box) : null;
      // MTCNN reports pixel indices; pixel centers are at +0.5 in our continuous coordinates.
      const l5 = l68 ? fivePoints(l68) : d.landmarks!.map(([x, y]): Point => [x + 0.5, y + 0.5]);
      const [x1, y1, x2, y2] = d.box;
      return { face: { box: [x1, y1, x2 - x1, y2 - y1], score: d.score, landmarks: l5, warnings: [] }, l68, corners: d.box };
    });
  }

  /** Faces with boxes, scores and 5 landmarks (pick: 'all' by default). */
  async detect(input: ImageInput, options: { pick?: Pick } = {}): Promise<DetectedFace[]> {
    const img = await this.image(input);
    return this.geometry(img, options.pick ?? 'all').map((g) => g.face);
  }

  /** Throws TIMEOUT when an image has used up its time budget (checked between pipeline stages). */
  private checkDeadline(started: number, input: ImageInput): void {
    if (this.timeoutMs !== undefined && performance.now() - started > this.timeoutMs) {
      throw new FacenetError('TIMEOUT', `${typeof input === 'string' ? input : '<image>'}: processing took longer than ${this.timeoutMs} ms (timeout)`);
    }
  }

  /** Detects, aligns and embeds every face (or the picked one). An image without faces gives []. */
  async embed(input: ImageInput, options: { pick?: Pick } = {}): Promise<EmbeddedFace[]> {
    const started = performance.now();
    const img = await this.image(input);
    this.checkDeadline(started, input);
    const found = this.geometry(img, options.pick ?? 'all');
    this.checkDeadline(started, input);
    if (found.length === 0) return [];
    const aligned = found.map((g) => alignFace(img, { box: g.corners, landmarks5: g.face.landmarks, landmarks68: g.l68 }, this.spec));
    const embeddings = await this.run(aligned.map((a) => a.image));
    return found.map((g, i) => ({ ...g.face, warnings: aligned[i]!.warnings, embedding: embeddings[i]! }));
  }

  /** Embeds an already aligned face: the whole image resized to the model input. */
  async embedAligned(input: ImageInput): Promise<Float32Array> {
    const img = await this.image(input);
    const [H, W] = this.spec.inputSize;
    return (await this.run([img.width === W && img.height === H ? img : resizeBilinear(img, W, H)]))[0]!;
  }

  /**
   * Embeds aligned crops (each exactly the model's input size), in as few batches as the batch memory
   * limit allows. The first crop goes alone, to measure what one crop costs. How crops are batched changes
   * the embeddings only by float32 rounding (the GEMM blocking follows the batch size).
   */
  async run(images: RgbImage[]): Promise<Float32Array[]> {
    const [H, W] = this.spec.inputSize;
    images.forEach((img, i) => {
      if (img.width !== W || img.height !== H) {
        throw new FacenetError('BAD_IMAGE', `aligned crop ${i} is ${img.width}x${img.height}; ${this.model} takes ${W}x${H} crops (align them, or use embedAligned to resize)`);
      }
    });
    const out: Float32Array[] = [];
    let next = 0;
    if (this.bytesPerCrop === 0 && images.length > 0) {
      const before = tensorBytes().live;
      resetPeakBytes();
      out.push(...await this.embedBatch(images.slice(0, 1)));
      this.bytesPerCrop = Math.max(1, tensorBytes().peak - before);
      next = 1;
    }
    if (this.bytesPerCrop > this.maxBatchBytes) {
      const mb = (b: number): string => (b / 2 ** 20).toFixed(1);
      throw new FacenetError('BATCH_MEMORY', `${this.model} needs ${mb(this.bytesPerCrop)} MB of tensors per face, over the batch memory limit of ${mb(this.maxBatchBytes)} MB (raise maxBatchBytes / --max-batch-mb)`);
    }
    const chunk = Math.floor(this.maxBatchBytes / this.bytesPerCrop);
    for (; next < images.length; next += chunk) out.push(...await this.embedBatch(images.slice(next, next + chunk)));
    return out;
  }

  private async embedBatch(images: RgbImage[]): Promise<Float32Array[]> {
    // Batches of the same size reuse the previous batch's buffers (the embeddings are copied out).
    const out = tidyAndRecycle(() => this.embedder.forward(imagesToTensor(images, this.spec.normalization)) as Tensor);
    try {
      const values = await out.dataAsync(); // a wait only on WebGPU, where the whole forward pass was queued above
      const d = this.spec.embeddingDim;
      return images.map((_, i) => Float32Array.from(values.subarray(i * d, (i + 1) * d)));
    } finally {
      out.dispose();
    }
  }

  distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
    return distance(a, b, this.spec.metric);
  }

  /** Compares the largest face of each image. Throws NoFaceError (code NO_FACE) naming the file. */
  async compare(a: ImageInput, b: ImageInput, names: [string, string] = ['a', 'b']): Promise<Comparison> {
    const [fa, fb] = [await this.embed(a, { pick: 'largest' }), await this.embed(b, { pick: 'largest' })];
    if (!fa[0]) throw new NoFaceError(typeof a === 'string' ? a : names[0]);
    if (!fb[0]) throw new NoFaceError(typeof b === 'string' ? b : names[1]);
    const d = this.distance(fa[0].embedding, fb[0].embedding);
    return { distance: d, metric: this.spec.metric, threshold: this.spec.threshold, same: d <= this.spec.threshold, model: this.model };
  }
}

/**
 * The registry ids a pipeline with these options loads, embedder first, then its detector's networks:
 * MTCNN's P/R/O-nets, or the tiny face detector and the 68-point landmark net.
 */
export function pipelineModels(o: { model?: string; detector?: PipelineOptions['detector'] }): string[] {
  if (o.detector !== undefined && o.detector !== 'tiny' && o.detector !== 'mtcnn') throw new ArgumentError('createPipeline', `detector must be 'tiny' or 'mtcnn', got ${JSON.stringify(o.detector)}`);
  const detector = o.detector === 'mtcnn' ? ['mtcnn-pnet', 'mtcnn-rnet', 'mtcnn-onet'] : ['tiny-face-detector', 'landmarks68'];
  return [o.model ?? 'dlib-resnet34', ...detector];
}

/**
 * Refuses options outside their domain by name (ARGUMENT): a score threshold of 5 or an empty list of
 * input sizes would find no face without a word, a NaN threshold crashed in the decoder, a timeout that is
 * not a number was ignored.
 */
export function checkPipelineOptions(o: PipelineOptions): void {
  pipelineModels(o); // the detector's name
  const positive = (v: unknown): boolean => typeof v === 'number' && v > 0; // Infinity: no limit
  const checks: [keyof PipelineOptions | `limits.${keyof ImageLimits}`, unknown, boolean, string][] = [
    ['scoreThreshold', o.scoreThreshold, typeof o.scoreThreshold === 'number' && o.scoreThreshold >= 0 && o.scoreThreshold < 1, 'a number in [0, 1)'],
    ['minFaceSize', o.minFaceSize, positive(o.minFaceSize), 'a positive number of pixels'],
    ['timeoutMs', o.timeoutMs, positive(o.timeoutMs), 'a positive number of milliseconds'],
    ['maxBatchBytes', o.maxBatchBytes, positive(o.maxBatchBytes), 'a positive number of bytes'],
    ['detectorInputSizes', o.detectorInputSizes, Array.isArray(o.detectorInputSizes) && o.detectorInputSizes.length > 0, 'a non-empty list of sides'],
    ['limits.maxPixels', o.limits?.maxPixels, positive(o.limits?.maxPixels), 'a positive number of pixels'],
    ['limits.maxFileBytes', o.limits?.maxFileBytes, positive(o.limits?.maxFileBytes), 'a positive number of bytes'],
  ];
  for (const [name, value, ok, what] of checks) {
    if (value !== undefined && !ok) throw new ArgumentError('createPipeline', `${name} must be ${what}, got ${typeof value === 'number' ? String(value) : JSON.stringify(value)}`);
  }
}

/** Switches to the options' backend and builds the pipeline from the given sources. */
export async function openPipeline(options: PipelineOptions, sources: PipelineSources): Promise<FacePipeline> {
  checkPipelineOptions(options); // before the backend switches
  const backend = await useBackend(options.backend ?? 'cpu', { log: options.log });
  const pipeline = FacePipeline.create(options, sources);
  pipeline.backend = backend;
  return pipeline;
}
