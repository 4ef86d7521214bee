/**
 * The SAM v1 encoder's input from an image's pixels, computed as the Python runtime computes it
 * (`sam_onnx.preprocess`), so that the page's embedding is the runtime's:
 *
 * 1. resize so the long side is 1024 (`resizedHW`: sides `int(side * scale + 0.5)`) with Pillow's
 *    `Image.resize(..., BILINEAR)` reproduced bit for bit (`resizeBilinear`): a triangle filter
 *    whose support widens by the scale when shrinking, its weights in 22-bit fixed point, the
 *    width first into a uint8 row buffer, then the height;
 * 2. `(pixel - mean) / std` per RGB channel in float32, on the 0..255 scale (`normalizeAndPad`);
 * 3. zeros below and to the right, to 1x3x1024x1024 (CHW).
 *
 * Sizes are [height, width] (HW). Pixels are row-major, interleaved: RGBA as `ImageData` gives them
 * (the alpha channel is dropped, as the runtime drops it) or RGB.
 */

import { type HW, LONG_SIDE, resizedHW } from "./geometry";

/** SAM v1's pixel mean and std, RGB, on the 0..255 scale (the encoder graph's metadata). */
export const PIXEL_MEAN = [123.675, 116.28, 103.53] as const;
export const PIXEL_STD = [58.395, 57.12, 57.375] as const;

// Pillow keeps 8 bits for the pixel and 2 for overflow in an int32: weights have 22 fraction bits.
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Interleaved 8-bit pixels: `channels` values per pixel (3: RGB, 4: RGBA), row-major. */
export interface Pixels {
  data: Uint8Array | Uint8ClampedArray;
  hw: HW;
  channels: 3 | 4;
}

/** The taps of one axis: for output sample i, `count[i]` input samples from `first[i]`, weights `weights[i * taps + k]`. */
export interface AxisTaps {
  first: Int32Array;
  count: Int32Array;
  taps: number;
  weights: Int32Array;
}

/**
 * Pillow's bilinear taps for resizing an axis of `inSize` samples to `outSize` (its
 * `precompute_coeffs` with the triangle filter of support 1, then the weights in fixed point). The
 * arithmetic is IEEE double as in C; `Math.trunc` is C's cast to int.
 */
export function bilinearTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const w = new Float64Array(taps);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - lo;
    let total = 0;
    for (let k = 0; k < n; k++) {
      const x = Math.abs((k + lo - center + 0.5) * (1 / filterScale));
      w[k] = x < 1 ? 1 - x : 0;
      total += w[k];
    }
    for (let k = 0; k < n; k++) {
      const normalised = total !== 0 ? w[k] / total : w[k];
      // C's (int)(x + 0.5) truncates toward zero; bilinear weights are never negative
      weights[i * taps + k] = Math.trunc(0.5 + normalised * ONE);
    }
    first[i] = lo;
    count[i] = n;
  }
  return { first, count, taps, weights };
}

/** Pillow's `clip8`: the fixed-point sum back to 0..255 (its lookup table floors and clamps). */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * `Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR)` of Pillow, bit for bit: returns
 * `outHW` [h, w] RGB pixels (h x w x 3 uint8). An axis whose size does not change is not resampled.
 */
export function resizeBilinear(src: Pixels, outHW: HW): Uint8Array {
  const [inH, inW] = src.hw;
  const [outH, outW] = outHW;
  const c = src.channels;
  if (src.data.length !== inH * inW * c) {
    throw new RangeError(`image pixels: expected ${inH}x${inW}x${c} values, got ${src.data.length}`);
  }
  let rows: Pixels = { data: src.data, hw: [inH, inW], channels: c };
  const vertical = bilinearTaps(inH, outH);
  if (outW !== inW) {
    // only the rows the vertical pass reads, as Pillow does (its result is the same either way)
    const top = vertical.first[0];
    const bottom = vertical.first[outH - 1] + vertical.count[outH - 1];
    rows = { data: resizeRows(src, bilinearTaps(inW, outW), top, bottom), hw: [bottom - top, outW], channels: 3 };
    for (let i = 0; i < outH; i++) vertical.first[i] -= top;
  }
  if (outH !== inH) return resizeColumns(rows, vertical);
  return toRGB(rows);
}

/** The horizontal pass over rows `top`..`bottom` of `src`: (bottom - top) x outW x 3. */
function resizeRows(src: Pixels, t: AxisTaps, top: number, bottom: number): Uint8Array {
  const inW = src.hw[1];
  const c = src.channels;
  const outW = t.first.length;
  const out = new Uint8Array((bottom - top) * outW * 3);
  for (let y = top; y < bottom; y++) {
    const row = y * inW * c;
    for (let x = 0; x < outW; x++) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0; k < t.count[x]; k++) {
        const p = row + (t.first[x] + k) * c;
        const weight = t.weights[x * t.taps + k];
        r += src.data[p] * weight;
        g += src.data[p + 1] * weight;
        b += src.data[p + 2] * weight;
      }
      const o = ((y - top) * outW + x) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

/** The vertical pass: outH x W x 3 from `src` (its rows indexed by `t.first`). */
function resizeColumns(src: Pixels, t: AxisTaps): Uint8Array {
  const w = src.hw[1];
  const c = src.channels;
  const outH = t.first.length;
  const out = new Uint8Array(outH * w * 3);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < w; x++) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0; k < t.count[y]; k++) {
        const p = ((t.first[y] + k) * w + x) * c;
        const weight = t.weights[y * t.taps + k];
        r += src.data[p] * weight;
        g += src.data[p + 1] * weight;
        b += src.data[p + 2] * weight;
      }
      const o = (y * w + x) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

function toRGB(src: Pixels): Uint8Array {
  const n = src.hw[0] * src.hw[1];
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = src.data[src.channels * i];
    out[3 * i + 1] = src.data[src.channels * i + 1];
    out[3 * i + 2] = src.data[src.channels * i + 2];
  }
  return out;
}

/** The image resized to long side `longSide` (`resize_longest_side`): [h, w] and h x w x 3 RGB. */
export function resizeLongSide(src: Pixels, longSide: number = LONG_SIDE): { hw: [number, number]; rgb: Uint8Array } {
  const hw = resizedHW(src.hw, longSide);
  return { hw, rgb: resizeBilinear(src, hw) };
}

/**
 * `normalize_and_pad`: resized h x w x 3 RGB (sides <= `size`) -> 1 x 3 x size x size float32,
 * `(pixel - mean) / std` rounded to float32 as numpy's float32 arithmetic rounds it (a float32
 * difference and quotient computed in double and rounded once are the correctly rounded float32
 * results), zeros elsewhere.
 */
export function normalizeAndPad(rgb: Uint8Array, hw: HW, size: number = LONG_SIDE): Float32Array {
  const [h, w] = hw;
  if (h > size || w > size || rgb.length !== h * w * 3) {
    throw new RangeError(`resized image: expected ${h}x${w}x3 values with sides <= ${size}, got ${rgb.length} values`);
  }
  const f = Math.fround;
  const out = new Float32Array(3 * size * size);
  for (let ch = 0; ch < 3; ch++) {
    const mean = f(PIXEL_MEAN[ch]);
    const std = f(PIXEL_STD[ch]);
    const plane = ch * size * size;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[plane + y * size + x] = f(f(rgb[(y * w + x) * 3 + ch] - mean) / std);
    }
  }
  return out;
}
