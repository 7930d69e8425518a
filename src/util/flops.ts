/** Counts multiply-accumulates of convolutions and dense layers while enabled (for benchmarks' GFLOP/s). */
let counting = false;
let macs = 0;

export function addMacs(n: number): void {
  if (counting) macs += n;
}

/** Runs fn and returns its result with the MACs its convolutions and matrix products performed. */
export function countMacs<T>(fn: () => T): { result: T; macs: number } {
  const before = counting;
  counting = true;
  macs = 0;
  try {
    const result = fn();
    return { result, macs };
  } finally {
    counting = before;
  }
}
