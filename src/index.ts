/** facenet-ts public API in Node: the platform-free core, plus converters, the weight registry, image files and createPipeline. */
export * from './core.js';
export { convertWeights, SOURCE_FORMATS, type ConvertOptions } from './io/convert/index.js';
export { fetchModel, listModels, registry, cacheDir } from './io/registry.js';
export { readImage, decodeImage, ImageError } from './io/image.js';
export { createPipeline, nodeSources } from './face/pipeline.js';
