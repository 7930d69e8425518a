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
import { loadModelFile, type LoadedModel } from '../models/load.js';
import { WeightFileError } from '../errors.js';
import { openPipeline, type FacePipeline, type PipelineOptions, type PipelineSources } from './face_pipeline.js';

export * from './face_pipeline.js';

/**
 * A registry model from the cache (fetched, verified and converted on first use). A cached file that no
 * longer reads (truncated or damaged on disk) is converted again from its verified sources, once: the
 * cache heals itself rather than failing every run until someone deletes the file.
 */
export function loadRegistryModel(id: string, options: Pick<PipelineOptions, 'from' | 'log'> = {}): LoadedModel {
  const path = fetchModel(id, { from: options.from, log: options.log });
  try {
    return loadModelFile(path);
  } catch (e) {
    if (!(e instanceof WeightFileError) || e.code === 'NOT_FOUND') throw e;
    options.log?.(`${id}: the cached ${path} does not read (${e.message}); converting it again`);
    return loadModelFile(fetchModel(id, { from: options.from, log: options.log, force: true }));
  }
}

/** Models from the registry (or .safetensors paths) and the PNG/JPEG decoders. */
export function nodeSources(options: Pick<PipelineOptions, 'from' | 'log'> = {}): PipelineSources {
  return {
    model: (idOrPath) => (idOrPath.endsWith('.safetensors') ? loadModelFile(idOrPath) : loadRegistryModel(idOrPath, options)),
    registryEntry: (id) => registry()[id],
    images: { read: readImage, decode: decodeImage, readAhead: (paths, limits) => ReadAhead.start(paths, limits) },
  };
}

export async function createPipeline(options: PipelineOptions = {}): Promise<FacePipeline> {
  return openPipeline(options, nodeSources(options));
}
