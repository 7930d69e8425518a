import { expect } from 'chai';
import { alignFace, chipTransform, faceWarnings } from '../../src/face/align.js';
import { applyAffine, warpAffine, type Affine } from '../../src/io/transform.js';
import { MODEL_SPECS } from '../../src/models/specs.js';
import { testCard } from '../fixtures/images.js';
import { Rng } from '../../src/index.js';
import type { RgbImage } from '../../src/io/image.js';

const dlib = MODEL_SPECS['dlib-resnet34']!;
const img = testCard(400, 300);

describe('alignment', () => {
  it('dlib chip: 5 points of an upright face land on the mean face scaled into the 150x150 chip', () => {
    const pts: [number, number][] = [[180, 140], [240, 140], [210, 175], [185, 205], [235, 205]];
    const m = chipTransform({ box: [150, 100, 270, 240], landmarks5: pts, landmarks68: null }, dlib);
    // The chip center maps near the face center; eyes are level (no rotation for level eyes).
    const [cx, cy] = applyAffine(m, 75, 75);
    expect(cx).to.be.closeTo(210, 6);
    expect(cy).to.be.closeTo(170, 15);
    expect(Math.abs(m[1])).to.be.below(0.05 * Math.abs(m[0]));
  });
  it('a rolled face is rotated upright: the transform angle equals the eye line angle', () => {
    const angle = (25 * Math.PI) / 180;
    const rot = ([x, y]: [number, number]): [number, number] => [200 + (x - 200) * Math.cos(angle) - (y - 150) * Math.sin(angle), 150 + (x - 200) * Math.sin(angle) + (y - 150) * Math.cos(angle)];
    const upright: [number, number][] = [[170, 130], [230, 130], [200, 165], [175, 195], [225, 195]];
    const m = chipTransform({ box: [140, 90, 260, 230], landmarks5: upright.map(rot), landmarks68: null }, dlib);
    expect(Math.atan2(m[3], m[0])).to.be.closeTo(angle, 1e-6); // exact up to the template's own asymmetry
  });
  it('box-crop and square-crop map the chip onto the box', () => {
    const box: [number, number, number, number] = [10, 20, 110, 180];
    const irv1 = chipTransform({ box, landmarks5: null, landmarks68: null }, MODEL_SPECS['inception-resnet-v1']!);
    expect(applyAffine(irv1, 0, 0)).to.deep.equal([10, 20]);
    expect(applyAffine(irv1, 160, 160)).to.deep.equal([110, 180]);
    const sq = chipTransform({ box, landmarks5: null, landmarks68: null }, { ...dlib, alignment: 'square-crop' });
    expect(applyAffine(sq, 0, 0)).to.deep.equal([10, 50]);
  });
  it('warnings: landmarks outside the image, small faces, extreme pose', () => {
    const spec = dlib;
    const face = (pts: [number, number][]) => ({ box: [0, 0, 100, 100] as [number, number, number, number], landmarks5: pts, landmarks68: null });
    const normal: [number, number][] = [[180, 140], [240, 140], [210, 175], [185, 205], [235, 205]];
    expect(faceWarnings(img, face(normal), chipTransform(face(normal), spec), spec)).to.deep.equal([]);
    const outside: [number, number][] = normal.map(([x, y]) => [x + 200, y]);
    expect(faceWarnings(img, face(outside), chipTransform(face(outside), spec), spec)).to.include('landmarks-outside-image');
    const tiny: [number, number][] = [[100, 100], [108, 100], [104, 104], [101, 107], [107, 107]];
    expect(faceWarnings(img, face(tiny), chipTransform(face(tiny), spec), spec)).to.include('small-face');
    const turned: [number, number][] = [[180, 140], [240, 140], [245, 175], [200, 205], [240, 205]];
    expect(faceWarnings(img, face(turned), chipTransform(face(turned), spec), spec)).to.include('extreme-pose');
  });
  it('alignFace returns a chip of the model input size and anti-aliases large faces', () => {
    const pts: [number, number][] = [[130, 120], [270, 120], [200, 190], [145, 250], [255, 250]];
    const a = alignFace(img, { box: [60, 40, 340, 300], landmarks5: pts, landmarks68: null }, dlib);
    expect([a.image.width, a.image.height]).to.deep.equal([150, 150]);
  });

  it('a large face: the chip equals a warp of the whole photo box-filtered by k (only the face\'s part is filtered), exactly', () => {
    const rng = new Rng(7), W = 1400, H = 1000;
    const photo: RgbImage = { data: Uint8Array.from({ length: W * H * 3 }, () => Math.floor(rng.uniform() * 256)), width: W, height: H };
    const boxFilter = (k: number): RgbImage => { // naive: every reduced pixel of the photo
      const w = Math.floor(W / k), h = Math.floor(H / k), data = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) s += photo.data[((y * k + dy) * W + x * k + dx) * 3 + c]!;
        data[(y * w + x) * 3 + c] = Math.round(s / (k * k));
      }
      return { data, width: w, height: h };
    };
    // Faces of 2-4x the chip, upright and rolled, inside the photo and running off each edge.
    const faces: [number, number, number, number][] = [[700, 500, 650, 0], [700, 500, 1000, 0.4], [120, 160, 760, -0.3], [1300, 960, 660, 0.2], [700, 60, 1300, 0]];
    for (const [cx, cy, size, roll] of faces) {
      const eye = size * 0.2, [c, s] = [Math.cos(roll), Math.sin(roll)];
      const at = (dx: number, dy: number): [number, number] => [cx + c * dx - s * dy, cy + s * dx + c * dy];
      const pts = [at(-eye, -eye * 0.6), at(eye, -eye * 0.6), at(0, 0), at(-eye * 0.8, eye), at(eye * 0.8, eye)];
      const chip = alignFace(photo, { box: [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], landmarks5: pts, landmarks68: null }, dlib);
      const t = chip.toImage, k = Math.floor(Math.sqrt(Math.abs(t[0] * t[4] - t[1] * t[3])));
      expect(k, `face ${cx},${cy}: k`).to.be.at.least(2);
      const want = warpAffine(boxFilter(k), t.map((v) => v / k) as Affine, 150, 150);
      expect(Buffer.from(chip.image.data).equals(Buffer.from(want.data)), `face ${cx},${cy} size ${size}`).to.equal(true);
    }
  });
});
