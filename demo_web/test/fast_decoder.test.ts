import { describe, expect, it } from "vitest";

import { feedbackLowRes, singleMaskToken, stabilityScore } from "../src/fast_decoder";
import { FAMILIES } from "../src/family";

const PLANE = 256 * 256;

/** Four 256x256 tokens, token t filled with `fill[t]`; `iou` their scores. */
function tokens(fill: number[]): Float32Array {
  const out = new Float32Array(4 * PLANE);
  fill.forEach((v, t) => out.fill(v, t * PLANE, (t + 1) * PLANE));
  return out;
}

describe("singleMaskToken, SAM v1 (the official ONNX rule: iou + (N - 2.5) * 1000 on token 0)", () => {
  const low = tokens([1, 1, 1, 1]);
  it("one click and its padding point (N = 2): the best of tokens 1..3, even when token 0 scores higher", () => {
    expect(singleMaskToken(low, Float32Array.of(0.99, 0.5, 0.9, 0.7), 2, FAMILIES.sam)).toBe(2);
  });
  it("two clicks and the padding point (N = 3), or a box: token 0", () => {
    expect(singleMaskToken(low, Float32Array.of(0.1, 0.5, 0.9, 0.7), 3, FAMILIES.sam)).toBe(0);
  });
  it("the first of equal scores", () => {
    expect(singleMaskToken(low, Float32Array.of(0.9, 0.8, 0.8, 0.2), 2, FAMILIES.sam)).toBe(1);
  });
  it("refuses outputs of the wrong size", () => {
    expect(() => singleMaskToken(new Float32Array(PLANE), Float32Array.of(1, 2, 3, 4), 2, FAMILIES.sam)).toThrow(/4x256x256/);
  });
});

describe("singleMaskToken, SAM 2 (token 0 unless its stability is under 0.98)", () => {
  const iou = Float32Array.of(0.99, 0.5, 0.9, 0.9);
  it("a stable token 0 (no logit within +-0.05) is kept, whatever the scores", () => {
    expect(singleMaskToken(tokens([3, 0, 0, 0]), iou, 1, FAMILIES.sam2)).toBe(0);
  });
  it("an unstable token 0: the best IoU of tokens 1..3, the first on ties", () => {
    const low = tokens([3, 0, 0, 0]);
    low.fill(0.01, 0, 0.03 * PLANE); // 3 % of token 0 between -delta and delta: stability 0.97
    expect(stabilityScore(low.subarray(0, PLANE), 0.05)).toBeCloseTo(0.97, 2);
    expect(singleMaskToken(low, iou, 1, FAMILIES.sam2)).toBe(2);
  });
  it("nothing above -delta is stable (1, not 0/0)", () => {
    expect(stabilityScore(new Float32Array(PLANE).fill(-1), 0.05)).toBe(1);
  });
});

describe("feedbackLowRes", () => {
  it("clamps SAM 2's low-res logits to +-32 and leaves SAM v1's as they are, in a copy", () => {
    const low = Float32Array.of(-50, -3, 0, 40);
    expect(Array.from(feedbackLowRes(low, FAMILIES.sam2))).toEqual([-32, -3, 0, 32]);
    expect(Array.from(feedbackLowRes(low, FAMILIES.sam))).toEqual([-50, -3, 0, 40]);
    expect(feedbackLowRes(low, FAMILIES.sam)).not.toBe(low);
  });
});
