import { describe, expect, it } from "vitest";

import { ENCODER_LIMIT_GMACS, EncoderTooHeavyError, checkEncoderFits, chooseEngine, probeAdapter } from "../src/engine";

const gpu = (adapter: object | null) => ({ requestAdapter: async () => adapter });
const NVIDIA = { vendor: "nvidia", architecture: "ampere", isFallback: false };
const SWIFTSHADER = { vendor: "google", architecture: "swiftshader", isFallback: false };

describe("probeAdapter", () => {
  it("reads vendor, architecture and the fallback flag; null without WebGPU, adapter or on failure", async () => {
    expect(await probeAdapter(gpu({ info: { vendor: "nvidia", architecture: "ampere" } }))).toEqual(NVIDIA);
    expect((await probeAdapter(gpu({ info: {}, isFallbackAdapter: true })))?.isFallback).toBe(true);
    expect(await probeAdapter(undefined)).toBeNull();
    expect(await probeAdapter(gpu(null))).toBeNull();
    expect(await probeAdapter({ requestAdapter: async () => Promise.reject(new Error("lost")) })).toBeNull();
  });
});

describe("chooseEngine", () => {
  it("takes a hardware WebGPU adapter, else wasm with its thread count", () => {
    expect(chooseEngine(NVIDIA, null, 4)).toEqual({ name: "webgpu", label: "WebGPU (nvidia ampere)" });
    expect(chooseEngine(null, null, 4)).toEqual({ name: "wasm", label: "wasm, 4 threads" });
    expect(chooseEngine(null, null, 1).label).toBe("wasm, 1 thread");
  });

  it("leaves a software adapter (SwiftShader, fallback) to wasm unless WebGPU is asked for", () => {
    expect(chooseEngine(SWIFTSHADER, null, 2).name).toBe("wasm");
    expect(chooseEngine({ ...NVIDIA, isFallback: true }, null, 2).name).toBe("wasm");
    expect(chooseEngine(SWIFTSHADER, "webgpu", 2).name).toBe("webgpu");
    expect(chooseEngine(NVIDIA, "wasm", 2).name).toBe("wasm");
  });

  it("refuses WebGPU asked for without an adapter, and unknown engines", () => {
    expect(() => chooseEngine(null, "webgpu", 2)).toThrow(/no WebGPU adapter/);
    expect(() => chooseEngine(NVIDIA, "webgl", 2)).toThrow(/expected webgpu or wasm, got "webgl"/);
  });
});

describe("checkEncoderFits", () => {
  // GMACs as runtime/server/bundle.py's encoder_gmacs computes them for these shapes
  const SLIMSAM_77 = 45.8;
  const SLIMSAM_50 = 149.7;
  const VIT_B = 470.9;
  const VIT_L = 1425.4;

  it("lets SlimSAM-77 and -50 run on wasm and ViT-B on WebGPU", () => {
    expect(() => checkEncoderFits(SLIMSAM_77, "slimsam-77", "wasm")).not.toThrow();
    expect(() => checkEncoderFits(SLIMSAM_50, "slimsam-50", "wasm")).not.toThrow();
    expect(() => checkEncoderFits(VIT_B, "vit_b", "webgpu")).not.toThrow();
    expect(() => checkEncoderFits(ENCODER_LIMIT_GMACS.wasm, "at the limit", "wasm")).not.toThrow();
  });

  it("refuses ViT-B on wasm (naming WebGPU) and ViT-L anywhere, saying what to do", () => {
    expect(() => checkEncoderFits(VIT_B, "vit_b", "wasm")).toThrow(EncoderTooHeavyError);
    expect(() => checkEncoderFits(VIT_B, "vit_b", "wasm")).toThrow(/471 GMACs per image is too heavy for wasm \(at most 200\); a browser with WebGPU could run it/);
    expect(() => checkEncoderFits(VIT_L, "vit_l", "webgpu")).toThrow(/too heavy for webgpu \(at most 600\); no browser engine/);
  });

  it("refuses a missing cost", () => {
    expect(() => checkEncoderFits(Number.NaN, "x", "wasm")).toThrow(RangeError);
  });
});
