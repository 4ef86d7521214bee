/**
 * The page's start: the decoder worker, then the server's config or a static bundle (`sources.ts`),
 * the model they name loaded into the worker, the bundle's image shown and its encoder opened.
 * Afterwards, the decoder reloaded at another precision.
 */

import { type RefObject, useCallback, useEffect, useRef, useState } from "react";

import { DecoderClient, type DecoderReady } from "../client";
import type { Family } from "../family";
import type { PageOptions } from "../options";
import { type BundleEncoder, type PageModel, type ServerConfig, bundleUrl, fetchServerConfig, loadBundle, pageModel } from "../sources";
import type { ShowImage } from "./useImage";

export interface Startup {
  /** The server's config, or null: a static page (or no answer yet). */
  server: ServerConfig | null;
  /** What the page runs, once the server or bundle named it. */
  model: PageModel | null;
  ready: DecoderReady | null;
  precision: string;
  /** What the status line says while starting or loading a decoder, or null. */
  busy: string | null;
  /** Settles when the start is over, with the server's config (null: none); never rejects. */
  started: () => Promise<ServerConfig | null>;
  /** Load the decoder of precision `next` (its prompts start afresh). */
  switchPrecision: (next: string) => Promise<void>;
}

interface StartupParts {
  /** The decoder worker's client: the start makes it (and ends it when the page goes). */
  client: RefObject<DecoderClient | null>;
  options: PageOptions;
  report: (error: unknown) => void;
  showImage: ShowImage;
  openEncoder: (spec: BundleEncoder, family: Family) => Promise<void>;
  /** Called when another decoder is loaded: the prompts start afresh. */
  onDecoder: () => void;
}

export function useStartup({ client, options, report, showImage, openEncoder, onDecoder }: StartupParts): Startup {
  const [server, setServer] = useState<ServerConfig | null>(null);
  const [model, setModel] = useState<PageModel | null>(null);
  const [ready, setReady] = useState<DecoderReady | null>(null);
  const [precision, setPrecision] = useState("fp32");
  const [busy, setBusy] = useState<string | null>("starting");
  // settles when the start (decoder, bundle, the page's encoder) is over: an image dropped before
  // then waits for it, so that it goes to the page's encoder when the bundle has one
  const starting = useRef<Promise<ServerConfig | null>>(Promise.resolve(null));

  useEffect(() => {
    const c = new DecoderClient();
    client.current = c;
    let config: ServerConfig | null = null;
    starting.current = (async () => {
      config = await fetchServerConfig();
      setServer(config);
      const url = bundleUrl(options.bundle, config);
      const bundle = url ? await loadBundle(url) : null;
      const found = pageModel(config, bundle);
      setModel(found);
      setReady(await c.loadDecoder(found.decoders.fp32, options.threads, found.family.name, found.fastDecoder));
      if (bundle?.image) await showImage(bundle.image, config?.checkpoint_sha256 ?? null, found.family);
      if (bundle?.encoder) await openEncoder(bundle.encoder, found.family);
    })()
      .catch(report)
      .then(() => config)
      .finally(() => setBusy(null));
    return () => c.terminate();
  }, [client, options, report, showImage, openEncoder]);

  const started = useCallback(() => starting.current, []);

  const switchPrecision = async (next: string) => {
    if (!model) return;
    setBusy("loading decoder");
    try {
      // the fast decoder pair replaces the fp32 decoder; other precisions run their decoder.onnx
      const fast = next === "fp32" ? model.fastDecoder : null;
      setReady(await client.current!.loadDecoder(model.decoders[next], options.threads, model.family.name, fast));
      setPrecision(next);
      onDecoder();
    } catch (error) {
      report(error);
    } finally {
      setBusy(null);
    }
  };

  return { server, model, ready, precision, busy, started, switchPrecision };
}
