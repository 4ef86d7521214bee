/**
 * The page's own encoder (a bundle made with `sam-onnx bundle --with-encoder`): the engine this
 * browser offers (`engine.ts`), the encoder worker (`encoder_client.ts`), a running clock while it
 * embeds an image and the time the last one took. A newer image cancels the one being encoded.
 */

import { useCallback, useEffect, useRef, useState } from "react";

import { EncodeCancelled, EncoderClient } from "../encoder_client";
import { ENCODER_FAMILY } from "../encoder_protocol";
import { type Engine, checkEncoderFits, chooseEngine, probeAdapter } from "../engine";
import type { Family } from "../family";
import type { PageOptions } from "../options";
import type { BundleEncoder, LoadedImage } from "../sources";
import type { ShowImage } from "./useImage";

/** The page's own encoder: its graph, the family of its decoders and the engine that runs it. */
interface PageEncoder {
  spec: BundleEncoder;
  family: Family;
  engine: Engine;
  client: EncoderClient;
}

/** The image being encoded: its name and when it began (`performance.now()`, ms). */
export interface Encoding {
  name: string;
  start: number;
}

/** The last image the page embedded itself: times in milliseconds. */
export interface EncodeTimes {
  encodeMs: number;
  totalMs: number;
}

export interface PageEncoderState {
  /** The engine of the page's encoder, or null: the page has none. */
  engine: Engine | null;
  encoding: Encoding | null;
  encoded: EncodeTimes | null;
  /** `performance.now()` of the running clock's last tick. */
  now: number;
  /** What the status line says while an image is encoded, or null. */
  busy: string | null;
  /** Open the bundle's encoder for decoders of `family`; throws when the page cannot run it. */
  open: (spec: BundleEncoder, family: Family) => Promise<void>;
  /** Whether the page has an encoder of its own (read when an image comes, not at render). */
  available: () => boolean;
  /** Embed `file` in the page and show it; a newer image cancels it (then this returns quietly). */
  encode: (file: File) => Promise<void>;
}

export function useEncoder(options: PageOptions, report: (error: unknown) => void, showImage: ShowImage): PageEncoderState {
  const encoder = useRef<PageEncoder | null>(null);
  const generations = useRef(0);
  const [engine, setEngine] = useState<Engine | null>(null);
  const [encoding, setEncoding] = useState<Encoding | null>(null);
  const [encoded, setEncoded] = useState<EncodeTimes | null>(null);
  const [now, setNow] = useState(0);

  useEffect(() => () => encoder.current?.client.terminate(), []);

  // the running clock while the page encodes (the UI thread is free: the encoder has its worker)
  useEffect(() => {
    if (!encoding) return;
    const timer = setInterval(() => setNow(performance.now()), 100);
    return () => clearInterval(timer);
  }, [encoding]);

  /** The bundle's encoder on the engine this browser offers, unless the size rule refuses it (thrown). */
  const open = useCallback(
    async (spec: BundleEncoder, family: Family) => {
      if (family.name !== ENCODER_FAMILY) {
        throw new Error(`encoder ${spec.variant}: the page embeds images for SAM v1 only, the decoder is ${family.name}`);
      }
      const threads = self.crossOriginIsolated ? options.threads : 1;
      const gpu = (navigator as Navigator & { gpu?: unknown }).gpu;
      const chosen = chooseEngine(await probeAdapter(gpu), options.engine, threads);
      checkEncoderFits(spec.gmacs, spec.variant, chosen.name);
      setEngine(chosen);
      const client = new EncoderClient({ url: spec.url, engine: chosen.name, threads });
      encoder.current = { spec, family, engine: chosen, client };
      // open it now, so that the first image waits less; a cancelled open is no error
      client.open().catch((error) => error instanceof EncodeCancelled || report(error));
    },
    [options, report],
  );

  const encode = async (file: File) => {
    const own = encoder.current!;
    const generation = ++generations.current;
    setEncoding({ name: file.name, start: performance.now() });
    try {
      const r = await own.client.encode(file, file.name);
      if (generations.current !== generation) return;
      const loaded: LoadedImage = {
        name: file.name,
        url: URL.createObjectURL(file),
        orig: r.orig,
        features: r.features,
        family: own.family,
        checkpointSha256: own.spec.checkpointSha256,
      };
      await showImage(loaded, null, own.family);
      setEncoded({ encodeMs: r.encodeMs, totalMs: r.totalMs });
    } catch (error) {
      if (!(error instanceof EncodeCancelled)) report(error);
    } finally {
      if (generations.current === generation) setEncoding(null);
    }
  };

  return {
    engine,
    encoding,
    encoded,
    now,
    busy: encoding && engine ? `encoding ${encoding.name} on ${engine.label}` : null,
    open,
    available: () => encoder.current !== null,
    encode,
  };
}
