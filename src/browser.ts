/**
 * facenet-ts for browsers: the tensors, ops, autograd, models and face pipeline of the Node entry
 * (index.ts), without what needs Node: files, worker threads, the weight registry and converters, and
 * the PNG/JPEG decoders. Models are fetched as converted .safetensors bytes (the Node side converts
 * them: `facenet convert`, or the registry's cache); images are given as pixels, e.g. from a canvas:
 *   const p = await createBrowserPipeline({ modelUrl: (id) => `/models/${id}.safetensors`, backend: 'gpu' });
 *   const [face] = await p.embed({ data: ctx.getImageData(0, 0, w, h).data, width: w, height: h, channels: 4 });
 * GPU: load gpu.js's browser build first (a <script> of gpu-browser.min.js defines the global GPU);
 * backend 'gpu' then takes webgl2, else webgl, else webasm, and logs why it fell back.
 */
import { FacenetError } from './errors.js';
import { loadModelBytes, type LoadedModel } from './models/load.js';
import { openPipeline, type FacePipeline, type PipelineOptions } from './face/face_pipeline.js';

export { Tensor, alloc, type DType, type TypedArray } from './tensor/tensor.js';
export { tensor, fromTypedArray, full, zeros, ones, scalar, randn, rand } from './tensor/creation.js';
export { sizeOf, type Shape, type PaddingSpec } from './tensor/shape.js';
export * from './ops/index.js';
export * as ops from './ops/index.js';
export { noGrad, isGradEnabled } from './autograd/tape.js';
export { tidy, keep, liveTensors, tensorBytes, resetPeakBytes } from './autograd/memory.js';
export { gradcheck, type GradcheckOptions, type GradcheckReport, type InputReport } from './autograd/gradcheck.js';
export { FacenetError, ShapeError, DTypeError, ArgumentError, DisposedError, WeightFileError } from './errors.js';
export { Rng } from './util/random.js';
export { setGemmKernel, gemmKernel, type GemmKernel } from './backends/cpu/gemm_fast.js';
export { useBackend, activeBackend, gpuDevice, closeGpu, type BackendName } from './backends/backend.js';
export { GpuError, type GpuMode, type DeviceCounters } from './backends/gpu/device.js';
export { Module, StateDictError, type LoadReport } from './nn/module.js';
export { Conv2d, BatchNorm, Linear, PReLU, ConvBnAct, Sequential, SeparableConv2d, Affine } from './nn/layers.js';
export { buildModel, ARCHITECTURES } from './models/factory.js';
export { loadModelBytes, type LoadedModel } from './models/load.js';
export { MODEL_SPECS, type ModelSpec, type Metric } from './models/specs.js';
export { tripletLoss, type TripletOptions } from './losses/triplet.js';
export { mineTriplets, type MiningMode } from './losses/mining.js';
export { SGD, AdaGrad, Adam, schedules, type Optimizer, type Schedule } from './train/optim.js';
export { decodeSafetensors, encodeSafetensors } from './io/safetensors.js';
export { FacePipeline, NoFaceError, distance, type PipelineOptions, type EmbeddedFace, type DetectedFace, type Comparison } from './face/face_pipeline.js';

export interface BrowserPipelineOptions extends Omit<PipelineOptions, 'from' | 'limits'> {
  /** Where the converted model with this registry id is served, e.g. (id) => `/models/${id}.safetensors`. */
  modelUrl: (id: string) => string;
  /** The registry's metric/threshold overrides for the embedding model (weights/models.json), if any. */
  registry?: Record<string, { metric?: string; threshold?: number }>;
}

/** The models a pipeline with these options loads: the embedder and its detector's networks. */
export function pipelineModels(o: Pick<PipelineOptions, 'model' | 'detector'>): string[] {
  const detector = o.detector === 'mtcnn' ? ['mtcnn-pnet', 'mtcnn-rnet', 'mtcnn-onet'] : ['tiny-face-detector', 'landmarks68'];
  return [o.model ?? 'dlib-resnet34', ...detector];
}

/** Fetches the models (in parallel), then builds the pipeline on the chosen backend. */
export async function createBrowserPipeline(options: BrowserPipelineOptions): Promise<FacePipeline> {
  const models = new Map<string, LoadedModel>();
  await Promise.all(pipelineModels(options).map(async (id) => {
    const url = options.modelUrl(id);
    const response = await fetch(url);
    if (!response.ok) throw new FacenetError('NOT_FOUND', `${url}: HTTP ${response.status} fetching model ${id}`);
    models.set(id, loadModelBytes(new Uint8Array(await response.arrayBuffer()), url));
  }));
  return openPipeline(options, {
    model: (id) => models.get(id) ?? (() => { throw new FacenetError('NOT_FOUND', `model ${id} was not fetched`); })(),
    registryEntry: (id) => options.registry?.[id],
  });
}
