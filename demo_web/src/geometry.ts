/**
 * Coordinates between the screen, the original image and the decoder's input frame.
 *
 * Sizes are [height, width] (HW); points are {x, y} (XY), in pixels of the original image unless
 * named otherwise. The decoder wants points in the frame of the image as its encoder resized it,
 * which the decoder graph's metadata `resize` names: `long_side` (SAM v1's ResizeLongestSide: long
 * side 1024, sizes rounded as `int(side * scale + 0.5)`, then padded) or `square` (SAM 2: both sides
 * stretched to 1024, `x / W * 1024`, `y / H * 1024`).
 */

export const LONG_SIDE = 1024;

/** How the encoder resized the image: the decoder graph's metadata `resize`. */
export type Resize = "long_side" | "square";

export type HW = readonly [number, number];

export interface XY {
  x: number;
  y: number;
}

function checkHW(orig: HW): HW {
  const [h, w] = orig;
  if (!(h > 0 && w > 0) || !Number.isInteger(h) || !Number.isInteger(w)) {
    throw new RangeError(`image size: expected positive integer [H, W], got [${h}, ${w}]`);
  }
  return orig;
}

/** Size [h, w] of an image of size `orig` [H, W] resized to long side `longSide` (never below 1 px). */
export function resizedHW(orig: HW, longSide: number = LONG_SIDE): [number, number] {
  const [h, w] = checkHW(orig);
  const scale = longSide / Math.max(h, w);
  return [Math.max(1, Math.floor(h * scale + 0.5)), Math.max(1, Math.floor(w * scale + 0.5))];
}

/**
 * A point in original-image pixels mapped into the decoder's 1024 frame. `long_side`: x by w/W and
 * y by h/H of the rounded resized size [h, w] (as SAM v1's `apply_coords`, in float64); `square`:
 * x / W * 1024 and y / H * 1024 in float32, as SAM 2's predictor computes them (the point rounded
 * to float32, divided with one float32 rounding; the product by 1024 is exact), so that the
 * coordinates agree bit for bit (float64 arithmetic would be 1 ulp off for some points).
 */
export function toModelFrame(p: XY, orig: HW, resize: Resize = "long_side"): XY {
  if (resize === "square") {
    checkHW(orig);
    const f = Math.fround;
    return { x: f(f(p.x) / orig[1]) * LONG_SIDE, y: f(f(p.y) / orig[0]) * LONG_SIDE };
  }
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
