import { describe, expect, it } from "vitest";

import { FAMILIES } from "../src/family";
import { decoderFeeds, decoderInputNames, promptPoints } from "../src/prompt";

const embedding = { image_embeddings: new Float32Array(256 * 64 * 64).fill(0.5) };

describe("promptPoints", () => {
  it("appends the padding point (0, 0) labelled -1 when there is no box", () => {
    const { coords, labels } = promptPoints({ clicks: [{ x: 320, y: 240, positive: true }], box: null }, [480, 640]);
    expect(Array.from(coords)).toEqual([512, 384, 0, 0]);
    expect(Array.from(labels)).toEqual([1, -1]);
  });

  it("puts points first, then the box corners labelled 2 and 3, without padding", () => {
    const { coords, labels } = promptPoints(
      { clicks: [{ x: 50, y: 70, positive: false }], box: { x0: 400, y0: 350, x1: 100, y1: 70 } },
      [700, 525],
    );
    const s = 768 / 525; // x scale; y scale is 1024 / 700
    const t = 1024 / 700;
    const want = [50 * s, 70 * t, 100 * s, 70 * t, 400 * s, 350 * t]; // corners sorted: top-left first
    Array.from(coords).forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
    expect(Array.from(labels)).toEqual([0, 2, 3]);
  });

  it("refuses an empty prompt", () => {
    expect(() => promptPoints({ clicks: [], box: null }, [10, 10])).toThrow(/at least one point or a box/);
  });
});

describe("decoderFeeds: the official contract", () => {
  it("has the six inputs with their shapes; orig_im_size is (H, W)", () => {
    const feeds = decoderFeeds(embedding, { clicks: [{ x: 1, y: 2, positive: true }], box: null }, [123, 77], null);
    expect(Object.keys(feeds).sort()).toEqual(
      ["has_mask_input", "image_embeddings", "mask_input", "orig_im_size", "point_coords", "point_labels"].sort(),
    );
    expect(feeds.image_embeddings.dims).toEqual([1, 256, 64, 64]);
    expect(feeds.point_coords.dims).toEqual([1, 2, 2]);
    expect(feeds.point_labels.dims).toEqual([1, 2]);
    expect(feeds.mask_input.dims).toEqual([1, 1, 256, 256]);
    expect(Array.from(feeds.orig_im_size.data)).toEqual([123, 77]);
    expect(Array.from(feeds.has_mask_input.data)).toEqual([0]);
    expect(feeds.mask_input.data.every((v) => v === 0)).toBe(true);
  });

  it("feeds the previous low-res logits back with has_mask_input 1", () => {
    const previous = new Float32Array(256 * 256).fill(-3);
    const feeds = decoderFeeds(embedding, { clicks: [{ x: 1, y: 2, positive: true }], box: null }, [10, 10], previous);
    expect(Array.from(feeds.has_mask_input.data)).toEqual([1]);
    expect(feeds.mask_input.data).toBe(previous);
  });

  it("names the input that has the wrong size", () => {
    const prompt = { clicks: [{ x: 1, y: 2, positive: true }], box: null };
    expect(() => decoderFeeds({ image_embeddings: new Float32Array(10) }, prompt, [10, 10], null)).toThrow(
      /image_embeddings: expected 1048576 floats \(1x256x64x64\), got 10 floats/,
    );
    expect(() => decoderFeeds(embedding, prompt, [10, 10], new Float32Array(5))).toThrow(/mask_input: expected 65536/);
  });
});

describe("SAM 2 (family sam2): square frame, box first, no padding point", () => {
  const sam2 = FAMILIES.sam2;
  const features = {
    image_embeddings: new Float32Array(256 * 64 * 64),
    high_res_feats_0: new Float32Array(32 * 256 * 256),
    high_res_feats_1: new Float32Array(64 * 128 * 128),
  };

  it("one click: x / W * 1024, y / H * 1024, and no padding point (the graph appends it)", () => {
    const { coords, labels } = promptPoints({ clicks: [{ x: 320, y: 240, positive: true }], box: null }, [480, 640], sam2);
    expect(Array.from(coords)).toEqual([512, 512]);
    expect(Array.from(labels)).toEqual([1]);
  });

  it("puts the box corners (2, 3) before the points", () => {
    const { coords, labels } = promptPoints(
      { clicks: [{ x: 50, y: 70, positive: false }], box: { x0: 400, y0: 350, x1: 100, y1: 70 } },
      [700, 525],
      sam2,
    );
    const want = [100 / 525, 70 / 700, 400 / 525, 350 / 700, 50 / 525, 70 / 700].map((v) => Math.fround(v * 1024));
    expect(Array.from(coords)).toEqual(want);
    expect(Array.from(labels)).toEqual([2, 3, 0]);
  });

  it("reproduces the kit's model_point_coords bit for bit (landscape three_points, box)", () => {
    // sam2.1_hiera_t_seed0.npz: the prompts in pixels (meta) and model_point_coords (float32)
    const clicks = [
      { x: 621.8599845504192, y: 107.54715442212786, positive: true },
      { x: 514.71185960607, y: 326.14929478352434, positive: true },
      { x: 301.0076730632223, y: 14.75582039393364, positive: false },
    ];
    const points = promptPoints({ clicks, box: null }, [480, 640], sam2);
    // float64 arithmetic would give 823.5390014648438 and 481.6122741699219
    expect(Array.from(points.coords)).toEqual([
      994.9759521484375, 229.43392944335938, 823.5389404296875, 695.78515625, 481.61224365234375, 31.479084014892578,
    ]);
    expect(Array.from(points.labels)).toEqual([1, 1, 0]);
  });

  it("feeds the three features with their shapes, in the graph's input order", () => {
    const feeds = decoderFeeds(features, { clicks: [{ x: 1, y: 2, positive: true }], box: null }, [123, 77], null, sam2);
    expect(Object.keys(feeds)).toEqual(decoderInputNames(sam2));
    expect(decoderInputNames(sam2).slice(0, 3)).toEqual(["image_embeddings", "high_res_feats_0", "high_res_feats_1"]);
    expect(feeds.high_res_feats_0.dims).toEqual([1, 32, 256, 256]);
    expect(feeds.high_res_feats_1.dims).toEqual([1, 64, 128, 128]);
    expect(feeds.point_coords.dims).toEqual([1, 1, 2]);
    expect(feeds.high_res_feats_1.data).toBe(features.high_res_feats_1);
  });

  it("names a missing high-res feature", () => {
    const prompt = { clicks: [{ x: 1, y: 2, positive: true }], box: null };
    expect(() => decoderFeeds(embedding, prompt, [10, 10], null, sam2)).toThrow(/high_res_feats_0: expected 2097152 floats \(1x32x256x256\), got none/);
  });
});
