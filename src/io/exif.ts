/**
 * EXIF orientation of a JPEG: finds the APP1 "Exif" segment, reads the TIFF header (either byte order)
 * and tag 0x0112 of IFD0. Returns 1 (upright) when absent or unreadable: a damaged EXIF block must not
 * make an otherwise good photo fail.
 */
export function jpegOrientation(buf: Uint8Array): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 2;
  while (p + 4 <= buf.length && buf[p] === 0xff) {
    const marker = buf[p + 1]!;
    if (marker === 0xda || marker === 0xd9) break; // start of scan / end of image
    const len = view.getUint16(p + 2);
    if (len < 2) break;
    if (marker === 0xe1 && p + 10 <= buf.length && String.fromCharCode(...buf.subarray(p + 4, p + 8)) === 'Exif') {
      return orientationFromTiff(view, p + 10, Math.min(buf.length, p + 2 + len));
    }
    p += 2 + len;
  }
  return 1;
}

function orientationFromTiff(view: DataView, start: number, end: number): number {
  if (start + 8 > end) return 1;
  const order = view.getUint16(start);
  if (order !== 0x4949 && order !== 0x4d4d) return 1;
  const le = order === 0x4949;
  const ifd = start + view.getUint32(start + 4, le);
  if (ifd + 2 > end) return 1;
  const count = view.getUint16(ifd, le);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > end) return 1;
    if (view.getUint16(entry, le) === 0x0112) {
      const v = view.getUint16(entry + 8, le);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}
