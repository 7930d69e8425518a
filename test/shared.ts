/**
 * Access to the third-party data beside the repo (FACENET_SHARED, default ../shared). When it is absent,
 * data tests are pending with the reason, except under CI=true, where missing data is a failure.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SHARED = resolve(process.env.FACENET_SHARED ?? join(repoRoot, '..', 'shared'));

/** Absolute path of a shared file/dir, or skips the test (pending) when it is missing outside CI. */
export function sharedPath(ctx: Mocha.Context, rel: string): string {
  const p = join(SHARED, rel);
  if (existsSync(p)) return p;
  const reason = `shared data ${rel} not found under ${SHARED} (set FACENET_SHARED)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI requires it`);
  console.log(`      (pending: ${reason})`);
  ctx.skip();
  throw new Error('unreachable');
}

export interface Golden {
  shape: number[];
  data: Float32Array;
}

export interface GoldenSet {
  manifest: { tensors: Record<string, { file: string; shape: number[] }>; fp32_vs_fp64_maxabs?: Record<string, number> } & Record<string, unknown>;
  get(name: string): Golden;
}

export function goldenSet(ctx: Mocha.Context, dir: string): GoldenSet {
  const root = sharedPath(ctx, join('goldens', dir));
  const manifest = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8')) as GoldenSet['manifest'];
  return {
    manifest,
    get(name: string): Golden {
      const t = manifest.tensors[name];
      if (!t) throw new Error(`golden ${dir}/${name} is not in the manifest`);
      const b = readFileSync(join(root, t.file));
      return { shape: t.shape, data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) };
    },
  };
}
