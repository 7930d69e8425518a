/**
 * The platform-free public API: everything that runs the same in Node and in a browser (file functions
 * such as readSafetensors load everywhere and say NODE_ONLY outside Node). index.ts (Node) and browser.ts
 * add what is specific to each.
 */
export { Tensor, alloc, type DType, type TypedArray } from './tensor/tensor.js';
export { tensor, fromTypedArray, full, zeros, ones, scalar, randn, rand } from './tensor/creation.js';
export { sizeOf, type Shape, type PaddingSpec } from './tensor/shape.js';
export * from './ops/index.js';
export * as ops from './ops/index.js';
export { noGrad, isGradEnabled } from './autograd/tape.js';
export { tidy, keep, liveTensors, tensorBytes, resetPeakBytes, tidyAndRecycle, allocationStats, clearPool } from './autograd/memory.js';
export { gradcheck, type GradcheckOptions, type GradcheckReport, type InputReport } from './autograd/gradcheck.js';
export { FacenetError, ShapeError, DTypeError, ArgumentError, DisposedError, WeightFileError } from './errors.js';
export { Rng } from './util/random.js';
export { setNumThreads, getNumThreads } from './backends/cpu/threads.js';
export { setGemmKernel, gemmKernel, gemmFused, type GemmKernel } from './backends/cpu/gemm_fast.js';
export { useBackend, activeBackend, gpuDevice, closeGpu, type BackendName } from './backends/backend.js';
export { GpuError, type GpuMode, type DeviceCounters } from './backends/gpu/device.js';
export type { DeviceData } from './tensor/tensor.js';

// Models and layers
export { Module, StateDictError, type LoadReport } from './nn/module.js';
export { Conv2d, BatchNorm, Linear, PReLU, ConvBnAct, Sequential, SeparableConv2d, Affine } from './nn/layers.js';
export { Inception, type InceptionSpec } from './nn/inception.js';
export { Nn4Small2 } from './models/nn4_small2.js';
export { Nn2 } from './models/nn2.js';
export { InceptionResnetV1 } from './models/inception_resnet_v1.js';
export { PNet, RNet, ONet } from './models/mtcnn.js';
export { FaceRecognitionResNet34 } from './models/resnet34.js';
export { SmallInception } from './models/small_inception.js';
export { GraphModel } from './models/graph_model.js';
export { buildModel, ARCHITECTURES } from './models/factory.js';
export { loadModelFile, loadModelBytes, type LoadedModel } from './models/load.js';
export { MODEL_SPECS, type ModelSpec, type Metric } from './models/specs.js';

// Losses and training
export { tripletLoss, type TripletOptions } from './losses/triplet.js';
export { mineTriplets, type MiningMode } from './losses/mining.js';
export { sphereFaceLoss, arcFaceLoss, cosFaceLoss, crossEntropy } from './losses/margin_softmax.js';
export { SGD, AdaGrad, Adam, schedules, type Optimizer, type Schedule } from './train/optim.js';
export { PKSampler } from './train/sampler.js';
export { saveCheckpoint, loadCheckpoint } from './train/checkpoint.js';
export { train, type TrainOptions } from './train/trainer.js';

// Weights and the face pipeline core
export { readSafetensors, writeSafetensors, decodeSafetensors, encodeSafetensors } from './io/safetensors.js';
export { openPipeline, pipelineModels, FacePipeline, NoFaceError, distance, type PipelineOptions, type PipelineSources, type EmbeddedFace, type DetectedFace, type Comparison } from './face/face_pipeline.js';
export type { RgbImage, ImageLimits } from './io/image.js';
export { accuracyAt, bestThreshold, tenFold, rocAuc, dbscan } from './face/evaluate.js';
