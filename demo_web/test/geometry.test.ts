import { describe, expect, it } from "vitest";

import { fitInside, imageToScreen, resizedHW, screenToImage, toModelFrame } from "../src/geometry";

describe("resizedHW (long side 1024, int(x + 0.5) rounding)", () => {
  it.each([
    ["landscape 480x640", [480, 640], [768, 1024]],
    ["portrait 700x525", [700, 525], [1024, 768]],
    ["small 123x77", [123, 77], [1024, 641]], // 77 * 1024 / 123 = 641.04
    ["rounds half up", [3, 2], [1024, 683]], // 682.67
    ["square", [1024, 1024], [1024, 1024]],
    ["extreme 1x3000 keeps 1 px", [1, 3000], [1, 1024]],
  ] as const)("%s", (_, orig, want) => {
    expect(resizedHW(orig)).toEqual(want);
  });

  it("refuses sizes that are not positive integers", () => {
    expect(() => resizedHW([0, 10])).toThrow(/positive integer \[H, W\], got \[0, 10\]/);
    expect(() => resizedHW([10.5, 10])).toThrow(RangeError);
  });
});

describe("toModelFrame: x by w/W, y by h/H", () => {
  it("landscape", () => {
    const p = toModelFrame({ x: 555.5028570496058, y: 174.42230619316044 }, [480, 640]);
    expect(p.x).toBeCloseTo((555.5028570496058 * 1024) / 640, 10);
    expect(p.y).toBeCloseTo((174.42230619316044 * 768) / 480, 10);
  });
  it("portrait", () => {
    const p = toModelFrame({ x: 467.0712932531309, y: 394.8464101588009 }, [700, 525]);
    expect(p.x).toBeCloseTo((467.0712932531309 * 768) / 525, 10);
    expect(p.y).toBeCloseTo((394.8464101588009 * 1024) / 700, 10);
  });
  it("tiny: each axis scales by its own rounded side", () => {
    const p = toModelFrame({ x: 77, y: 123 }, [123, 77]);
    expect(p).toEqual({ x: 641, y: 1024 }); // the far corner maps to the resized size exactly
  });
});

describe("toModelFrame, square (SAM 2): x / W * 1024, y / H * 1024 in float32", () => {
  it("stretches each axis to 1024 independently", () => {
    expect(toModelFrame({ x: 320, y: 240 }, [480, 640], "square")).toEqual({ x: 512, y: 512 });
    expect(toModelFrame({ x: 77, y: 123 }, [123, 77], "square")).toEqual({ x: 1024, y: 1024 });
  });
  it("rounds as float32 arithmetic does", () => {
    const p = toModelFrame({ x: 514.71185960607, y: 326.14929478352434 }, [480, 640], "square");
    expect(p).toEqual({ x: 823.5389404296875, y: 695.78515625 }); // the kit's float32 values
  });
  it("checks the size", () => {
    expect(() => toModelFrame({ x: 1, y: 1 }, [0, 10], "square")).toThrow(RangeError);
  });
});

describe("screen <-> image", () => {
  const rect = { left: 100, top: 50, width: 320, height: 240 }; // a 640x480 image shown at half size
  it("maps a pointer to image pixels and back", () => {
    const p = screenToImage(260, 170, rect, [480, 640]);
    expect(p).toEqual({ x: 320, y: 240 });
    expect(imageToScreen(p, rect, [480, 640])).toEqual({ x: 260, y: 170 });
  });
  it("keeps fractions (a click between pixels stays between pixels)", () => {
    expect(screenToImage(100.25, 50.75, rect, [480, 640])).toEqual({ x: 0.5, y: 1.5 });
  });
  it("clamps to the image", () => {
    expect(screenToImage(0, 1000, rect, [480, 640])).toEqual({ x: 0, y: 480 });
  });
  it("fitInside keeps the aspect", () => {
    expect(fitInside([700, 525], 350, 1000)).toEqual([350, 262.5]);
    expect(fitInside([480, 640], 1000, 320)).toEqual([240, 320]);
  });
});
