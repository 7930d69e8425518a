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
import { openPipeline, pipelineModels, type FacePipeline, type PipelineOptions } from './face/face_pipeline.js';

export * from './core.js';

export interface BrowserPipelineOptions extends Omit<PipelineOptions, 'from' | 'limits'> {
  /** Where the converted model with this registry id is served, e.g. (id) => `/models/${id}.safetensors`. */
  modelUrl: (id: string) => string;
  /** The registry's metric/threshold overrides for the embedding model (weights/models.json), if any. */
  registry?: Record<string, { metric?: string; threshold?: number }>;
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
    model: (id) => {
      const model = models.get(id);
      if (!model) throw new FacenetError('NOT_FOUND', `model ${id} was not fetched`);
      return model;
    },
    registryEntry: (id) => options.registry?.[id],
  });
}
