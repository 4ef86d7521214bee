/**
 * The demo page: an image, its embedding and the single-mask decoder (the bundle's fast decoder
 * pair when it has one, see `fast_decoder.ts`; else `decoder.onnx`); the person prompts with
 * clicks (positive), shift- or right-clicks (negative) and drags (a box); the mask, its score and
 * the decode latency are shown, and the cut-out can be downloaded as a PNG.
 *
 * A bundle with an encoder (`sam-onnx bundle --with-encoder`) lets the page embed dropped images
 * itself, in the encoder worker, on WebGPU or wasm (`engine.ts`), with a running clock while it
 * works; a newer image cancels the one being encoded (`encoder_client.ts`).
 *
 * Served with a text detector (`sam-onnx serve --detector`), the page has a text field: the server
 * finds the boxes of "a cat. a remote." and the page decodes each as a drawn box (`text.ts`).
 *
 * Each concern is a hook (`hooks/`): the start and the decoder, the image shown, the page's
 * encoder, uploads, prompts, text prompts; this component passes their parts to one another and
 * lays them out.
 */

import { useCallback, useMemo, useRef } from "react";

import type { DecoderClient } from "./client";
import { EncoderLine } from "./components/EncoderLine";
import { Stage } from "./components/Stage";
import { StatusLine } from "./components/StatusLine";
import { TextForm, TextLine } from "./components/TextPrompt";
import { downloadCutout, downloadEmbedding } from "./downloads";
import { useEncoder } from "./hooks/useEncoder";
import { useErrors } from "./hooks/useErrors";
import { useImage } from "./hooks/useImage";
import { useImageUpload } from "./hooks/useImageUpload";
import { usePrompts } from "./hooks/usePrompts";
import { useStartup } from "./hooks/useStartup";
import { useTextPrompt } from "./hooks/useTextPrompt";
import { pageOptions } from "./options";

const RANDOM_WEIGHTS_NOTICE = "Random weights: this model was never trained, so its masks follow textures and edges, not objects.";

export function App() {
  const options = useMemo(() => pageOptions(location.search, navigator.hardwareConcurrency), []);
  const client = useRef<DecoderClient | null>(null);
  const { errors, report, dismiss } = useErrors();
  const prompts = usePrompts(client, report);
  const text = useTextPrompt(client, report);
  const { clear: clearPrompts } = prompts;
  const { clear: clearText } = text;
  // a new image or decoder, or the Clear button: no prompts, no found objects
  const clearAll = useCallback(() => {
    clearPrompts();
    clearText();
  }, [clearPrompts, clearText]);
  const { image, pixels, showImage } = useImage(client, clearAll);
  const encoder = useEncoder(options, report, showImage);
  const start = useStartup({ client, options, report, showImage, openEncoder: encoder.open, onDecoder: clearAll });
  const { upload, busy: uploading } = useImageUpload({ started: start.started, encoder, showImage, report });

  const { server, model, ready } = start;
  const { shown } = prompts;
  // clicks and drags replace a text prompt's objects; no hover previews over them
  const stagePrompts = {
    ...prompts,
    commit: (next: Parameters<typeof prompts.commit>[0]) => {
      clearText();
      return prompts.commit(next);
    },
    hover: text.found ? () => undefined : prompts.hover,
  };
  const canFind = server?.detector && image ? server : null;
  const precisions = Object.keys(model?.decoders ?? {});
  const canUpload = server !== null || encoder.engine !== null;

  return (
    <main>
      <header>
        <h1>Segment Anything, decoded in your browser</h1>
        <p className="help">
          Hover to preview · click: positive point · shift- or right-click: negative point · drag: box
          {canUpload ? " · drop or choose an image to segment it" : ""}
          {server?.detector ? " · or type what to find" : ""}
        </p>
        {model?.randomWeights && (
          <p id="random-weights" className="notice" role="note">
            {RANDOM_WEIGHTS_NOTICE}
          </p>
        )}
      </header>
      <section className="toolbar">
        {canUpload && (
          <input type="file" id="upload" accept={server ? server.upload_types.join(",") : "image/*"} onChange={(e) => upload(e.target.files?.[0])} />
        )}
        {precisions.length > 1 && (
          <label>
            decoder{" "}
            <select id="precision" value={start.precision} onChange={(e) => start.switchPrecision(e.target.value)}>
              {precisions.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
        )}
        <label>
          <input type="checkbox" checked={prompts.refine} onChange={(e) => prompts.setRefine(e.target.checked)} /> refine with the previous mask
        </label>
        <button id="undo" disabled={prompts.committed === 0} onClick={prompts.undo}>
          Undo
        </button>
        <button id="clear" disabled={prompts.committed === 0 && !text.found} onClick={clearAll}>
          Clear
        </button>
        <button id="download" disabled={!shown} onClick={() => image && pixels && shown && downloadCutout(image, pixels, shown.mask).catch(report)}>
          Download cut-out (PNG)
        </button>
        <button id="save-embedding" disabled={!image} onClick={() => image && downloadEmbedding(image)}>
          Save embedding (.npy)
        </button>
        {server?.detector && (
          <TextForm
            enabled={canFind !== null && ready !== null && text.busy === null}
            onFind={(p) => {
              if (canFind && image) void text.find(p, image, canFind, options.thresholds);
            }}
          />
        )}
      </section>
      <StatusLine ready={ready} image={image} shown={shown} busy={start.busy ?? uploading ?? encoder.busy} committed={prompts.committed} />
      <TextLine found={text.found} busy={text.busy} />
      <EncoderLine engine={encoder.engine} encoding={encoder.encoding} encoded={encoder.encoded} now={encoder.now} />
      {errors.length > 0 && (
        <div id="errors" role="alert">
          {errors.map((m, i) => (
            <p key={i}>{m}</p>
          ))}
          <button onClick={dismiss}>dismiss</button>
        </div>
      )}
      <Stage image={image} enabled={ready !== null} prompts={stagePrompts} textFound={text.found} canUpload={canUpload} onFile={(file) => void upload(file)} />
    </main>
  );
}
