/**
 * From the decoder's mask logits (H x W, row-major, original image size) to pixels on the page.
 * A pixel is in the mask where its logit is above 0 (SAM's mask threshold).
 */

export type RGBA = readonly [number, number, number, number];

export const MASK_COLOUR: RGBA = [30, 144, 255, 140];

/** 1 where `logits` > 0, else 0. */
export function binarize(logits: Float32Array): Uint8Array {
  const mask = new Uint8Array(logits.length);
  for (let i = 0; i < logits.length; i++) mask[i] = logits[i] > 0 ? 1 : 0;
  return mask;
}

function checkSize(what: string, length: number, h: number, w: number, perPixel = 1): void {
  if (length !== h * w * perPixel) {
    throw new RangeError(`${what}: expected ${h}x${w}${perPixel > 1 ? `x${perPixel}` : ""} values, got ${length}`);
  }
}

/** RGBA pixels (H x W x 4) of the mask drawn in `colour`, transparent elsewhere. */
export function maskToRGBA(mask: Uint8Array, h: number, w: number, colour: RGBA = MASK_COLOUR): Uint8ClampedArray<ArrayBuffer> {
  checkSize("mask", mask.length, h, w);
  const out = new Uint8ClampedArray(h * w * 4);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) out.set(colour, 4 * i);
  }
  return out;
}

/** The image's RGBA pixels kept where the mask is set, fully transparent elsewhere (the cut-out). */
export function cutout(imageRGBA: Uint8ClampedArray, mask: Uint8Array, h: number, w: number): Uint8ClampedArray<ArrayBuffer> {
  checkSize("image", imageRGBA.length, h, w, 4);
  checkSize("mask", mask.length, h, w);
  const out = new Uint8ClampedArray(imageRGBA);
  for (let i = 0; i < mask.length; i++) if (!mask[i]) out[4 * i + 3] = 0;
  return out;
}

/** Number of set pixels. */
export function maskArea(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i];
  return n;
}
