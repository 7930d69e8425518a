/** Small checks shared by the op files. */
import { DTypeError } from '../errors.js';
import type { DType, Tensor } from '../tensor/tensor.js';

/** All tensors must share one dtype; returns it. */
export function commonDType(op: string, ...tensors: readonly (Tensor | null | undefined)[]): DType {
  const present = tensors.filter((t): t is Tensor => t != null);
  const first = present[0]!.dtype;
  if (present.some((t) => t.dtype !== first)) throw new DTypeError(op, present.map((t) => t.dtype));
  return first;
}
