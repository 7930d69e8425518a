/**
 * Reads files out of a .tgz (npm pack output) in memory: gunzip, then 512-byte ustar headers. Only the
 * requested names are kept; names with ".." or absolute paths are refused. PAX headers are honoured for
 * long paths.
 */
import { gunzipSync } from 'node:zlib';
import { WeightFileError } from '../errors.js';

export function extractFromTgz(tgz: Buffer, wanted: Set<string>, file: string): Map<string, Buffer> {
  let tar: Buffer;
  try {
    tar = gunzipSync(tgz, { maxOutputLength: 2 ** 31 - 1 });
  } catch (err) {
    throw new WeightFileError(file, `not a gzip archive (${(err as Error).message})`, 'BAD_ARCHIVE');
  }
  const out = new Map<string, Buffer>();
  let pos = 0;
  let paxPath: string | null = null;
  while (pos + 512 <= tar.length) {
    const header = tar.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, len: number): string => header.toString('utf8', start, start + len).replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156]!);
    if (!Number.isFinite(size) || size < 0 || pos + 512 + size > tar.length) throw new WeightFileError(file, `corrupt tar entry at byte ${pos}`, 'BAD_ARCHIVE');
    const body = tar.subarray(pos + 512, pos + 512 + size);
    const prefix = field(345, 155);
    const name = paxPath ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    paxPath = null;
    if (type === 'x') {
      const m = body.toString('utf8').match(/\d+ path=([^\n]*)\n/);
      paxPath = m ? m[1]! : null;
    } else if ((type === '0' || type === '\0') && wanted.has(name)) {
      if (name.split('/').includes('..') || name.startsWith('/')) throw new WeightFileError(file, `unsafe path ${name} in archive`, 'BAD_ARCHIVE');
      out.set(name, Buffer.from(body));
    }
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
