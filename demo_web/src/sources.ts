/**
 * Where the page gets its model and images: a `sam-onnx serve` server (`api/config`, uploads
 * embedded by the Python runtime) or a static bundle written by `sam-onnx bundle` (`bundle.json`).
 */

import type { HW } from "./geometry";
import { parseNpy } from "./npy";
import { EMBEDDING_SIZE } from "./prompt";

/** Decoder graph URLs by precision, e.g. {fp32: "decoder.onnx", int8: "decoder.int8.onnx"}. */
export type Decoders = Record<string, string>;

export interface ServerConfig {
  format: "sam-onnx-serve";
  variant: string;
  checkpoint_sha256: string;
  decoders: Decoders;
  max_upload_bytes: number;
  upload_types: string[];
  /** A bundle to open first, or null. */
  bundle: string | null;
}

export interface LoadedImage {
  name: string;
  /** A URL the page can draw (object URL or bundle file). */
  url: string;
  orig: HW;
  embedding: Float32Array;
  checkpointSha256: string;
}

export interface Bundle {
  image: LoadedImage;
  decoders: Decoders;
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

function checkEmbedding(data: Float32Array, shape: number[], what: string): Float32Array {
  if (shape.join("x") !== "1x256x64x64" || data.length !== EMBEDDING_SIZE) {
    throw new SourceError(`${what}: expected an embedding of shape 1x256x64x64, got ${shape.join("x")}`);
  }
  return data;
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
  return { ...config, decoders, bundle: config.bundle ? near(config.bundle, base) : null };
}

/** Resolve `path` against the URL of the file that named it (itself relative to the page). */
function near(path: string, fileUrl: string): string {
  return new URL(path, new URL(fileUrl, location.href)).href;
}

/** Load a static bundle: `bundle.json` naming the image, its embedding (.npy) and the decoders. */
export async function loadBundle(url: string): Promise<Bundle> {
  const meta = await (await fetchOk(url, "bundle")).json().catch(() => {
    throw new SourceError(`bundle ${url}: not JSON`);
  });
  if (meta?.format !== "sam-onnx-bundle" || meta.version !== 1) {
    throw new SourceError(`bundle ${url}: expected format sam-onnx-bundle version 1, got ${meta?.format} ${meta?.version}`);
  }
  const orig = checkHW(meta.orig_hw, `bundle ${url}`);
  const npyUrl = near(meta.embedding, url);
  const npy = parseNpy(await (await fetchOk(npyUrl, "embedding")).arrayBuffer(), `embedding ${npyUrl}`);
  const decoders: Decoders = {};
  for (const [precision, file] of Object.entries(meta.decoders as Record<string, string>)) decoders[precision] = near(file, url);
  return {
    image: {
      name: String(meta.name ?? "image"),
      url: near(meta.image, url),
      orig,
      embedding: checkEmbedding(npy.data, npy.shape, `embedding ${npyUrl}`),
      checkpointSha256: String(meta.checkpoint_sha256),
    },
    decoders,
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
  const bytes = fromBase64(body.data_b64);
  const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return {
    name: file.name,
    url: URL.createObjectURL(file),
    orig: checkHW(body.orig_hw, `${file.name} embedding`),
    embedding: checkEmbedding(data, body.shape, `${file.name} embedding`),
    checkpointSha256: String(body.checkpoint_sha256),
  };
}
