/**
 * The face pipeline in Node: decode -> detect -> landmarks -> align -> embed, and compare / distance on top.
 *   const p = await createPipeline({ model: 'dlib-resnet34', detector: 'tiny' });
 *   const faces = await p.embed('photo.jpg');           // [{ box, score, landmarks, embedding, warnings }]
 *   const r = await p.compare('a.jpg', 'b.jpg');          // { distance, metric, threshold, same, model }
 * Models come from the registry (fetched, verified and converted on first use) or a .safetensors file;
 * images from files or bytes (PNG/JPEG). The pipeline itself is face_pipeline.ts, which a browser uses too.
 */
import { decodeImage, readImage } from '../io/image.js';
import { ReadAhead } from '../io/read_ahead.js';
import { fetchModel, registry } from '../io/registry.js';
import { loadModelFile } from '../models/load.js';
import { openPipeline, type FacePipeline, type PipelineOptions, type PipelineSources } from './face_pipeline.js';

export * from './face_pipeline.js';

/** Models from the registry (or .safetensors paths) and the PNG/JPEG decoders. */
export function nodeSources(options: Pick<PipelineOptions, 'from' | 'log'> = {}): PipelineSources {
  return {
    model: (idOrPath) => loadModelFile(idOrPath.endsWith('.safetensors') ? idOrPath : fetchModel(idOrPath, { from: options.from, log: options.log })),
    registryEntry: (id) => registry()[id],
    images: { read: readImage, decode: decodeImage, readAhead: (paths, limits) => ReadAhead.start(paths, limits) },
  };
}

export async function createPipeline(options: PipelineOptions = {}): Promise<FacePipeline> {
  return openPipeline(options, nodeSources(options));
}
