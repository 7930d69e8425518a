import { expect } from 'chai';
import { decodeImage, applyOrientation, ImageError, readImage } from '../../src/io/image.js';
import { resizeBilinear, similarityTransform, applyAffine, warpAffine, invertAffine } from '../../src/io/transform.js';
import { cmykJpeg, encodeJpeg, encodePng, jpegWithDeclaredSize, pngHeaderOnly, rawPng, testCard, withExifOrientation } from '../fixtures/images.js';
import { tempDir } from '../tmp.js';

const card = testCard(8, 6);
const pixel = (img: { data: Uint8Array; width: number }, x: number, y: number): number[] => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('image decoding', () => {
  it('PNG RGB 8-bit decodes exactly', () => {
    const img = decodeImage(encodePng(card));
    expect([img.width, img.height]).to.deep.equal([8, 6]);
    expect(Array.from(img.data)).to.deep.equal(Array.from(card.data));
  });
  it('PNG RGBA: alpha is dropped (color kept)', () => {
    const img = decodeImage(encodePng(card, { colorType: 6, alpha: 77 }));
    expect(pixel(img, 0, 0)).to.deep.equal([220, 30, 30]);
  });
  it('PNG gray and gray+alpha expand to RGB', () => {
    for (const colorType of [0, 4] as const) {
      const img = decodeImage(encodePng(card, { colorType }));
      const [r, g, b] = pixel(img, 7, 5);
      expect(r).to.equal(g);
      expect(g).to.equal(b);
    }
  });
  it('PNG 16-bit is scaled to 8 bits', () => {
    const img = decodeImage(rawPng(3, 2, 2, 16, (x) => [x * 30000, 65535, 0]));
    expect(pixel(img, 0, 0)).to.deep.equal([0, 255, 0]);
    expect(pixel(img, 2, 1)[0]).to.be.closeTo(234, 1);
  });
  it('PNG with a palette maps indices to colors', () => {
    const img = decodeImage(rawPng(2, 2, 3, 8, (x, y) => [(x + y) % 2], [[10, 20, 30], [200, 100, 50]]));
    expect(pixel(img, 0, 0)).to.deep.equal([10, 20, 30]);
    expect(pixel(img, 1, 0)).to.deep.equal([200, 100, 50]);
  });
  it('JPEG baseline decodes close to the source colors', () => {
    const img = decodeImage(encodeJpeg(testCard(32, 32)));
    const [r, g, b] = pixel(img, 4, 4);
    expect(r).to.be.closeTo(220, 8);
    expect(g).to.be.closeTo(30, 8);
    expect(b).to.be.closeTo(30, 8);
  });
  it('CMYK JPEG (Adobe, inverted as Photoshop writes it) decodes to RGB = (255 - C)(255 - K) / 255 per channel', () => {
    const inks = [[0, 0, 0, 0], [255, 0, 0, 0], [0, 200, 255, 0], [40, 80, 120, 100]];
    const img = decodeImage(cmykJpeg(2, 2, (bx, by) => inks[by * 2 + bx]!), 'cmyk.jpg');
    expect([img.width, img.height]).to.deep.equal([16, 16]);
    inks.forEach((ink, i) => {
      const expected = ink.slice(0, 3).map((v) => ((255 - v) * (255 - ink[3]!)) / 255);
      const got = pixel(img, (i % 2) * 8 + 3, Math.floor(i / 2) * 8 + 5);
      got.forEach((v, c) => expect(v, `block ${i} channel ${c}`).to.be.closeTo(expected[c]!, 1));
    });
  });
  it('a 4-component JPEG without the Adobe segment (ambiguous CMYK) is UNSUPPORTED_FORMAT', () => {
    const buf = cmykJpeg(1, 1, () => [10, 20, 30, 40], false);
    expect(() => decodeImage(buf, 'cmyk.jpg')).to.throw(ImageError, /4-component JPEG without an Adobe segment.*convert it to RGB/).with.property('code', 'UNSUPPORTED_FORMAT');
  });
  for (let o = 1; o <= 8; o++) {
    it(`JPEG EXIF orientation ${o} is applied (top-left red quadrant lands where a viewer sees it)`, () => {
      const src = testCard(32, 16);
      const img = decodeImage(withExifOrientation(encodeJpeg(src), o, o % 2 === 0));
      const expected = applyOrientation(src, o);
      expect([img.width, img.height]).to.deep.equal([expected.width, expected.height]);
      for (const [x, y] of [[2, 2], [img.width - 3, 2], [2, img.height - 3], [img.width - 3, img.height - 3]] as const) {
        const got = pixel(img, x, y), want = pixel(expected, x, y);
        got.forEach((v, c) => expect(v, `(${x},${y}) channel ${c}`).to.be.closeTo(want[c]!, 12));
      }
    });
  }
  it('orientation 6 means "rotate 90 degrees clockwise to display"', () => {
    const src = testCard(4, 2); // red top-left, green top-right
    const r = applyOrientation(src, 6);
    expect([r.width, r.height]).to.deep.equal([2, 4]);
    expect(pixel(r, 1, 0)).to.deep.equal([220, 30, 30]); // red ends top-right
    expect(pixel(r, 1, 3)).to.deep.equal([30, 200, 30]); // green ends bottom-right
  });
  const bad: [string, Buffer, string, RegExp][] = [
    ['a 0-byte file', Buffer.alloc(0), 'EMPTY_FILE', /empty/],
    ['wrong magic (GIF)', Buffer.from('GIF89a\x01\x00\x01\x00', 'latin1'), 'UNSUPPORTED_FORMAT', /GIF images are not supported; convert it to PNG or JPEG/],
    ['random bytes', Buffer.from('hello world, not an image'), 'UNSUPPORTED_FORMAT', /not supported/],
    ['a truncated PNG', encodePng(testCard(20, 20)).subarray(0, 60), 'CORRUPT_IMAGE', /cannot decode PNG/],
    ['a PNG with a corrupt chunk CRC', (() => { const b = Buffer.from(encodePng(testCard(20, 20))); b[29]! ^= 0xff; return b; })(), 'CORRUPT_IMAGE', /cannot decode PNG/],
    ['a truncated JPEG', encodeJpeg(testCard(64, 64)).subarray(0, 200), 'CORRUPT_IMAGE', /JPEG/],
    ['a 60000x60000 PNG header (decompression bomb)', pngHeaderOnly(60000, 60000), 'IMAGE_TOO_LARGE', /60000x60000 = 3600000000 pixels exceeds the 50000000-pixel limit/],
    ['a 60000x60000 JPEG frame header', jpegWithDeclaredSize(60000, 60000), 'IMAGE_TOO_LARGE', /exceeds the 50000000-pixel limit/],
    ['a PNG declaring 0x0', pngHeaderOnly(0, 0), 'CORRUPT_IMAGE', /empty 0x0/],
  ];
  for (const [what, buf, code, message] of bad) {
    it(`rejects ${what} with ${code}`, () => {
      expect(() => decodeImage(buf, 'x.img')).to.throw(ImageError, message).with.property('code', code);
    });
  }
  it('limits are configurable', () => {
    const png = encodePng(testCard(20, 20));
    expect(() => decodeImage(png, 'f', { maxPixels: 100 })).to.throw(ImageError).with.property('code', 'IMAGE_TOO_LARGE');
    expect(() => decodeImage(png, 'f', { maxFileBytes: 10 })).to.throw(ImageError).with.property('code', 'FILE_TOO_LARGE');
  });
  it('a missing file is NOT_FOUND naming the path', () => {
    expect(() => readImage('/nonexistent/x.png')).to.throw(ImageError, /\/nonexistent\/x\.png: no such file/).with.property('code', 'NOT_FOUND');
  });
  it('a folder given as an image is UNREADABLE saying so and what to pass instead (it gave EISDIR)', () => {
    const dir = tempDir('folder-as-image');
    expect(() => readImage(dir)).to.throw(ImageError, /is a folder, not an image file \(pass the images in it, e\.g\. DIR\/\*\.jpg/).with.property('code', 'UNREADABLE');
  });
});

describe('geometry', () => {
  it('resizeBilinear keeps a constant image constant and downsizes a card by quadrants', () => {
    const r = resizeBilinear(testCard(40, 40), 4, 4);
    expect(pixel(r, 0, 0)).to.deep.equal([220, 30, 30]);
    expect(pixel(r, 3, 3)).to.deep.equal([200, 200, 30]);
  });
  it('similarityTransform recovers a known rotation + scale + translation exactly', () => {
    const angle = 0.3, s = 1.7, tx = 12, ty = -4;
    const from: [number, number][] = [[0, 0], [10, 0], [3, 7], [8, 9]];
    const to = from.map(([x, y]): [number, number] => [s * (Math.cos(angle) * x - Math.sin(angle) * y) + tx, s * (Math.sin(angle) * x + Math.cos(angle) * y) + ty]);
    const m = similarityTransform(from, to);
    from.forEach((p, i) => {
      const [x, y] = applyAffine(m, p[0], p[1]);
      expect(x).to.be.closeTo(to[i]![0], 1e-9);
      expect(y).to.be.closeTo(to[i]![1], 1e-9);
    });
    const back = invertAffine(m);
    const [x0, y0] = applyAffine(back, to[2]![0], to[2]![1]);
    expect([x0, y0].map((v) => Math.round(v * 1e9) / 1e9)).to.deep.equal([3, 7]);
  });
  it('warpAffine with the identity reproduces the image; outside is black', () => {
    const img = testCard(10, 8);
    expect(Array.from(warpAffine(img, [1, 0, 0, 0, 1, 0], 10, 8).data)).to.deep.equal(Array.from(img.data));
    expect(pixel(warpAffine(img, [1, 0, -5, 0, 1, -5], 10, 8), 0, 0)).to.deep.equal([0, 0, 0]);
  });
  it('warpAffine equals bilinear sampling pixel by pixel (rotation, scale, borders, axis-aligned resizes: per-column weights, whole-pixel shifts: copied rows), exactly', () => {
    const img = testCard(13, 9);
    const at = (x: number, y: number, c: number): number => (x < 0 || y < 0 || x >= 13 || y >= 9 ? 0 : img.data[(y * 13 + x) * 3 + c]!);
    const shifts = [[1, 0, -3, 0, 1, -2], [1, 0, 4, 0, 1, 1], [1, 0, 0, 0, 1, 0], [1, 0, -20, 0, 1, 0]] as const; // the last is all black
    const axisAligned = [[1.7, 0, -3, 0, 1.7, -2], [3.1, 0, -5, 0, 2.2, 1], [0.37, 0, 2, 0, 0.6, -1], [-1.3, 0, 15, 0, 1, 0], [0.9, 0, 0.25, 0, 0.9, -14]] as const; // resizes, a flip, all black
    for (const m of [[0.8, -0.3, 2.5, 0.3, 0.8, -1.2], [0.5, 0.2, 6, -0.2, 0.5, 4], ...axisAligned, ...shifts] as const) {
      const out = warpAffine(img, [...m], 17, 11);
      for (let y = 0; y < 11; y++) {
        for (let x = 0; x < 17; x++) {
          const fx = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2] - 0.5, fy = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5] - 0.5;
          const x0 = Math.floor(fx), y0 = Math.floor(fy), ax = fx - x0, ay = fy - y0;
          for (let c = 0; c < 3; c++) {
            const want = Math.round((1 - ay) * ((1 - ax) * at(x0, y0, c) + ax * at(x0 + 1, y0, c)) + ay * ((1 - ax) * at(x0, y0 + 1, c) + ax * at(x0 + 1, y0 + 1, c)));
            if (out.data[(y * 17 + x) * 3 + c] !== want) expect.fail(`pixel ${x},${y} channel ${c}: ${out.data[(y * 17 + x) * 3 + c]} vs ${want}`);
          }
        }
      }
    }
  });
});
