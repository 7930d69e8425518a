/**
 * A minimal ZIP reader for PyTorch checkpoints: central directory (with zip64 sizes and offsets), stored
 * and deflated entries (inflate through Node's zlib). Every offset and size is bounds-checked; entry
 * names with "..", absolute paths or backslashes are rejected, so nothing can point outside the archive.
 */
import { inflateRawSync } from 'node:zlib';
import { WeightFileError } from '../../errors.js';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50, CEN_SIG = 0x02014b50, LOC_SIG = 0x04034b50, ZIP64_EOCD_SIG = 0x06064b50, ZIP64_LOCATOR_SIG = 0x07064b50;

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();

  constructor(private readonly buf: Buffer, private readonly file: string) {
    const fail = (problem: string): never => { throw new WeightFileError(file, `corrupt zip archive: ${problem}`, 'BAD_ZIP'); };
    // The end-of-central-directory record sits in the last 22 + 65535 bytes.
    let eocd = -1;
    for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
      if (buf.readUInt32LE(i) === EOCD_SIG) { eocd = i; break; }
    }
    if (eocd < 0) fail('no end-of-central-directory record (truncated or not a zip file)');
    let count = buf.readUInt16LE(eocd + 10);
    let cdOffset = buf.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || count === 0xffff) {
      const loc = eocd - 20;
      if (loc < 0 || buf.readUInt32LE(loc) !== ZIP64_LOCATOR_SIG) fail('zip64 sizes without a zip64 locator');
      const z64 = Number(buf.readBigUInt64LE(loc + 8));
      if (z64 + 56 > buf.length || buf.readUInt32LE(z64) !== ZIP64_EOCD_SIG) fail('bad zip64 end-of-central-directory offset');
      count = Number(buf.readBigUInt64LE(z64 + 32));
      cdOffset = Number(buf.readBigUInt64LE(z64 + 48));
    }
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > buf.length || buf.readUInt32LE(p) !== CEN_SIG) fail(`central directory entry ${i} is out of bounds or has a bad signature`);
      const method = buf.readUInt16LE(p + 10);
      let compressedSize = buf.readUInt32LE(p + 20), size = buf.readUInt32LE(p + 24);
      const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
      let localHeaderOffset = buf.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen > buf.length) fail(`entry ${i} name runs past the end`);
      const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
      ({ compressedSize, size, localHeaderOffset } = readZip64Extra(buf, p + 46 + nameLen, extraLen, { compressedSize, size, localHeaderOffset }));
      if (name.includes('..') || name.startsWith('/') || name.includes('\\') || /^[a-zA-Z]:/.test(name)) fail(`unsafe entry name ${JSON.stringify(name)} (path traversal)`);
      this.entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  read(name: string): Buffer {
    const e = this.entries.get(name);
    const fail = (problem: string): never => { throw new WeightFileError(this.file, `corrupt zip entry ${name}: ${problem}`, 'BAD_ZIP'); };
    if (!e) throw new WeightFileError(this.file, `zip archive has no entry ${name}`, 'BAD_ZIP');
    const h = e.localHeaderOffset;
    if (h + 30 > this.buf.length || this.buf.readUInt32LE(h) !== LOC_SIG) fail('local header out of bounds or bad signature');
    const start = h + 30 + this.buf.readUInt16LE(h + 26) + this.buf.readUInt16LE(h + 28);
    if (start + e.compressedSize > this.buf.length) fail(`data (${e.compressedSize} bytes) runs past the end of the file (truncated?)`);
    const raw = this.buf.subarray(start, start + e.compressedSize);
    if (e.method === 0) return raw;
    if (e.method !== 8) fail(`compression method ${e.method} is not supported (only stored and deflate)`);
    try {
      const out = inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
      if (out.length !== e.size) fail(`inflated to ${out.length} bytes, directory says ${e.size}`);
      return out;
    } catch (err) {
      if (err instanceof WeightFileError) throw err;
      return fail(`inflate failed (${(err as Error).message})`);
    }
  }
}

/** Zip64 extended information: 64-bit values for fields that are 0xffffffff, in a fixed order. */
function readZip64Extra(buf: Buffer, start: number, len: number, v: { compressedSize: number; size: number; localHeaderOffset: number }): typeof v {
  let p = start;
  while (p + 4 <= start + len) {
    const id = buf.readUInt16LE(p), size = buf.readUInt16LE(p + 2);
    if (id === 0x0001) {
      let q = p + 4;
      const next = (): number => { const x = Number(buf.readBigUInt64LE(q)); q += 8; return x; };
      if (v.size === 0xffffffff) v.size = next();
      if (v.compressedSize === 0xffffffff) v.compressedSize = next();
      if (v.localHeaderOffset === 0xffffffff) v.localHeaderOffset = next();
    }
    p += 4 + size;
  }
  return v;
}
