/**
 * The kernel registry: op name -> gpu.js kernel function and output length. The GPU backend
 * (src/backends/gpu) compiles these per (kernel, constants, argument kinds, mode) and caches them.
 */
import { ACTIVATION_KERNELS } from './activation.js';
import { CONV_KERNELS } from './conv.js';
import { DENSE_KERNELS } from './dense.js';
import { DISTANCE_KERNELS } from './distance.js';
import { ELEMENTWISE_KERNELS } from './elementwise.js';
import { LAYOUT_KERNELS } from './layout.js';
import { NORM_KERNELS } from './norm.js';
import { POOL_KERNELS } from './pool.js';

export { UNARY_OPS } from './activation.js';
export { BINARY_OPS } from './elementwise.js';
export { CHANNEL_REDUCE } from './norm.js';
export type { KernelThis, Values } from './types.js';

export const KERNELS = {
  ...CONV_KERNELS,
  ...POOL_KERNELS,
  ...NORM_KERNELS,
  ...ACTIVATION_KERNELS,
  ...ELEMENTWISE_KERNELS,
  ...DENSE_KERNELS,
  ...LAYOUT_KERNELS,
  ...DISTANCE_KERNELS,
} as const;

export type KernelName = keyof typeof KERNELS;
