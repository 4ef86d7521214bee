/**
 * Where the page gets its model and images: a `sam-onnx serve` server (`api/config`, uploads
 * embedded by the Python runtime) or a static bundle written by `sam-onnx bundle` (`bundle.json`).
 * Both name the decoders' family (`family`, `resize`), which says which image features come, and
 * whether the export was made from random weights (`random_weights`; absent: false).
 */

import type { FastDecoderUrls } from "./fast_decoder";
import { type Family, familyOf } from "./family";
import type { HW } from "./geometry";
import { parseNpy } from "./npy";
import { type ImageFeatures, checkFeatures } from "./prompt";

/** Decoder graph URLs by precision, e.g. {fp32: "decoder.onnx", int8: "decoder.int8.onnx"}. */
export type Decoders = Record<string, string>;

export interface ServerConfig {
  format: "sam-onnx-serve";
  /** The decoders' contract, from `family` and `resize` of the config (absent: SAM v1). */
  family: Family;
  variant: string;
  checkpoint_sha256: string;
  decoders: Decoders;
  /** The fast decoder pair the server's predictor runs (`fast_decoder`, absolute URLs), or null. */
  fastDecoder: FastDecoderUrls | null;
  max_upload_bytes: number;
  upload_types: string[];
  /** A bundle to open first, or null. */
  bundle: string | null;
  /** The export was made from random weights (`random_weights`; absent: false). */
  randomWeights: boolean;
  /** The text detector's endpoint (`detector`, absolute URL), or null: no text prompts (`text.ts`). */
  detector: string | null;
}

export interface LoadedImage {
  name: string;
  /** A URL the page can draw (object URL or bundle file). */
  url: string;
  orig: HW;
  /** The image's features by decoder input name (see `family.ts`). */
  features: ImageFeatures;
  family: Family;
  checkpointSha256: string;
}

/** A bundle's encoder graph (`sam-onnx bundle --with-encoder`): the page embeds images itself. */
export interface BundleEncoder {
  /** Absolute URL of the graph. */
  url: string;
  /** The graph's input: `image` (normalised, padded) or `resized_image` (uint8). */
  input: string;
  /** Multiply-accumulates per image, billions: what the size rule reads. */
  gmacs: number;
  bytes: number;
  variant: string;
  checkpointSha256: string;
}

export interface Bundle {
  /** The bundle's image with its features; null in a page-only bundle (one with an encoder). */
  image: LoadedImage | null;
  decoders: Decoders;
  family: Family;
  encoder: BundleEncoder | null;
  /** The fast decoder pair (`bundle.json`'s `fast_decoder`, absolute URLs), or null: `decoders.fp32` runs. */
  fastDecoder: FastDecoderUrls | null;
  /** The bundle's graphs were exported from random weights (`random_weights`; absent: false). */
  randomWeights: boolean;
}

/** What the page runs: the decoders, their family and fast pair, and whether its weights are random. */
export interface PageModel {
  decoders: Decoders;
  family: Family;
  fastDecoder: FastDecoderUrls | null;
  /** The server or the bundle says its export was made from random weights. */
  randomWeights: boolean;
}

/** An error the page shows as it is: the message already names what was wrong. */
export class SourceError extends Error {}

async function fetchOk(url: string, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new SourceError(`${what} ${url}: could not be fetched (${String(error)})`);
  }
  if (!response.ok) throw new SourceError(`${what} ${url}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

function checkHW(value: unknown, what: string): HW {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => Number.isInteger(v) && v > 0)) {
    throw new SourceError(`${what}: expected orig_hw [H, W] of positive integers, got ${JSON.stringify(value)}`);
  }
  return [value[0], value[1]];
}

/** The family a config or bundle names, as a SourceError when it is not one the page knows. */
function family(meta: { family?: unknown; resize?: unknown }, what: string): Family {
  try {
    return familyOf(meta.family, meta.resize, what);
  } catch (error) {
    throw new SourceError((error as Error).message);
  }
}

/** The family's features from float32 arrays with their shapes, checked; a SourceError names what is wrong. */
function checkedFeatures(arrays: Record<string, { data: Float32Array; shape: number[] }>, fam: Family, what: string): ImageFeatures {
  const features: ImageFeatures = {};
  for (const spec of fam.features) {
    const array = arrays[spec.name];
    if (array && array.shape.join("x") !== spec.dims.join("x")) {
      throw new SourceError(`${what}: ${spec.name}: expected shape ${spec.dims.join("x")}, got ${array.shape.join("x")}`);
    }
    if (array) features[spec.name] = array.data;
  }
  try {
    return checkFeatures(features, fam, what);
  } catch (error) {
    throw new SourceError((error as Error).message);
  }
}

/**
 * The server's configuration, or null when the page is not served by `sam-onnx serve`. The
 * server names its decoder and bundle URLs relative to the folder of `api/config` (where the page
 * is, also behind a proxy's sub-path); they come back absolute, because the worker that fetches
 * the decoder would resolve a relative one against its own script in `assets/`.
 */
export async function fetchServerConfig(base = ""): Promise<ServerConfig | null> {
  let response: Response;
  try {
    response = await fetch(`${base}api/config`);
  } catch {
    return null;
  }
  if (!response.ok) return null;
  const config = (await response.json().catch(() => null)) as ServerConfig | null;
  if (config?.format !== "sam-onnx-serve") return null;
  const decoders: Decoders = {};
  for (const [precision, path] of Object.entries(config.decoders ?? {})) decoders[precision] = near(path, base);
  const raw = config as unknown as { family?: unknown; resize?: unknown };
  const fam = family(raw, "server config");
  const fastDecoder = fastDecoderUrls((config as unknown as { fast_decoder?: unknown }).fast_decoder, base, "server config");
  const random = randomWeights((config as unknown as { random_weights?: unknown }).random_weights, "server config");
  const detector = typeof config.detector === "string" ? near(config.detector, base) : null;
  return { ...config, family: fam, decoders, fastDecoder, bundle: config.bundle ? near(config.bundle, base) : null, randomWeights: random, detector };
}

/**
 * The bundle the page opens: `asked` (the page's `?bundle=`), else the server's, else, when no
 * server answered, `bundle.json` beside the page (a static bundle folder); null: none.
 */
export function bundleUrl(asked: string | null, config: ServerConfig | null): string | null {
  return asked ?? config?.bundle ?? (config ? null : "bundle.json");
}

/**
 * The model the page runs: a bundle's decoders with its own fast pair, else the server's with the
 * pair its predictor runs. Random weights when either says so. A SourceError when neither has an
 * fp32 decoder.
 */
export function pageModel(config: ServerConfig | null, bundle: Bundle | null): PageModel {
  const decoders = bundle?.decoders ?? config?.decoders;
  const family = bundle?.family ?? config?.family;
  if (!decoders || !decoders.fp32 || !family) {
    throw new SourceError("no decoder: open this page through `sam-onnx serve` or a `sam-onnx bundle` folder");
  }
  const fastDecoder = bundle ? bundle.fastDecoder : (config?.fastDecoder ?? null);
  const random = (bundle?.randomWeights ?? false) || (config?.randomWeights ?? false);
  return { decoders, family, fastDecoder, randomWeights: random };
}

/** `random_weights` of a config or bundle: absent or null is false; anything but a boolean is a SourceError. */
function randomWeights(value: unknown, what: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") throw new SourceError(`${what}: random_weights: expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** Resolve `path` against the URL of the file that named it (itself relative to the page). */
function near(path: string, fileUrl: string): string {
  return new URL(path, new URL(fileUrl, location.href)).href;
}

/**
 * Load a static bundle: `bundle.json` naming the image, its features (.npy files by decoder input
 * name in `features`; bundles that predate SAM 2 name only `embedding`) and the decoders.
 */
export async function loadBundle(url: string): Promise<Bundle> {
  const meta = await (await fetchOk(url, "bundle")).json().catch(() => {
    throw new SourceError(`bundle ${url}: not JSON`);
  });
  if (meta?.format !== "sam-onnx-bundle" || meta.version !== 1) {
    throw new SourceError(`bundle ${url}: expected format sam-onnx-bundle version 1, got ${meta?.format} ${meta?.version}`);
  }
  const fam = family(meta, `bundle ${url}`);
  const decoders: Decoders = {};
  for (const [precision, file] of Object.entries(meta.decoders as Record<string, string>)) decoders[precision] = near(file, url);
  const encoder = bundleEncoder(meta.encoder, url);
  const fastDecoder = fastDecoderUrls(meta.fast_decoder, url);
  const random = randomWeights(meta.random_weights, `bundle ${url}`);
  if (meta.image === undefined && encoder !== null) return { image: null, decoders, family: fam, encoder, fastDecoder, randomWeights: random };
  const orig = checkHW(meta.orig_hw, `bundle ${url}`);
  const files: Record<string, string> = meta.features ?? { image_embeddings: meta.embedding };
  const arrays = Object.fromEntries(
    await Promise.all(
      fam.features.filter((f) => files[f.name]).map(async (f) => {
        const npyUrl = near(files[f.name], url);
        const buffer = await (await fetchOk(npyUrl, f.name)).arrayBuffer();
        return [f.name, parseNpy(buffer, `${f.name} ${npyUrl}`)] as const;
      }),
    ),
  );
  return {
    image: {
      name: String(meta.name ?? "image"),
      url: near(meta.image, url),
      orig,
      features: checkedFeatures(arrays, fam, `bundle ${url}`),
      family: fam,
      checkpointSha256: String(meta.checkpoint_sha256),
    },
    decoders,
    family: fam,
    encoder,
    fastDecoder,
    randomWeights: random,
  };
}

/**
 * The `fast_decoder` entry of a bundle or of the server's config (absent or null: null), its paths
 * resolved against `url` (the bundle.json, or the page's folder for the server's paths, as its
 * decoders); a SourceError naming `what` says what is wrong with it.
 */
function fastDecoderUrls(entry: unknown, url: string, what = `bundle ${url}`): FastDecoderUrls | null {
  if (entry === undefined || entry === null) return null;
  const e = entry as Record<string, unknown>;
  if (typeof e.image !== "string" || typeof e.click !== "string") {
    throw new SourceError(`${what}: fast_decoder: expected {image, click} paths, got ${JSON.stringify(entry)}`);
  }
  return { image: near(e.image, url), click: near(e.click, url) };
}

/** A bundle's `encoder` entry (absent: null); a SourceError names what is wrong with it. */
function bundleEncoder(entry: unknown, url: string): BundleEncoder | null {
  if (entry === undefined || entry === null) return null;
  const e = entry as Record<string, unknown>;
  if (typeof e.file !== "string" || typeof e.gmacs !== "number" || !(e.gmacs > 0)) {
    throw new SourceError(`bundle ${url}: encoder: expected {file, gmacs > 0, ...}, got ${JSON.stringify(entry)}`);
  }
  return {
    url: near(e.file, url),
    input: String(e.input ?? "image"),
    gmacs: e.gmacs,
    bytes: Number(e.bytes ?? 0),
    variant: String(e.variant ?? ""),
    checkpointSha256: String(e.checkpoint_sha256 ?? ""),
  };
}

/** Decode base64 into bytes. */
export function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Send an image file to the server's encoder; returns its embedding. */
export async function embedUpload(file: File, config: ServerConfig, base = ""): Promise<LoadedImage> {
  if (file.size > config.max_upload_bytes) {
    throw new SourceError(
      `${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MiB is over the server's upload limit of ${(config.max_upload_bytes / 2 ** 20).toFixed(1)} MiB`,
    );
  }
  const response = await fetch(`${base}api/embed`, {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) },
    body: file,
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.error?.message ?? `HTTP ${response.status} ${response.statusText}`;
    throw new SourceError(`${file.name}: ${message}`);
  }
  const what = `${file.name} embedding`;
  const arrays: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const [name, tensor] of Object.entries((body.features ?? {}) as Record<string, EncodedTensor>)) {
    arrays[name] = decodeTensor(tensor, `${what}: ${name}`);
  }
  return {
    name: file.name,
    url: URL.createObjectURL(file),
    orig: checkHW(body.orig_hw, what),
    features: checkedFeatures(arrays, config.family, what),
    family: config.family,
    checkpointSha256: String(body.checkpoint_sha256),
  };
}

/** A tensor in a JSON answer of `api/embed`: shape, dtype "float32", little-endian bytes in base64. */
interface EncodedTensor {
  shape: number[];
  dtype: string;
  data_b64: string;
}

function decodeTensor(tensor: EncodedTensor, what: string): { data: Float32Array; shape: number[] } {
  if (tensor?.dtype !== "float32" || !Array.isArray(tensor.shape)) {
    throw new SourceError(`${what}: expected a float32 tensor with a shape, got dtype ${tensor?.dtype}`);
  }
  const bytes = fromBase64(tensor.data_b64); // its own buffer, from offset 0: aligned
  if (bytes.byteLength % 4 !== 0) throw new SourceError(`${what}: ${bytes.byteLength} bytes is not whole float32 values`);
  return { data: new Float32Array(bytes.buffer), shape: tensor.shape };
}
