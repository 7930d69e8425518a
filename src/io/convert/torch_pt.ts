/**
 * PyTorch `torch.save(state_dict)` files, read without Python:
 *   - zip format (PyTorch >= 1.6): <prefix>/data.pkl (the pickled OrderedDict) + <prefix>/data/<key> storages;
 *   - legacy format (facenet-pytorch's MTCNN files): a stream of pickles (magic number, protocol,
 *     system info, the state dict, the list of storage keys) followed by each storage as an int64
 *     element count and raw little-endian data.
 * Tensors are rebuilt from (storage, offset, size, stride) with every index bounds-checked.
 */
import { readFileSync } from 'node:fs';
import { WeightFileError } from '../../errors.js';
import { halfToFloat } from '../safetensors.js';
import { GlobalRef, PickleReader, type AllowedGlobal } from './pickle.js';
import { ZipArchive } from './zip.js';

export interface TorchTensor {
  shape: number[];
  /** Float storages become Float32Array (Float64Array for DoubleStorage); integer storages Float64Array. */
  data: Float32Array | Float64Array;
  storageType: string;
}

const STORAGE_TYPES: Record<string, { bytes: number; read: (b: Buffer, i: number) => number; double?: boolean }> = {
  FloatStorage: { bytes: 4, read: (b, i) => b.readFloatLE(4 * i) },
  DoubleStorage: { bytes: 8, read: (b, i) => b.readDoubleLE(8 * i), double: true },
  HalfStorage: { bytes: 2, read: (b, i) => halfToFloat(b.readUInt16LE(2 * i)) },
  BFloat16Storage: { bytes: 2, read: (b, i) => new Float32Array(new Uint32Array([b.readUInt16LE(2 * i) << 16]).buffer)[0]! },
  LongStorage: { bytes: 8, read: (b, i) => Number(b.readBigInt64LE(8 * i)), double: true },
  IntStorage: { bytes: 4, read: (b, i) => b.readInt32LE(4 * i), double: true },
  ShortStorage: { bytes: 2, read: (b, i) => b.readInt16LE(2 * i), double: true },
  CharStorage: { bytes: 1, read: (b, i) => b.readInt8(i), double: true },
  ByteStorage: { bytes: 1, read: (b, i) => b.readUInt8(i), double: true },
  BoolStorage: { bytes: 1, read: (b, i) => b.readUInt8(i), double: true },
};

class StorageRef {
  data: Buffer | null = null;
  constructor(readonly type: string, readonly key: string, readonly numel: number) {}
}

class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}

const isIntArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);

/** The only globals a state dict needs. Storage types are values (never called). */
function stateDictGlobals(file: string): Record<string, AllowedGlobal> {
  const globals: Record<string, AllowedGlobal> = {
    'collections OrderedDict': { call: () => new Map() },
    'torch._utils _rebuild_tensor_v2': {
      call: (storage, offset, size, stride) => {
        if (!(storage instanceof StorageRef) || !Number.isSafeInteger(offset) || !isIntArray(size) || !isIntArray(stride) || size.length !== stride.length) {
          throw new WeightFileError(file, '_rebuild_tensor_v2 with malformed arguments', 'BAD_PICKLE');
        }
        return new TensorRef(storage, offset as number, size, stride);
      },
    },
    'torch._utils _rebuild_parameter': { call: (data) => data },
  };
  for (const name of Object.keys(STORAGE_TYPES)) globals[`torch ${name}`] = {};
  return globals;
}

function persistentLoad(file: string, storages: Map<string, StorageRef>) {
  return (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof GlobalRef) || !Number.isSafeInteger(pid[4])) {
      throw new WeightFileError(file, 'persistent id is not a (storage, type, key, location, numel) tuple', 'BAD_PICKLE');
    }
    const type = pid[1].name.split(' ')[1]!;
    const key = String(pid[2]);
    const existing = storages.get(key);
    if (existing) return existing;
    const ref = new StorageRef(type, key, pid[4] as number);
    storages.set(key, ref);
    return ref;
  };
}

function materialize(file: string, name: string, t: TensorRef): TorchTensor {
  const st = STORAGE_TYPES[t.storage.type]!;
  const buf = t.storage.data;
  if (!buf) throw new WeightFileError(file, `tensor ${name}: storage ${t.storage.key} has no data`, 'BAD_WEIGHTS');
  const available = Math.floor(buf.length / st.bytes);
  const count = t.size.reduce((a, b) => a * b, 1);
  if (t.storage.type === 'FloatStorage' && isContiguous(t)) {
    if (t.offset + count > available) throw new WeightFileError(file, `tensor ${name}: needs ${count} elements from offset ${t.offset}, storage ${t.storage.key} has ${available}`, 'BAD_WEIGHTS');
    const start = buf.byteOffset + 4 * t.offset; // copy straight out of the file buffer
    return { shape: t.size, data: new Float32Array(buf.buffer.slice(start, start + 4 * count)), storageType: t.storage.type };
  }
  const out = st.double ? new Float64Array(count) : new Float32Array(count);
  // Walk the logical indices in row-major order, following the strides into the storage.
  const idx = new Array<number>(t.size.length).fill(0);
  let src = t.offset;
  for (let i = 0; i < count; i++) {
    if (src < 0 || src >= available) throw new WeightFileError(file, `tensor ${name}: element ${i} reads storage index ${src}, beyond its ${available} elements`, 'BAD_WEIGHTS');
    out[i] = st.read(buf, src);
    for (let d = t.size.length - 1; d >= 0; d--) {
      idx[d]!++;
      src += t.stride[d]!;
      if (idx[d]! < t.size[d]!) break;
      src -= t.stride[d]! * t.size[d]!;
      idx[d] = 0;
    }
  }
  return { shape: t.size, data: out, storageType: t.storage.type };
}

function isContiguous(t: TensorRef): boolean {
  let expected = 1;
  for (let d = t.size.length - 1; d >= 0; d--) {
    if (t.size[d]! > 1 && t.stride[d] !== expected) return false;
    expected *= t.size[d]!;
  }
  return true;
}

function toStateDict(file: string, root: unknown): Map<string, TorchTensor> {
  if (!(root instanceof Map)) throw new WeightFileError(file, 'the pickle is not a state dict (an OrderedDict of tensors); save with torch.save(model.state_dict(), path)', 'BAD_WEIGHTS');
  const out = new Map<string, TorchTensor>();
  for (const [k, v] of root) {
    if (!(v instanceof TensorRef)) throw new WeightFileError(file, `entry ${String(k)} is not a tensor`, 'BAD_WEIGHTS');
    out.set(String(k), materialize(file, String(k), v));
  }
  return out;
}

function checkStorageSize(file: string, s: StorageRef, bytes: number): void {
  const st = STORAGE_TYPES[s.type]!;
  if (bytes < s.numel * st.bytes) throw new WeightFileError(file, `storage ${s.key} holds ${bytes} bytes, needs ${s.numel * st.bytes} (truncated?)`, 'BAD_WEIGHTS');
}

function readZipFormat(buf: Buffer, file: string): Map<string, TorchTensor> {
  const zip = new ZipArchive(buf, file);
  const pkls = zip.names().filter((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (pkls.length !== 1) throw new WeightFileError(file, `expected one data.pkl in the archive, found ${pkls.length}`, 'BAD_WEIGHTS');
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  const storages = new Map<string, StorageRef>();
  const reader = new PickleReader(zip.read(pkls[0]!), file, {
    globals: stateDictGlobals(file),
    persistentLoad: persistentLoad(file, storages),
    build: (obj) => obj instanceof Map, // OrderedDict._metadata: not needed
  });
  const root = reader.load();
  for (const s of storages.values()) {
    const entry = `${prefix}data/${s.key}`;
    const data = zip.read(entry);
    checkStorageSize(file, s, data.length);
    s.data = data;
  }
  return toStateDict(file, root);
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function readLegacyFormat(buf: Buffer, file: string): Map<string, TorchTensor> {
  const storages = new Map<string, StorageRef>();
  const options = { globals: stateDictGlobals(file), persistentLoad: persistentLoad(file, storages), build: (obj: unknown) => obj instanceof Map };
  let pos = 0;
  const next = (): unknown => {
    const r = new PickleReader(buf, file, options, pos);
    const v = r.load();
    pos = r.offset;
    return v;
  };
  if (next() !== LEGACY_MAGIC) throw new WeightFileError(file, 'not a PyTorch file: bad magic number', 'BAD_WEIGHTS');
  const protocol = next();
  if (protocol !== 1001) throw new WeightFileError(file, `unsupported legacy protocol version ${String(protocol)}`, 'BAD_WEIGHTS');
  const sysInfo = next();
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) throw new WeightFileError(file, 'big-endian checkpoints are not supported', 'BAD_WEIGHTS');
  const root = next();
  const keys = next();
  if (!Array.isArray(keys)) throw new WeightFileError(file, 'storage key list is missing', 'BAD_WEIGHTS');
  for (const key of keys) {
    const s = storages.get(String(key));
    if (!s) throw new WeightFileError(file, `storage ${String(key)} is listed but not referenced`, 'BAD_WEIGHTS');
    if (pos + 8 > buf.length) throw new WeightFileError(file, `truncated before storage ${s.key}`, 'BAD_WEIGHTS');
    const numel = Number(buf.readBigInt64LE(pos));
    pos += 8;
    const bytes = numel * STORAGE_TYPES[s.type]!.bytes;
    if (numel < 0 || pos + bytes > buf.length) throw new WeightFileError(file, `storage ${s.key} (${numel} elements) runs past the end of the file (truncated?)`, 'BAD_WEIGHTS');
    checkStorageSize(file, s, bytes);
    s.data = buf.subarray(pos, pos + bytes);
    pos += bytes;
  }
  return toStateDict(file, root);
}

/** Reads a PyTorch state dict file (zip or legacy format) into tensors by name, in file order. */
export function readTorchStateDict(path: string): Map<string, TorchTensor> {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new WeightFileError(path, `cannot read: ${(err as Error).message}`, 'NOT_FOUND');
  }
  if (buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50) return readZipFormat(buf, path);
  if (buf.length >= 2 && buf[0] === 0x80) return readLegacyFormat(buf, path);
  throw new WeightFileError(path, 'not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)', 'BAD_WEIGHTS');
}
