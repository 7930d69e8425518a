/** facenet-ts public API. */
export { Tensor, alloc, type DType, type TypedArray } from './tensor/tensor.js';
export { tensor, fromTypedArray, full, zeros, ones, scalar, randn, rand } from './tensor/creation.js';
export { sizeOf, type Shape, type PaddingSpec } from './tensor/shape.js';
export * from './ops/index.js';
export * as ops from './ops/index.js';
export { noGrad, isGradEnabled } from './autograd/tape.js';
export { tidy, keep, liveTensors } from './autograd/memory.js';
export { gradcheck, type GradcheckOptions, type GradcheckReport, type InputReport } from './autograd/gradcheck.js';
export { FacenetError, ShapeError, DTypeError, ArgumentError, DisposedError, WeightFileError } from './errors.js';
export { Rng } from './util/random.js';
