/// <reference lib="webworker" />
/**
 * The encoder worker: holds the onnxruntime-web session of a SAM v1 image encoder (WebGPU or
 * wasm, as the page chose) and embeds image files with the Python runtime's preprocessing
 * (`preprocess.ts`). A worker of its own, beside the decoder's, so that a stale encode, which
 * onnxruntime-web cannot abort, is ended by terminating this worker while the decoder stays.
 * See `encoder_protocol.ts`.
 */

import * as ort from "onnxruntime-web/webgpu";

import type { EncoderInput, FromEncoder, ToEncoder } from "./encoder_protocol";
import { normalizeAndPad, resizeLongSide } from "./preprocess";

let session: ort.InferenceSession | null = null;
let input: EncoderInput = "image";

function post(message: FromEncoder, transfer: Transferable[] = []): void {
  (self as unknown as DedicatedWorkerGlobalScope).postMessage(message, transfer);
}

async function loadEncoder(message: Extract<ToEncoder, { type: "load-encoder" }>): Promise<void> {
  const start = performance.now();
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, message.threads) : 1;
  const response = await fetch(message.url);
  if (!response.ok) throw new Error(`encoder ${message.url}: HTTP ${response.status} ${response.statusText}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // warnings (e.g. WebGPU leaving shape and uint8 ops to the CPU) are not the person's business:
  // errors only, which reach the page as messages anyway
  ort.env.logLevel = "error";
  const opened = await ort.InferenceSession.create(bytes, {
    executionProviders: [message.engine],
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
  });
  const name = opened.inputNames[0];
  if (opened.inputNames.length !== 1 || (name !== "image" && name !== "resized_image") || !opened.outputNames.includes("image_embeddings")) {
    await opened.release();
    throw new Error(
      `encoder ${message.url}: expected a SAM v1 encoder (input image or resized_image; output image_embeddings), ` +
        `got inputs ${opened.inputNames.join(", ")} and outputs ${opened.outputNames.join(", ")}`,
    );
  }
  await session?.release();
  session = opened;
  input = name;
  const threads = message.engine === "wasm" ? (ort.env.wasm.numThreads ?? 1) : 0;
  post({ type: "encoder-ready", engine: message.engine, threads, loadMs: performance.now() - start, input });
}

/** The file's RGBA pixels and size [H, W], EXIF orientation applied, colours as stored. */
async function decodeImage(image: Blob, name: string): Promise<{ data: Uint8ClampedArray; hw: [number, number] }> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(image, { imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new Error(`${name}: the browser could not decode the image (${image.type || "unknown type"})`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { data: ctx.getImageData(0, 0, canvas.width, canvas.height).data, hw: [canvas.height, canvas.width] };
}

async function encode(message: Extract<ToEncoder, { type: "encode" }>): Promise<void> {
  if (session === null) throw new Error("no encoder loaded yet");
  const start = performance.now();
  const { data, hw } = await decodeImage(message.image, message.name);
  const resized = resizeLongSide({ data, hw, channels: 4 });
  const feed =
    input === "image"
      ? new ort.Tensor("float32", normalizeAndPad(resized.rgb, resized.hw), [1, 3, 1024, 1024])
      : new ort.Tensor("uint8", resized.rgb, [resized.hw[0], resized.hw[1], 3]);
  const ran = performance.now();
  const out = await session.run({ [input]: feed });
  const encodeMs = performance.now() - ran;
  const embedding = out.image_embeddings;
  if (embedding.dims.join("x") !== "1x256x64x64") {
    throw new Error(`encoder output image_embeddings: expected 1x256x64x64, got ${embedding.dims.join("x")}`);
  }
  const features = { image_embeddings: (embedding.data as Float32Array).slice() };
  for (const t of Object.values(out)) t.dispose();
  post(
    { type: "encoded", generation: message.generation, features, orig: hw, preprocessMs: ran - start, encodeMs },
    [features.image_embeddings.buffer],
  );
}

// onnxruntime's wasm threads run this same script in workers named "em-pthread"; leave those to it
const isThreadWorker = self.name.startsWith("em-pthread");

if (!isThreadWorker) self.onmessage = async (event: MessageEvent<ToEncoder>) => {
  const message = event.data;
  try {
    if (message.type === "load-encoder") await loadEncoder(message);
    else if (message.type === "encode") await encode(message);
    else throw new Error(`unknown request ${JSON.stringify((message as { type?: unknown }).type)}`);
  } catch (error) {
    post({
      type: "error",
      request: message.type,
      generation: message.type === "encode" ? message.generation : undefined,
      message: error instanceof Error ? error.message : String(error),
    });
  }
};
