/**
 * Which onnxruntime-web engine runs the image encoder in this browser, and whether an encoder is
 * light enough for it.
 *
 * WebGPU when the browser gives a hardware adapter; a software adapter (SwiftShader, or one the
 * browser marks as fallback) runs WebGPU on the CPU, slower than wasm, so it counts only when asked
 * for (`?engine=webgpu`). Otherwise multithreaded wasm (one thread when the page is not
 * cross-origin isolated).
 *
 * The size rule is on the encoder's multiply-accumulates per image (GMACs, which `sam-onnx bundle
 * --with-encoder` computes from the graph's metadata numbers into `bundle.json`): wasm takes up to
 * 200 (SlimSAM-77 costs 46, SlimSAM-50 150; ViT-B's 471 would keep a CPU busy for minutes), WebGPU
 * up to 600 (ViT-B; ViT-L's 1 425 and ViT-H's 2 833 are refused).
 */

export type EngineName = "webgpu" | "wasm";

/** Most GMACs per image an encoder may cost on each engine. */
export const ENCODER_LIMIT_GMACS: Readonly<Record<EngineName, number>> = { wasm: 200, webgpu: 600 };

/** The engine chosen and why, as the page shows it. */
export interface Engine {
  name: EngineName;
  /** e.g. "WebGPU (nvidia ampere)", "wasm, 4 threads". */
  label: string;
}

/** What the engine choice needs to know of `navigator.gpu`'s adapter (null: none). */
export interface AdapterFacts {
  vendor: string;
  architecture: string;
  isFallback: boolean;
}

/** The facts of the browser's WebGPU adapter, or null where there is no WebGPU or no adapter. */
export async function probeAdapter(gpu: unknown): Promise<AdapterFacts | null> {
  const requestAdapter = (gpu as { requestAdapter?: () => Promise<unknown> } | undefined)?.requestAdapter;
  if (typeof requestAdapter !== "function") return null;
  try {
    const adapter = (await requestAdapter.call(gpu)) as {
      info?: { vendor?: string; architecture?: string; isFallbackAdapter?: boolean };
      isFallbackAdapter?: boolean;
    } | null;
    if (!adapter) return null;
    const info = adapter.info ?? {};
    return {
      vendor: info.vendor ?? "",
      architecture: info.architecture ?? "",
      isFallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    };
  } catch {
    return null;
  }
}

export function isSoftwareAdapter(adapter: AdapterFacts): boolean {
  return adapter.isFallback || /swiftshader/i.test(`${adapter.vendor} ${adapter.architecture}`);
}

/**
 * The engine for the encoder: `requested` ("webgpu", "wasm" or null from `?engine=`) wins when it
 * can be had; throws a RangeError for a request of WebGPU where there is no adapter, or an unknown one.
 */
export function chooseEngine(adapter: AdapterFacts | null, requested: string | null, wasmThreads: number): Engine {
  const wasm: Engine = { name: "wasm", label: `wasm, ${wasmThreads} thread${wasmThreads === 1 ? "" : "s"}` };
  if (requested !== null && requested !== "webgpu" && requested !== "wasm") {
    throw new RangeError(`engine: expected webgpu or wasm, got ${JSON.stringify(requested)}`);
  }
  if (requested === "wasm") return wasm;
  const gpu = adapter && { name: "webgpu" as const, label: `WebGPU (${[adapter.vendor, adapter.architecture].filter(Boolean).join(" ") || "adapter"})` };
  if (requested === "webgpu") {
    if (!gpu) throw new RangeError("engine: webgpu was asked for (?engine=webgpu) but this browser gives no WebGPU adapter");
    return gpu;
  }
  return gpu && !isSoftwareAdapter(adapter) ? gpu : wasm;
}

/** An encoder refused by the size rule; the message says what to do instead. */
export class EncoderTooHeavyError extends Error {}

/** Throws EncoderTooHeavyError when an encoder of `gmacs` exceeds the engine's limit. */
export function checkEncoderFits(gmacs: number, variant: string, engine: EngineName): void {
  if (!(gmacs > 0)) throw new RangeError(`encoder ${variant}: expected its GMACs per image (a positive number), got ${gmacs}`);
  const limit = ENCODER_LIMIT_GMACS[engine];
  if (gmacs <= limit) return;
  const hint =
    engine === "wasm" && gmacs <= ENCODER_LIMIT_GMACS.webgpu
      ? "a browser with WebGPU could run it"
      : "no browser engine is allowed it";
  throw new EncoderTooHeavyError(
    `encoder ${variant}: ${gmacs.toFixed(0)} GMACs per image is too heavy for ${engine} (at most ${limit}); ` +
      `${hint}. Use a lighter encoder (e.g. SlimSAM-77, 46 GMACs) or embed images in Python with sam-onnx serve.`,
  );
}
