/** Every differentiable op, one family per file. */
export { conv2d, conv2dScaleShift, depthwiseConv2d, type Conv2dOptions } from './conv.js';
export { matmul, dense } from './matmul.js';
export { add, sub, mul, div, maximum, minimum, neg, exp, log, sqrt, square, abs, pow, cast } from './elementwise.js';
export { relu, relu6, sigmoid, tanh, prelu, leakyRelu } from './activation.js';
export { residual, type ResidualOptions } from './residual.js';
export { maxPool2d, avgPool2d, l2Pool2d, globalAvgPool, type PoolOptions } from './pool.js';
export { lrn, type LrnOptions } from './lrn.js';
export { batchNorm, channelAffine, foldBatchNorm, type BatchNormOptions, type FoldableBatchNorm } from './batchnorm.js';
export { l2Normalize } from './normalize.js';
export { softmax, logSoftmax } from './softmax.js';
export { sum, mean, max, type ReduceOptions } from './reduce.js';
export { reshape, flatten, pad2d, concat, slice, transpose, gather } from './layout.js';
export { squaredDistances, euclideanDistances } from './distance.js';
export { dropout } from './dropout.js';
