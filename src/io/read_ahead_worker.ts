/** ReadAhead's worker: decodes the files it is sent, in order, and posts back their pixels or their error. */
import { parentPort, workerData } from 'node:worker_threads';
import { readImage, type ImageLimits, type RgbImage } from './image.js';
import { describeError, type ReadAnswer, type ReadRequest } from './read_ahead.js';

const { limits } = workerData as { limits: ImageLimits };

parentPort!.on('message', ({ index, path }: ReadRequest) => {
  let image: RgbImage;
  try {
    image = readImage(path, limits);
  } catch (e) {
    parentPort!.postMessage(describeError(index, e));
    return;
  }
  // The pixels' buffer is handed over, not copied, unless the array is a view into a larger (pooled) one.
  const { data, width, height } = image;
  const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
  const answer: ReadAnswer = { index, data: own, width, height };
  parentPort!.postMessage(answer, [own.buffer as ArrayBuffer]);
});
