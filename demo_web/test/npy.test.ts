import { describe, expect, it } from "vitest";

import { parseNpy } from "../src/npy";

/** A .npy file (format 1.0) as numpy writes it. */
function npy(descr: string, shape: number[], values: number[], fortran = false): ArrayBuffer {
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);
  const header = dict + " ".repeat(pad % 64) + "\n";
  const bytes = new Uint8Array(10 + header.length + values.length * 4);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  bytes.set(new TextEncoder().encode(header), 10);
  const data = new DataView(bytes.buffer, 10 + header.length);
  values.forEach((v, i) => data.setFloat32(4 * i, v, true));
  return bytes.buffer;
}

describe("parseNpy", () => {
  it("reads float32 C-order arrays", () => {
    const arr = parseNpy(npy("<f4", [1, 2, 3], [0, 1, 2, 3, 4, 5.5]));
    expect(arr.shape).toEqual([1, 2, 3]);
    expect(Array.from(arr.data)).toEqual([0, 1, 2, 3, 4, 5.5]);
  });

  it("says what came instead", () => {
    expect(() => parseNpy(new TextEncoder().encode("hello world!").buffer, "emb")).toThrow(/emb: expected a .npy file/);
    expect(() => parseNpy(npy("<f8", [1], [0, 0]))).toThrow(/expected dtype '<f4' \(float32\), got <f8/);
    expect(() => parseNpy(npy("<f4", [2, 2], [1, 2, 3, 4], true))).toThrow(/C order/);
    expect(() => parseNpy(npy("<f4", [3], [1, 2]))).toThrow(/needs 12 data bytes, got 8/);
  });
});

describe("toNpy", () => {
  it("writes what parseNpy (and numpy) read back: header padded to 64 bytes, little-endian float32", async () => {
    const { toNpy } = await import("../src/npy");
    const data = Float32Array.of(1.5, -2, 3.25, 0, 1e-7, 65504);
    const bytes = toNpy(data, [1, 2, 3]);
    expect((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64).toBe(0);
    const back = parseNpy(bytes.buffer, "round trip");
    expect(back.shape).toEqual([1, 2, 3]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
    expect(() => toNpy(data, [4])).toThrow(/needs 4 values, got 6/);
  });
});
