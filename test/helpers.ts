/** Test helpers: closeness assertions with the worst element in the message. */
import { expect } from 'chai';
import { Rng, randn, type Tensor } from '../src/index.js';
import { fileURLToPath } from 'node:url';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; at: number } {
  expect(a.length, 'lengths').to.equal(b.length);
  let diff = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > diff || Number.isNaN(d)) { diff = d; at = i; }
  }
  return { diff, at };
}

/** |a - b| <= atol + rtol*|b| elementwise. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-5, what = ''): void {
  expect(actual.length, `${what} length`).to.equal(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${what} element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e).toExponential(2)}, atol ${atol}, rtol ${rtol})`);
    }
  }
}

export function randomTensor(shape: number[], seed: number | Rng, dtype: 'float32' | 'float64' = 'float32'): Tensor {
  return randn(shape, { seed, dtype });
}

export const shapeOf = (t: Tensor): number[] => [...t.shape];

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected the promise to reject');
}

/**
 * The `facenet` command as package.json's bin runs it: the bundle `npm run build` makes (scripts/bundle.ts),
 * with its worker scripts beside it. The CLI tests run it, so they test what users run.
 */
export const CLI = fileURLToPath(new URL('../bundle/cli/facenet.js', import.meta.url));
