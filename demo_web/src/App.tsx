/**
 * The demo page: an image, its embedding and the single-mask decoder (the bundle's fast decoder
 * pair when it has one, see `fast_decoder.ts`; else `decoder.onnx`); the person prompts with
 * clicks (positive), shift- or right-clicks (negative) and drags (a box); the mask, its score and
 * the decode latency are shown, and the cut-out can be downloaded as a PNG.
 *
 * A bundle with an encoder (`sam-onnx bundle --with-encoder`) lets the page embed dropped images
 * itself, in the encoder worker, on WebGPU or wasm (`engine.ts`), with a running clock while it
 * works; a newer image cancels the one being encoded (`encoder_client.ts`).
 */

import { useCallback, useEffect, useRef, useState } from "react";

import { DecoderClient, type Decoded, type DecoderReady } from "./client";
import { EncodeCancelled, EncoderClient } from "./encoder_client";
import { type Engine, checkEncoderFits, chooseEngine, probeAdapter } from "./engine";
import type { FastDecoderUrls } from "./fast_decoder";
import { type Family, FAMILIES } from "./family";
import { type HW, type XY, fitInside, screenToImage } from "./geometry";
import { cutout, maskArea, maskToRGBA } from "./masks";
import { toNpy } from "./npy";
import type { Box, Click, Prompt } from "./prompt";
import {
  type BundleEncoder,
  type Decoders,
  type LoadedImage,
  type ServerConfig,
  embedUpload,
  fetchServerConfig,
  loadBundle,
} from "./sources";

const DRAG_PX = 5; // a press that moves further than this (CSS px) draws a box
/** wasm threads for the decoder and the page's encoder: `?threads=N` (1-16), else one per core up to 8. */
function wantedThreads(): number {
  const asked = Number(new URLSearchParams(location.search).get("threads"));
  if (Number.isInteger(asked) && asked >= 1 && asked <= 16) return asked;
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8));
}
const WANTED_THREADS = wantedThreads();

/** The page's own encoder: its graph and the engine that runs it. */
interface PageEncoder {
  spec: BundleEncoder;
  engine: Engine;
  client: EncoderClient;
}

/** The last image the page embedded itself: times in milliseconds. */
interface EncodeTimes {
  encodeMs: number;
  totalMs: number;
}

interface Step {
  prompt: Prompt;
  result: Decoded;
}

const EMPTY: Prompt = { clicks: [], box: null };

export function App() {
  const client = useRef<DecoderClient | null>(null);
  const [server, setServer] = useState<ServerConfig | null>(null);
  const [decoders, setDecoders] = useState<Decoders>({});
  // the bundle's fast decoder pair: it replaces the fp32 decoder (other precisions run their decoder.onnx)
  const [fastDecoder, setFastDecoder] = useState<FastDecoderUrls | null>(null);
  const [precision, setPrecision] = useState("fp32");
  const [family, setFamily] = useState<Family>(FAMILIES.sam);
  const [ready, setReady] = useState<DecoderReady | null>(null);
  const [image, setImage] = useState<LoadedImage | null>(null);
  const [pixels, setPixels] = useState<ImageData | null>(null);
  const [steps, setSteps] = useState<Step[]>([]);
  const [preview, setPreview] = useState<Decoded | null>(null);
  const [refine, setRefine] = useState(true);
  const [busy, setBusy] = useState<string | null>("starting");
  const [errors, setErrors] = useState<string[]>([]);
  const [drag, setDrag] = useState<{ start: XY; now: XY; screen: XY } | null>(null);
  const encoder = useRef<PageEncoder | null>(null);
  const [engine, setEngine] = useState<Engine | null>(null);
  const [encoding, setEncoding] = useState<{ name: string; start: number } | null>(null);
  const [encoded, setEncoded] = useState<EncodeTimes | null>(null);
  const [now, setNow] = useState(0);
  const uploads = useRef(0);
  // settles when the start (decoder, bundle, the page's encoder) is over: an image dropped before
  // then waits for it, so that it goes to the page's encoder when the bundle has one
  const starting = useRef<Promise<unknown>>(Promise.resolve());
  const stage = useRef<HTMLDivElement>(null);
  const maskCanvas = useRef<HTMLCanvasElement>(null);

  const report = useCallback((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    setErrors((all) => [...all.slice(-4), message]);
  }, []);

  const showImage = useCallback(async (loaded: LoadedImage, expectedSha: string | null, decoderFamily: Family) => {
    if (loaded.family !== decoderFamily) {
      throw new Error(`${loaded.name}: its features are for family ${loaded.family.name}, the decoder is ${decoderFamily.name}`);
    }
    if (expectedSha && loaded.checkpointSha256 !== expectedSha) {
      throw new Error(
        `${loaded.name}: its embedding comes from checkpoint ${loaded.checkpointSha256.slice(0, 12)}…, the decoder from ${expectedSha.slice(0, 12)}…`,
      );
    }
    await client.current!.setEmbedding(loaded.features, loaded.orig);
    const img = new Image();
    img.src = loaded.url;
    await img.decode().catch(() => {
      throw new Error(`${loaded.name}: the browser could not decode the image`);
    });
    if (img.naturalHeight !== loaded.orig[0] || img.naturalWidth !== loaded.orig[1]) {
      throw new Error(
        `${loaded.name}: the image is ${img.naturalWidth}x${img.naturalHeight} (WxH), its embedding is for ${loaded.orig[1]}x${loaded.orig[0]}`,
      );
    }
    const canvas = new OffscreenCanvas(loaded.orig[1], loaded.orig[0]);
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(img, 0, 0);
    setPixels(ctx.getImageData(0, 0, loaded.orig[1], loaded.orig[0]));
    setImage(loaded);
    setSteps([]);
    setPreview(null);
  }, []);

  /** The bundle's encoder on the engine this browser offers, unless the size rule refuses it (thrown). */
  const openEncoder = useCallback(
    async (spec: BundleEncoder, fam: Family) => {
      if (fam.name !== "sam") throw new Error(`encoder ${spec.variant}: the page embeds images for SAM v1 only, the decoder is ${fam.name}`);
      const threads = self.crossOriginIsolated ? WANTED_THREADS : 1;
      const gpu = (navigator as Navigator & { gpu?: unknown }).gpu;
      const chosen = chooseEngine(await probeAdapter(gpu), new URLSearchParams(location.search).get("engine"), threads);
      checkEncoderFits(spec.gmacs, spec.variant, chosen.name);
      setEngine(chosen);
      const c = new EncoderClient({ url: spec.url, engine: chosen.name, threads });
      encoder.current = { spec, engine: chosen, client: c };
      // open it now, so that the first image waits less; a cancelled open is no error
      c.open().catch((error) => error instanceof EncodeCancelled || report(error));
    },
    [report],
  );

  // start: the worker, then the server's config or a static bundle
  useEffect(() => {
    const c = new DecoderClient();
    client.current = c;
    const start = (async () => {
      const config = await fetchServerConfig();
      setServer(config);
      const bundleUrl = new URLSearchParams(location.search).get("bundle") ?? config?.bundle ?? (config ? null : "bundle.json");
      const bundle = bundleUrl ? await loadBundle(bundleUrl) : null;
      const found = bundle?.decoders ?? config?.decoders;
      const fam = bundle?.family ?? config?.family;
      if (!found || !found.fp32 || !fam) throw new Error("no decoder: open this page through `sam-onnx serve` or a `sam-onnx bundle` folder");
      setDecoders(found);
      setFamily(fam);
      // a bundle's decoders come with its own pair; the server's with the pair its predictor runs
      const fast = bundle ? bundle.fastDecoder : (config?.fastDecoder ?? null);
      setFastDecoder(fast);
      setReady(await c.loadDecoder(found.fp32, WANTED_THREADS, fam.name, fast));
      if (bundle?.image) await showImage(bundle.image, config?.checkpoint_sha256 ?? null, fam);
      if (bundle?.encoder) await openEncoder(bundle.encoder, fam);
    })()
      .catch(report)
      .finally(() => setBusy(null));
    starting.current = start;
    return () => {
      c.terminate();
      encoder.current?.client.terminate();
    };
  }, [report, showImage, openEncoder]);

  // the running clock while the page encodes (the UI thread is free: the encoder has its worker)
  useEffect(() => {
    if (!encoding) return;
    const timer = setInterval(() => setNow(performance.now()), 100);
    return () => clearInterval(timer);
  }, [encoding]);

  const switchPrecision = async (next: string) => {
    setBusy("loading decoder");
    try {
      const fast = next === "fp32" ? fastDecoder : null;
      setReady(await client.current!.loadDecoder(decoders[next], WANTED_THREADS, family.name, fast));
      setPrecision(next);
      setSteps([]);
      setPreview(null);
    } catch (error) {
      report(error);
    } finally {
      setBusy(null);
    }
  };

  /** Embed `file` in the page; a newer image cancels it (then this returns quietly). */
  const encodeHere = async (file: File, own: PageEncoder) => {
    const generation = ++uploads.current;
    setEncoding({ name: file.name, start: performance.now() });
    setBusy(`encoding ${file.name} on ${own.engine.label}`);
    try {
      const r = await own.client.encode(file, file.name);
      if (uploads.current !== generation) return;
      const loaded: LoadedImage = {
        name: file.name,
        url: URL.createObjectURL(file),
        orig: r.orig,
        features: r.features,
        family: FAMILIES.sam,
        checkpointSha256: own.spec.checkpointSha256,
      };
      await showImage(loaded, null, FAMILIES.sam);
      setEncoded({ encodeMs: r.encodeMs, totalMs: r.totalMs });
    } catch (error) {
      if (!(error instanceof EncodeCancelled)) report(error);
    } finally {
      if (uploads.current === generation) {
        setEncoding(null);
        setBusy(null);
      }
    }
  };

  const upload = async (file: File | undefined) => {
    if (!file) return;
    await starting.current;
    if (encoder.current) {
      await encodeHere(file, encoder.current);
      return;
    }
    if (!server) {
      report(
        new Error(
          "this page was opened from a static bundle without an encoder; run `sam-onnx serve`, or make the bundle with --with-encoder, to segment your own images",
        ),
      );
      return;
    }
    setBusy(`embedding ${file.name}`);
    try {
      // the server's family, not the page's state: an upload can come before the decoder is loaded
      await showImage(await embedUpload(file, server), server.checkpoint_sha256, server.family);
    } catch (error) {
      report(error);
    } finally {
      setBusy(null);
    }
  };

  const last = steps.at(-1) ?? null;
  const prompt = last?.prompt ?? EMPTY;
  const shown = last?.result ?? preview;

  const commit = async (next: Prompt) => {
    try {
      const result = await client.current!.decode(next, refine && last ? last.result.lowRes : null);
      setSteps((all) => [...all, { prompt: next, result }]);
      setPreview(null);
    } catch (error) {
      report(error);
    }
  };

  // draw the mask being shown into the overlay canvas (at the image's own size)
  useEffect(() => {
    const canvas = maskCanvas.current;
    if (!canvas || !image) return;
    const [h, w] = image.orig;
    const ctx = canvas.getContext("2d")!;
    ctx.clearRect(0, 0, w, h);
    if (shown) ctx.putImageData(new ImageData(maskToRGBA(shown.mask, h, w), w, h), 0, 0);
    canvas.dataset.kind = last ? "committed" : shown ? "preview" : "none";
  }, [shown, image, last]);

  const toImage = (e: React.PointerEvent): XY => screenToImage(e.clientX, e.clientY, stage.current!.getBoundingClientRect(), image!.orig);

  const onPointerDown = (e: React.PointerEvent) => {
    if (!image || !ready || (e.button !== 0 && e.button !== 2)) return;
    e.currentTarget.setPointerCapture(e.pointerId);
    setDrag({ start: toImage(e), now: toImage(e), screen: { x: e.clientX, y: e.clientY } });
  };

  const onPointerMove = (e: React.PointerEvent) => {
    if (!image || !ready) return;
    if (drag) {
      setDrag({ ...drag, now: toImage(e) });
      return;
    }
    if (steps.length === 0) {
      // hover preview while nothing is placed: one positive point under the pointer
      const hover: Prompt = { clicks: [{ ...toImage(e), positive: true }], box: null };
      client.current!.preview(hover, null).then((r) => {
        if (r) setPreview(r);
      }, report);
    }
  };

  const onPointerUp = (e: React.PointerEvent) => {
    if (!drag) return;
    setDrag(null);
    const moved = Math.hypot(e.clientX - drag.screen.x, e.clientY - drag.screen.y) > DRAG_PX;
    if (moved) {
      const end = toImage(e);
      const box: Box = { x0: drag.start.x, y0: drag.start.y, x1: end.x, y1: end.y };
      void commit({ clicks: prompt.clicks, box });
    } else {
      const click: Click = { ...drag.start, positive: !(e.shiftKey || e.button === 2) };
      void commit({ clicks: [...prompt.clicks, click], box: prompt.box });
    }
  };

  const download = async () => {
    if (!image || !pixels || !shown) return;
    const [h, w] = image.orig;
    const canvas = new OffscreenCanvas(w, h);
    canvas.getContext("2d")!.putImageData(new ImageData(cutout(pixels.data, shown.mask, h, w), w, h), 0, 0);
    const blob = await canvas.convertToBlob({ type: "image/png" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${image.name.replace(/\.[^.]*$/, "")}_cutout.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };

  const saveEmbedding = () => {
    if (!image) return;
    const blob = new Blob([toNpy(image.features.image_embeddings, [1, 256, 64, 64])], { type: "application/octet-stream" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${image.name.replace(/\.[^.]*$/, "")}_embedding.npy`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };

  const canUpload = server !== null || engine !== null;
  const [cssH, cssW] = image ? fitInside(image.orig, window.innerHeight * 0.75, Math.min(window.innerWidth - 32, 1100)) : [0, 0];
  const dragBox = drag && Math.hypot(drag.now.x - drag.start.x, drag.now.y - drag.start.y) > 0 ? drag : null;

  return (
    <main>
      <header>
        <h1>Segment Anything, decoded in your browser</h1>
        <p className="help">
          Hover to preview · click: positive point · shift- or right-click: negative point · drag: box
          {canUpload ? " · drop or choose an image to segment it" : ""}
        </p>
      </header>
      <section className="toolbar">
        {canUpload && (
          <input type="file" id="upload" accept={server ? server.upload_types.join(",") : "image/*"} onChange={(e) => upload(e.target.files?.[0])} />
        )}
        {Object.keys(decoders).length > 1 && (
          <label>
            decoder{" "}
            <select id="precision" value={precision} onChange={(e) => switchPrecision(e.target.value)}>
              {Object.keys(decoders).map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
        )}
        <label>
          <input type="checkbox" checked={refine} onChange={(e) => setRefine(e.target.checked)} /> refine with the previous mask
        </label>
        <button id="undo" disabled={steps.length === 0} onClick={() => setSteps((all) => all.slice(0, -1))}>
          Undo
        </button>
        <button id="clear" disabled={steps.length === 0} onClick={() => (setSteps([]), setPreview(null))}>
          Clear
        </button>
        <button id="download" disabled={!shown} onClick={download}>
          Download cut-out (PNG)
        </button>
        <button id="save-embedding" disabled={!image} onClick={saveEmbedding}>
          Save embedding (.npy)
        </button>
      </section>
      <StatusLine ready={ready} image={image} shown={shown} busy={busy} committed={steps.length} />
      <EncoderLine engine={engine} encoding={encoding} encoded={encoded} now={now} />
      {errors.length > 0 && (
        <div id="errors" role="alert">
          {errors.map((m, i) => (
            <p key={i}>{m}</p>
          ))}
          <button onClick={() => setErrors([])}>dismiss</button>
        </div>
      )}
      <div
        className="stage"
        onDragOver={(e) => e.preventDefault()}
        onDrop={(e) => {
          e.preventDefault();
          void upload(e.dataTransfer.files[0]);
        }}
      >
        {image ? (
          <div
            id="stage"
            ref={stage}
            style={{ width: cssW, height: cssH }}
            onPointerDown={onPointerDown}
            onPointerMove={onPointerMove}
            onPointerUp={onPointerUp}
            onPointerLeave={() => steps.length === 0 && setPreview(null)}
            onContextMenu={(e) => e.preventDefault()}
          >
            <img src={image.url} alt={image.name} draggable={false} />
            <canvas id="mask" ref={maskCanvas} width={image.orig[1]} height={image.orig[0]} />
            <PromptMarks prompt={prompt} orig={image.orig} drag={dragBox ? { x0: dragBox.start.x, y0: dragBox.start.y, x1: dragBox.now.x, y1: dragBox.now.y } : null} />
          </div>
        ) : (
          <p className="empty">{canUpload ? "Drop an image here or choose one above." : "No image loaded."}</p>
        )}
      </div>
    </main>
  );
}

function StatusLine(props: { ready: DecoderReady | null; image: LoadedImage | null; shown: Decoded | null; busy: string | null; committed: number }) {
  const { ready, image, shown, busy, committed } = props;
  return (
    <p
      id="status"
      data-ready={ready && image && !busy ? "yes" : "no"}
      data-threads={ready?.threads ?? 0}
      data-isolated={ready?.crossOriginIsolated ? "yes" : "no"}
      data-committed={committed}
      data-decoder={ready?.decoder ?? ""}
      data-run-ms={shown?.runMs.toFixed(2) ?? ""}
      data-click-ms={shown?.clickMs.toFixed(2) ?? ""}
      data-round-trip-ms={shown?.roundTripMs.toFixed(2) ?? ""}
    >
      {/* two lines of fixed height: a longer text must not move the image under the pointer */}
      <span>
        {busy ? `${busy}… ` : ""}
        {ready
          ? `${ready.decoder} · wasm threads: ${ready.threads}${ready.crossOriginIsolated ? "" : " (page not cross-origin isolated: one thread)"} · `
          : ""}
        {image ? `${image.name} ${image.orig[1]}×${image.orig[0]} ` : ""}
      </span>
      <span>
        {shown
          ? `score ${shown.score.toFixed(3)} · area ${maskArea(shown.mask)} px · decode ${shown.runMs.toFixed(1)} ms` +
            (ready?.decoder === "fast decoder pair" ? ` (click graph ${shown.clickMs.toFixed(1)} ms)` : "") +
            ` · ${shown.roundTripMs.toFixed(1)} ms round trip`
          : "no mask yet"}
      </span>
    </p>
  );
}

/** The page's own encoder: its engine, a running clock while it works, then the time it took. */
function EncoderLine(props: { engine: Engine | null; encoding: { name: string; start: number } | null; encoded: EncodeTimes | null; now: number }) {
  const { engine, encoding, encoded, now } = props;
  if (!engine) return null;
  const elapsed = encoding ? Math.max(0, now - encoding.start) : 0;
  return (
    <p
      id="encoder"
      data-engine={engine.name}
      data-encoding={encoding ? "yes" : "no"}
      data-elapsed-ms={encoding ? elapsed.toFixed(0) : ""}
      data-encode-ms={encoded?.encodeMs.toFixed(1) ?? ""}
      data-total-ms={encoded?.totalMs.toFixed(1) ?? ""}
    >
      {`encoder in this page: ${engine.label}`}
      {encoding ? ` · encoding ${encoding.name}… ${(elapsed / 1000).toFixed(1)} s` : ""}
      {!encoding && encoded ? ` · last image encoded in ${(encoded.encodeMs / 1000).toFixed(1)} s` : ""}
    </p>
  );
}

function PromptMarks(props: { prompt: Prompt; orig: HW; drag: Box | null }) {
  const { prompt, orig, drag } = props;
  const r = Math.max(orig[0], orig[1]) / 120;
  const rect = (b: Box, cls: string) => (
    <rect className={cls} x={Math.min(b.x0, b.x1)} y={Math.min(b.y0, b.y1)} width={Math.abs(b.x1 - b.x0)} height={Math.abs(b.y1 - b.y0)} />
  );
  return (
    <svg viewBox={`0 0 ${orig[1]} ${orig[0]}`} preserveAspectRatio="none">
      {prompt.box && rect(prompt.box, "box")}
      {drag && rect(drag, "box dragging")}
      {prompt.clicks.map((c, i) => (
        <circle key={i} cx={c.x} cy={c.y} r={r} className={c.positive ? "positive" : "negative"} />
      ))}
    </svg>
  );
}
