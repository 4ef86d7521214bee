/**
 * The page's URL options: `?bundle=URL` (the bundle to open instead of the server's),
 * `?threads=N` (wasm threads for the decoder and the page's encoder, 1-16) and
 * `?engine=webgpu|wasm` (the page's encoder engine, see `engine.ts`); with a text detector,
 * `?box_threshold=T` and `?text_threshold=T` (sent to the server as given; it checks them).
 */

export interface PageOptions {
  /** `?bundle=`, or null. */
  bundle: string | null;
  /** `?threads=N` when it is an integer 1-16, else one per core up to 8. */
  threads: number;
  /** `?engine=` as given (checked by `chooseEngine`), or null. */
  engine: string | null;
  /** `?box_threshold=` and `?text_threshold=` where given: the detector's thresholds (`text.ts`). */
  thresholds: Record<string, string>;
}

const THRESHOLDS = ["box_threshold", "text_threshold"];

/** The options in `search` (a URL's query string); `cores`: `navigator.hardwareConcurrency` (0 or undefined: 1). */
export function pageOptions(search: string, cores: number | undefined): PageOptions {
  const params = new URLSearchParams(search);
  const asked = Number(params.get("threads"));
  const threads = Number.isInteger(asked) && asked >= 1 && asked <= 16 ? asked : Math.max(1, Math.min(cores || 1, 8));
  const thresholds = Object.fromEntries(THRESHOLDS.filter((k) => params.has(k)).map((k) => [k, params.get(k)!]));
  return { bundle: params.get("bundle"), threads, engine: params.get("engine"), thresholds };
}
