import { describe, expect, it } from "vitest";

import { pageOptions } from "../src/options";

describe("pageOptions: the page's URL options", () => {
  it("reads ?bundle= and ?engine= as given, null when absent", () => {
    expect(pageOptions("?bundle=bundles/a/bundle.json&engine=webgpu", 4)).toMatchObject({ bundle: "bundles/a/bundle.json", engine: "webgpu" });
    expect(pageOptions("", 4)).toMatchObject({ bundle: null, engine: null });
  });

  it("takes ?threads=N for an integer 1-16, else one thread per core up to 8", () => {
    expect(pageOptions("?threads=2", 12).threads).toBe(2);
    expect(pageOptions("?threads=16", 2).threads).toBe(16);
    for (const bad of ["0", "17", "2.5", "two", ""]) expect(pageOptions(`?threads=${bad}`, 12).threads).toBe(8);
    expect(pageOptions("", 3).threads).toBe(3);
    expect(pageOptions("", 0).threads).toBe(1);
    expect(pageOptions("", undefined).threads).toBe(1);
  });

  it("passes ?box_threshold= and ?text_threshold= on as given, only where given", () => {
    expect(pageOptions("?box_threshold=0.4&text_threshold=x", 4).thresholds).toEqual({ box_threshold: "0.4", text_threshold: "x" });
    expect(pageOptions("?box_threshold=1", 4).thresholds).toEqual({ box_threshold: "1" });
    expect(pageOptions("", 4).thresholds).toEqual({});
  });
});
