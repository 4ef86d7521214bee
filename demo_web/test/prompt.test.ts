import { describe, expect, it } from "vitest";

import { EMBEDDING_SIZE, decoderFeeds, promptPoints } from "../src/prompt";

const embedding = new Float32Array(EMBEDDING_SIZE).fill(0.5);

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
    expect(() => decoderFeeds(new Float32Array(10), prompt, [10, 10], null)).toThrow(/image_embeddings: expected 1048576/);
    expect(() => decoderFeeds(embedding, prompt, [10, 10], new Float32Array(5))).toThrow(/mask_input: expected 65536/);
  });
});
