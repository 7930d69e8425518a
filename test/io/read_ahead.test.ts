/**
 * ReadAhead: files decoded on a worker thread give the pixels and the errors that readImage gives here,
 * in list order; paths out of order, and every path once the worker is gone, are left to the caller.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError, readImage } from '../../src/io/image.js';
import { describeError, ReadAhead, rebuildError } from '../../src/io/read_ahead.js';
import { FacenetError } from '../../src/errors.js';
import { encodeJpeg, encodePng, testCard, withExifOrientation } from '../fixtures/images.js';
import { tempDir } from '../tmp.js';

const dir = tempDir('read-ahead');
const file = (name: string, bytes: Uint8Array): string => { const p = join(dir, name); writeFileSync(p, bytes); return p; };
const FILES = [
  file('a.png', encodePng(testCard(40, 30))),
  file('b.jpg', encodeJpeg(testCard(64, 48))),
  file('c-rotated.jpg', withExifOrientation(encodeJpeg(testCard(24, 16)), 6)),
  file('d-gray-alpha.png', encodePng(testCard(9, 7), { colorType: 4 })),
  file('e-corrupt.jpg', encodeJpeg(testCard(32, 32)).subarray(0, 40)),
  join(dir, 'f-missing.png'),
  file('g.gif', Buffer.from('GIF89a0000000000')),
  file('h.png', encodePng(testCard(12, 12))),
];

/** What readImage here gives for a path: its image, or its error's class, code and message. */
function inline(path: string): unknown {
  try {
    return readImage(path, { maxPixels: 3000 });
  } catch (e) {
    return { error: (e as Error).constructor.name, code: (e as FacenetError).code, message: (e as Error).message };
  }
}
async function taken(p: Promise<unknown> | null): Promise<unknown> {
  try {
    return await p;
  } catch (e) {
    return { error: (e as Error).constructor.name, code: (e as FacenetError).code, message: (e as Error).message };
  }
}

describe('ReadAhead (decoding files on a worker thread)', function () {
  this.timeout(60_000);

  it('hands over every file after the first, in order, exactly as readImage decodes it (pixels, errors, limits)', async () => {
    const ahead = ReadAhead.start(FILES, { maxPixels: 3000 })!;
    try {
      expect(ahead.take(FILES[0]!), 'the first file is left to the caller').to.equal(null);
      for (const path of FILES.slice(1)) {
        const got = await taken(ahead.take(path));
        expect(got, path).to.deep.equal(inline(path));
      }
      expect(inline(FILES[1]!)).to.have.property('error', 'ImageError'); // 64x48 is over the 3000-pixel limit
      expect(inline(FILES[7]!)).to.have.property('width', 12);
    } finally {
      ahead.close();
    }
  });

  it('skips forward to a later file, follows duplicates in order, and leaves unknown or past paths to the caller', async () => {
    const list = [FILES[0]!, FILES[3]!, FILES[7]!, FILES[0]!, FILES[3]!];
    const ahead = ReadAhead.start(list, {})!;
    try {
      expect(ahead.take(list[0]!)).to.equal(null);
      expect(await ahead.take(list[2]!), 'skipping the second file').to.deep.equal(readImage(list[2]!));
      expect(ahead.take(list[2]!), 'a file already passed').to.equal(null);
      expect(ahead.take(join(dir, 'not-listed.png'))).to.equal(null);
      expect(await ahead.take(list[3]!), 'the first file again, as the fourth').to.deep.equal(readImage(list[3]!));
      expect(await ahead.take(list[4]!)).to.deep.equal(readImage(list[4]!));
      expect(ahead.take(list[4]!), 'past the end').to.equal(null);
    } finally {
      ahead.close();
    }
  });

  it('an answer that arrives before its file is taken waits for it; nothing is kept once taken', async () => {
    const ahead = ReadAhead.start(FILES.slice(0, 4), {})!;
    const slots = (): number => (ahead as unknown as { slots: Map<number, unknown> }).slots.size;
    const hung = (ms: number): Promise<string> => new Promise((r) => setTimeout(() => r('hung'), ms));
    try {
      ahead.take(FILES[0]!);
      for (const path of FILES.slice(1, 4)) {
        await new Promise((r) => setTimeout(r, 300)); // the worker has answered by now (the caller was busy)
        expect(await Promise.race([ahead.take(path), hung(10_000)]), path).to.deep.equal(readImage(path));
      }
      expect(slots(), 'slots left').to.equal(0);
    } finally {
      ahead.close();
    }
  });

  it('a worker that goes away hands its files back (null): waiting takes resolve, later ones are not sent', async () => {
    const ahead = ReadAhead.start(FILES, {})!;
    ahead.take(FILES[0]!);
    const waiting = ahead.take(FILES[1]!);
    await (ahead as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate(); // as if it had crashed
    await new Promise((r) => setTimeout(r, 50)); // its exit event
    expect(await waiting).to.satisfy((v: unknown) => v === null || JSON.stringify(v) === JSON.stringify(readImage(FILES[1]!)));
    expect(ahead.take(FILES[2]!)).to.equal(null);
    const closed = ReadAhead.start(FILES, {})!;
    closed.take(FILES[0]!);
    const pending = closed.take(FILES[1]!);
    closed.close();
    expect(await pending, 'close() hands back what was waited for').to.equal(null);
    expect(closed.take(FILES[2]!)).to.equal(null);
  });

  it('needs two files or more; errors cross the thread with their class, code and file', () => {
    expect(ReadAhead.start([FILES[0]!], {})).to.equal(null);
    const image = new ImageError('CORRUPT_IMAGE', 'x.jpg', 'bad JPEG marker at byte 2');
    const back = rebuildError((describeError(0, image) as { error: { code?: string; file?: string; message: string } }).error);
    expect(back).to.be.instanceOf(ImageError);
    expect([(back as ImageError).code, (back as ImageError).file, back.message]).to.deep.equal(['CORRUPT_IMAGE', 'x.jpg', image.message]);
    const other = rebuildError((describeError(0, new FacenetError('BAD_IMAGE', 'odd')) as { error: { message: string } }).error);
    expect([other.constructor.name, (other as FacenetError).code, other.message]).to.deep.equal(['FacenetError', 'BAD_IMAGE', 'odd']);
    const plain = rebuildError((describeError(0, new RangeError('out of memory')) as { error: { message: string } }).error);
    expect([plain.constructor.name, plain.message]).to.deep.equal(['Error', 'out of memory']);
  });
});
