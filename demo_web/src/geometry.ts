/**
 * Coordinates between the screen, the original image and the decoder's input frame.
 *
 * Sizes are [height, width] (HW); points are {x, y} (XY), in pixels of the original image unless
 * named otherwise. The decoder wants points in the frame of the image resized so its long side is
 * 1024 (SAM's ResizeLongestSide), with sizes rounded as `int(side * scale + 0.5)`.
 */

export const LONG_SIDE = 1024;

export type HW = readonly [number, number];

export interface XY {
  x: number;
  y: number;
}

/** Size [h, w] of an image of size `orig` [H, W] resized to long side `longSide` (never below 1 px). */
export function resizedHW(orig: HW, longSide: number = LONG_SIDE): [number, number] {
  const [h, w] = orig;
  if (!(h > 0 && w > 0) || !Number.isInteger(h) || !Number.isInteger(w)) {
    throw new RangeError(`image size: expected positive integer [H, W], got [${h}, ${w}]`);
  }
  const scale = longSide / Math.max(h, w);
  return [Math.max(1, Math.floor(h * scale + 0.5)), Math.max(1, Math.floor(w * scale + 0.5))];
}

/** A point in original-image pixels mapped into the decoder's 1024 frame (x by w/W, y by h/H). */
export function toModelFrame(p: XY, orig: HW): XY {
  const [newH, newW] = resizedHW(orig);
  return { x: p.x * (newW / orig[1]), y: p.y * (newH / orig[0]) };
}

/** The rectangle an element occupies on screen, as `getBoundingClientRect()` gives it. */
export interface ScreenRect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * A pointer position (clientX, clientY) over an image drawn into `rect` mapped to original-image
 * pixels, clamped to the image. The image fills the rectangle exactly (the page keeps the aspect).
 */
export function screenToImage(clientX: number, clientY: number, rect: ScreenRect, orig: HW): XY {
  const [h, w] = orig;
  const x = ((clientX - rect.left) / rect.width) * w;
  const y = ((clientY - rect.top) / rect.height) * h;
  return { x: Math.min(Math.max(x, 0), w), y: Math.min(Math.max(y, 0), h) };
}

/** The inverse of `screenToImage`: where an image pixel position lies on screen. */
export function imageToScreen(p: XY, rect: ScreenRect, orig: HW): XY {
  return { x: rect.left + (p.x / orig[1]) * rect.width, y: rect.top + (p.y / orig[0]) * rect.height };
}

/** CSS size [height, width] that shows an image of size `orig` inside a box, keeping its aspect. */
export function fitInside(orig: HW, maxH: number, maxW: number): [number, number] {
  const scale = Math.min(maxH / orig[0], maxW / orig[1]);
  return [orig[0] * scale, orig[1] * scale];
}
