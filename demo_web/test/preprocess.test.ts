import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { bilinearTaps, normalizeAndPad, resizeBilinear, resizeLongSide } from "../src/preprocess";

interface Case {
  hw: [number, number];
  long_side: number;
  resized_hw: [number, number];
  resized_sha256: string;
  resized_sum: number;
  normalized_sha256: string;
}

// written by fixtures/make_preprocess_cases.py with the Python runtime's resize_longest_side and normalize_and_pad
const fixture = JSON.parse(readFileSync(new URL("./fixtures/preprocess_cases.json", import.meta.url), "utf8")) as {
  cases: Case[];
};

/** The fixture's procedural image, as RGB or as RGBA with a varying alpha (which must be ignored). */
function pattern([h, w]: [number, number], channels: 3 | 4): Uint8Array {
  const out = new Uint8Array(h * w * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) out[(y * w + x) * channels + c] = (x * 7 + y * 13 + c * 50 + ((x * y) % 17) * 5) % 256;
      if (channels === 4) out[(y * w + x) * 4 + 3] = (x + y) % 256;
    }
  }
  return out;
}

const sha = (bytes: Uint8Array | Float32Array) =>
  createHash("sha256").update(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).digest("hex");

describe("resizeLongSide reproduces the Python runtime's Pillow resize bit for bit", () => {
  for (const c of fixture.cases) {
    for (const channels of [3, 4] as const) {
      it(`${c.hw.join("x")} -> long side ${c.long_side} from ${channels === 3 ? "RGB" : "RGBA"}`, () => {
        const { hw, rgb } = resizeLongSide({ data: pattern(c.hw, channels), hw: c.hw, channels }, c.long_side);
        expect(hw).toEqual(c.resized_hw);
        expect(rgb.reduce((a, b) => a + b, 0)).toBe(c.resized_sum);
        expect(sha(rgb)).toBe(c.resized_sha256);
      });
    }
  }
});

describe("normalizeAndPad", () => {
  it("equals normalize_and_pad (float32 bits) on every fixture case", () => {
    for (const c of fixture.cases) {
      const { hw, rgb } = resizeLongSide({ data: pattern(c.hw, 3), hw: c.hw, channels: 3 }, c.long_side);
      expect(sha(normalizeAndPad(rgb, hw, c.long_side)), c.hw.join("x")).toBe(c.normalized_sha256);
    }
  });

  it("pads with zeros and refuses an image larger than the input", () => {
    const out = normalizeAndPad(Uint8Array.of(255, 0, 128), [1, 1], 2);
    expect(out[1]).toBe(0);
    expect(out[0]).toBeCloseTo((255 - 123.675) / 58.395, 5);
    expect(() => normalizeAndPad(new Uint8Array(27), [3, 3], 2)).toThrow(/sides <= 2/);
  });
});

describe("bilinearTaps", () => {
  it("enlarging by 2 gives Pillow's quarter weights, summing to one in 22-bit fixed point", () => {
    const t = bilinearTaps(2, 4);
    expect(Array.from(t.first)).toEqual([0, 0, 0, 1]);
    expect(t.weights[t.taps * 1]).toBe(Math.trunc(0.75 * 2 ** 22 + 0.5));
    for (let i = 0; i < 4; i++) {
      const sum = t.weights.subarray(i * t.taps, (i + 1) * t.taps).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - 2 ** 22)).toBeLessThanOrEqual(2);
    }
  });

  it("refuses pixels of the wrong length", () => {
    expect(() => resizeBilinear({ data: new Uint8Array(5), hw: [2, 2], channels: 3 }, [4, 4])).toThrow(/2x2x3/);
  });
});
