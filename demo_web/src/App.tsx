/**
 * The demo page: an image, its embedding and the single-mask decoder; the person prompts with
 * clicks (positive), shift- or right-clicks (negative) and drags (a box); the mask, its score and
 * the decode latency are shown, and the cut-out can be downloaded as a PNG.
 */

import { useCallback, useEffect, useRef, useState } from "react";

import { DecoderClient, type Decoded, type DecoderReady } from "./client";
import { type Family, FAMILIES } from "./family";
import { type HW, type XY, fitInside, screenToImage } from "./geometry";
import { cutout, maskArea, maskToRGBA } from "./masks";
import type { Box, Click, Prompt } from "./prompt";
import {
  type Decoders,
  type LoadedImage,
  type ServerConfig,
  embedUpload,
  fetchServerConfig,
  loadBundle,
} from "./sources";

const DRAG_PX = 5; // a press that moves further than this (CSS px) draws a box
const WANTED_THREADS = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8));

interface Step {
  prompt: Prompt;
  result: Decoded;
}

const EMPTY: Prompt = { clicks: [], box: null };

export function App() {
  const client = useRef<DecoderClient | null>(null);
  const [server, setServer] = useState<ServerConfig | null>(null);
  const [decoders, setDecoders] = useState<Decoders>({});
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

  // start: the worker, then the server's config or a static bundle
  useEffect(() => {
    const c = new DecoderClient();
    client.current = c;
    (async () => {
      const config = await fetchServerConfig();
      setServer(config);
      const bundleUrl = new URLSearchParams(location.search).get("bundle") ?? config?.bundle ?? (config ? null : "bundle.json");
      const bundle = bundleUrl ? await loadBundle(bundleUrl) : null;
      const found = bundle?.decoders ?? config?.decoders;
      const fam = bundle?.family ?? config?.family;
      if (!found || !found.fp32 || !fam) throw new Error("no decoder: open this page through `sam-onnx serve` or a `sam-onnx bundle` folder");
      setDecoders(found);
      setFamily(fam);
      setReady(await c.loadDecoder(found.fp32, WANTED_THREADS, fam.name));
      if (bundle) await showImage(bundle.image, config?.checkpoint_sha256 ?? null, fam);
    })()
      .catch(report)
      .finally(() => setBusy(null));
    return () => c.terminate();
  }, [report, showImage]);

  const switchPrecision = async (next: string) => {
    setBusy("loading decoder");
    try {
      setReady(await client.current!.loadDecoder(decoders[next], WANTED_THREADS, family.name));
      setPrecision(next);
      setSteps([]);
      setPreview(null);
    } catch (error) {
      report(error);
    } finally {
      setBusy(null);
    }
  };

  const upload = async (file: File | undefined) => {
    if (!file) return;
    if (!server) {
      report(new Error("this page was opened from a static bundle; run `sam-onnx serve` to segment your own images"));
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

  const [cssH, cssW] = image ? fitInside(image.orig, window.innerHeight * 0.75, Math.min(window.innerWidth - 32, 1100)) : [0, 0];
  const dragBox = drag && Math.hypot(drag.now.x - drag.start.x, drag.now.y - drag.start.y) > 0 ? drag : null;

  return (
    <main>
      <header>
        <h1>Segment Anything, decoded in your browser</h1>
        <p className="help">
          Hover to preview · click: positive point · shift- or right-click: negative point · drag: box
          {server ? " · drop or choose an image to segment it" : ""}
        </p>
      </header>
      <section className="toolbar">
        {server && <input type="file" id="upload" accept={server.upload_types.join(",")} onChange={(e) => upload(e.target.files?.[0])} />}
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
      </section>
      <StatusLine ready={ready} image={image} shown={shown} busy={busy} committed={steps.length} />
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
          <p className="empty">{server ? "Drop an image here or choose one above." : "No image loaded."}</p>
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
      data-run-ms={shown?.runMs.toFixed(2) ?? ""}
      data-round-trip-ms={shown?.roundTripMs.toFixed(2) ?? ""}
    >
      {busy ? `${busy}… ` : ""}
      {ready
        ? `wasm threads: ${ready.threads}${ready.crossOriginIsolated ? "" : " (page not cross-origin isolated: one thread)"} · `
        : ""}
      {image ? `${image.name} ${image.orig[1]}×${image.orig[0]} · ` : ""}
      {shown
        ? `score ${shown.score.toFixed(3)} · area ${maskArea(shown.mask)} px · decode ${shown.runMs.toFixed(1)} ms (${shown.roundTripMs.toFixed(1)} ms round trip)`
        : "no mask yet"}
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
