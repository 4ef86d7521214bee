import { describe, expect, it } from "vitest";

import { downloadName, embeddingNpy } from "../src/downloads";
import { FAMILIES, type Family, featureSize } from "../src/family";
import { parseNpy } from "../src/npy";
import type { LoadedImage } from "../src/sources";

/** An image of `family` whose features hold 0, 1, 2, ... (the first) and 0.5 (the others). */
function loaded(family: Family): LoadedImage {
  const features = Object.fromEntries(
    family.features.map((spec, k) => {
      const data = new Float32Array(featureSize(spec));
      if (k === 0) data.forEach((_, i) => (data[i] = i));
      else data.fill(0.5);
      return [spec.name, data];
    }),
  );
  return { name: "photo.v2.jpg", url: "", orig: [30, 50], features, family, checkpointSha256: "" };
}

describe("downloads", () => {
  it("names the files after the image, its last extension replaced", () => {
    expect(downloadName("photo.v2.jpg", "_cutout.png")).toBe("photo.v2_cutout.png");
    expect(downloadName("scan", "_embedding.npy")).toBe("scan_embedding.npy");
  });

  it("saves the family's image embedding with the family's dims, as numpy reads it back", () => {
    for (const family of [FAMILIES.sam, FAMILIES.sam2]) {
      const image = loaded(family);
      const spec = family.features[0];
      const npy = parseNpy(embeddingNpy(image).buffer);
      expect(npy.shape).toEqual([...spec.dims]);
      const want = image.features[spec.name];
      expect(npy.data.length).toBe(want.length);
      expect(npy.data.every((v, i) => v === want[i])).toBe(true);
    }
  });
});
