/** Face boxes as corner coordinates [x1, y1, x2, y2] in image pixels, and non-maximum suppression. */

export type Corners = [number, number, number, number];

export function area(b: Corners): number {
  return Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
}

/** Intersection over union (mode 'union') or over the smaller box (mode 'min', MTCNN's last stage option). */
export function overlap(a: Corners, b: Corners, mode: 'union' | 'min' = 'union'): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const denom = mode === 'union' ? area(a) + area(b) - inter : Math.min(area(a), area(b));
  return denom > 0 ? inter / denom : 0;
}

/** Greedy NMS: indices of the kept boxes, highest score first. */
export function nms(boxes: readonly Corners[], scores: readonly number[], threshold: number, mode: 'union' | 'min' = 'union'): number[] {
  const order = scores.map((_, i) => i).sort((i, j) => scores[j]! - scores[i]!);
  const keep: number[] = [];
  const suppressed = new Uint8Array(boxes.length);
  for (const i of order) {
    if (suppressed[i]) continue;
    keep.push(i);
    for (const j of order) if (!suppressed[j] && j !== i && overlap(boxes[i]!, boxes[j]!, mode) > threshold) suppressed[j] = 1;
  }
  return keep;
}
