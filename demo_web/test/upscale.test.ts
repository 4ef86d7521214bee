import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import type { HW, Resize } from "../src/geometry";
import { LOW_RES, axisTaps, linearTaps, mergedTaps, upscaleLogits, upscaleMask } from "../src/upscale";

interface Case {
  hw: [number, number];
  family: "sam" | "sam2";
  /** [along W, along H]: every stride-th value of the stored rows (columns) */
  stride: [number, number];
  rows: Record<string, number[]>;
  cols: Record<string, number[]>;
  samples: number[];
  sum: number;
  mask_count: number;
  near_zero: number;
}

// written by fixtures/make_upscale_cases.py with the Python runtime's sam_onnx.runtime.core.upscale
const fixture = JSON.parse(readFileSync(new URL("./fixtures/upscale_cases.json", import.meta.url), "utf8")) as {
  samples: number;
  cases: Case[];
};

const RESIZE: Record<Case["family"], Resize> = { sam: "long_side", sam2: "square" };
const TOLERANCE = 1e-5;

/** The fixture's low-res logits, from the same integer formula as the Python generator. */
function pattern(): Float32Array {
  const out = new Float32Array(LOW_RES * LOW_RES);
  for (let y = 0; y < LOW_RES; y++) {
    for (let x = 0; x < LOW_RES; x++) out[y * LOW_RES + x] = (((x * 37 + y * 91 + ((x * y) % 23) * 11) % 201) - 100) / 4;
  }
  return out;
}

function samples([h, w]: HW): number[] {
  return Array.from({ length: fixture.samples }, (_, i) => (i * 7919 + i * i * 31) % (h * w));
}

/** Largest |a - b| relative to max(1, |b|): the logits reach about 25. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return worst;
}

describe("upscaleLogits agrees with the Python runtime's upscale_logits", () => {
  const low = pattern();
  for (const c of fixture.cases) {
    it(`${c.family} 256x256 -> ${c.hw.join("x")}`, () => {
      const [h, w] = c.hw;
      const logits = upscaleLogits(low, c.hw, RESIZE[c.family]);
      expect(logits.length).toBe(h * w);
      const [sw, sh] = c.stride;
      for (const [r, want] of Object.entries(c.rows)) {
        const row = logits.subarray(Number(r) * w, (Number(r) + 1) * w).filter((_, x) => x % sw === 0);
        expect(maxDiff(row, want)).toBeLessThan(TOLERANCE);
      }
      for (const [col, want] of Object.entries(c.cols)) {
        const column = Array.from({ length: Math.ceil(h / sh) }, (_, i) => logits[i * sh * w + Number(col)]);
        expect(maxDiff(column, want)).toBeLessThan(TOLERANCE);
      }
      expect(maxDiff(samples(c.hw).map((i) => logits[i]), c.samples)).toBeLessThan(TOLERANCE);
      const sum = logits.reduce((a, v) => a + v, 0);
      expect(Math.abs(sum - c.sum) / (h * w)).toBeLessThan(TOLERANCE);
    });
  }
});

describe("upscaleMask", () => {
  const low = pattern();
  for (const c of fixture.cases) {
    it(`${c.family} ${c.hw.join("x")}: the Python mask's pixel count, up to logits within 1e-4 of 0`, () => {
      const mask = upscaleMask(low, c.hw, RESIZE[c.family]);
      const count = mask.reduce((a, v) => a + v, 0);
      expect(Math.abs(count - c.mask_count)).toBeLessThanOrEqual(c.near_zero);
      // exactly the thresholded logits of upscaleLogits
      const logits = upscaleLogits(low, c.hw, RESIZE[c.family]);
      expect(mask.every((v, i) => v === (logits[i] > 0 ? 1 : 0))).toBe(true);
    });
  }

  it("refuses low-res logits of the wrong size", () => {
    expect(() => upscaleMask(new Float32Array(100), [10, 10], "square")).toThrow(/expected 65536 floats/);
  });
});

describe("taps", () => {
  it("linearTaps: weights sum to 1, indexes in range, the edges clamped", () => {
    for (const [n, m] of [[256, 1024], [256, 7], [700, 525], [3, 1500]] as const) {
      const { i0, i1, w0, w1 } = linearTaps(n, m);
      for (let i = 0; i < m; i++) {
        expect(w0[i] + w1[i]).toBeCloseTo(1, 6);
        expect(i0[i]).toBeGreaterThanOrEqual(0);
        expect(i1[i]).toBeLessThan(n);
        expect(i1[i] - i0[i]).toBeLessThanOrEqual(1);
      }
    }
  });

  it("axisTaps: SAM v1 combines four low-res samples, SAM 2 two", () => {
    expect(axisTaps(480, 768).k).toBe(4);
    expect(axisTaps(480, null).k).toBe(2);
    const { weight } = axisTaps(700, 1024);
    for (let o = 0; o < 700; o++) expect(weight[4 * o] + weight[4 * o + 1] + weight[4 * o + 2] + weight[4 * o + 3]).toBeCloseTo(1, 5);
  });

  it("mergedTaps: equal indexes summed, distinct ones first, unused slots weight 0 on the first index", () => {
    const taps = { k: 4, index: Int32Array.of(5, 5, 6, 6, 2, 3, 4, 4), weight: Float32Array.of(0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25) };
    const merged = mergedTaps(taps);
    expect(merged.k).toBe(4);
    expect(Array.from(merged.index)).toEqual([5, 6, 5, 5, 2, 3, 4, 2]);
    const f = Math.fround; // the weights are float32, summed in float32
    expect(Array.from(merged.weight)).toEqual([f(f(0.1) + f(0.2)), f(f(0.3) + f(0.4)), 0, 0, 0.25, 0.25, 0.5, 0]);
    // for every output sample the same sum as before merging
    const { index, weight } = axisTaps(480, 768);
    const m = mergedTaps({ k: 4, index, weight });
    const value = (i: number) => Math.sin(i) * 10;
    for (let o = 0; o < 480; o++) {
      let a = 0;
      let b = 0;
      for (let t = 4 * o; t < 4 * o + 4; t++) {
        a += weight[t] * value(index[t]);
        b += m.weight[t] * value(m.index[t]);
      }
      expect(b).toBeCloseTo(a, 5);
    }
  });
});
