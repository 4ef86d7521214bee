import { describe, expect, it } from "vitest";

import { MASK_COLOUR, binarize, cutout, maskArea, maskToRGBA } from "../src/masks";

describe("mask to pixels", () => {
  it("thresholds logits at 0 (strictly above)", () => {
    expect(Array.from(binarize(Float32Array.of(-1, 0, 1e-6, 3, -0)))).toEqual([0, 0, 1, 1, 0]);
  });

  it("colours set pixels, leaves the rest transparent, row-major H x W", () => {
    const mask = Uint8Array.of(1, 0, 0, 0, 0, 1); // 2 rows x 3 columns
    const rgba = maskToRGBA(mask, 2, 3);
    expect(Array.from(rgba.subarray(0, 4))).toEqual([...MASK_COLOUR]);
    expect(Array.from(rgba.subarray(4, 8))).toEqual([0, 0, 0, 0]);
    expect(Array.from(rgba.subarray(20, 24))).toEqual([...MASK_COLOUR]); // row 1, column 2
    expect(maskArea(mask)).toBe(2);
  });

  it("cuts out: image pixels kept inside, alpha 0 outside", () => {
    const image = new Uint8ClampedArray([10, 20, 30, 255, 40, 50, 60, 255]);
    const out = cutout(image, Uint8Array.of(0, 1), 1, 2);
    expect(Array.from(out)).toEqual([10, 20, 30, 0, 40, 50, 60, 255]);
    expect(Array.from(image)).toEqual([10, 20, 30, 255, 40, 50, 60, 255]); // input untouched
  });

  it("refuses sizes that do not match", () => {
    expect(() => maskToRGBA(new Uint8Array(5), 2, 3)).toThrow(/mask: expected 2x3 values, got 5/);
    expect(() => cutout(new Uint8ClampedArray(8), new Uint8Array(3), 1, 2)).toThrow(/mask: expected 1x2/);
  });
});
