/**
 * The drop zone and, once there is an image, the image with its mask and prompt marks, or a text
 * prompt's found objects (one tinted mask canvas each, their boxes labelled "phrase score").
 * Gestures: hover previews while nothing is committed, a click adds a positive point, a shift- or
 * right-click a negative one, a drag draws the box.
 */

import { useEffect, useRef, useState } from "react";

import { type HW, type XY, fitInside, screenToImage } from "../geometry";
import type { Prompts } from "../hooks/usePrompts";
import type { TextFound } from "../hooks/useTextPrompt";
import { type RGBA, maskToRGBA } from "../masks";
import type { Box, Click, Prompt } from "../prompt";
import type { LoadedImage } from "../sources";
import { textColour } from "../text";

const DRAG_PX = 5; // a press that moves further than this (CSS px) draws a box

interface StageProps {
  image: LoadedImage | null;
  /** A decoder is loaded: prompts may be decoded. */
  enabled: boolean;
  prompts: Prompts;
  /** A text prompt's found objects, or null. */
  textFound: TextFound[] | null;
  canUpload: boolean;
  onFile: (file: File | undefined) => void;
}

export function Stage({ image, enabled, prompts, textFound, canUpload, onFile }: StageProps) {
  return (
    <div
      className="stage"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        onFile(e.dataTransfer.files[0]);
      }}
    >
      {image ? (
        <ImageStage image={image} enabled={enabled} prompts={prompts} textFound={textFound} />
      ) : (
        <p className="empty">{canUpload ? "Drop an image here or choose one above." : "No image loaded."}</p>
      )}
    </div>
  );
}

function ImageStage({ image, enabled, prompts, textFound }: { image: LoadedImage; enabled: boolean; prompts: Prompts; textFound: TextFound[] | null }) {
  const stage = useRef<HTMLDivElement>(null);
  const maskCanvas = useRef<HTMLCanvasElement>(null);
  const [drag, setDrag] = useState<{ start: XY; now: XY; screen: XY } | null>(null);
  const { prompt, shown, committedShown } = prompts;

  // draw the mask being shown into the overlay canvas (at the image's own size)
  useEffect(() => {
    const canvas = maskCanvas.current;
    if (!canvas) return;
    const [h, w] = image.orig;
    const ctx = canvas.getContext("2d")!;
    ctx.clearRect(0, 0, w, h);
    if (shown) ctx.putImageData(new ImageData(maskToRGBA(shown.mask, h, w), w, h), 0, 0);
    canvas.dataset.kind = committedShown ? "committed" : shown ? "preview" : "none";
  }, [shown, image, committedShown]);

  const toImage = (e: React.PointerEvent): XY => screenToImage(e.clientX, e.clientY, stage.current!.getBoundingClientRect(), image.orig);

  const onPointerDown = (e: React.PointerEvent) => {
    if (!enabled || (e.button !== 0 && e.button !== 2)) return;
    e.currentTarget.setPointerCapture(e.pointerId);
    setDrag({ start: toImage(e), now: toImage(e), screen: { x: e.clientX, y: e.clientY } });
  };

  const onPointerMove = (e: React.PointerEvent) => {
    if (!enabled) return;
    if (drag) setDrag({ ...drag, now: toImage(e) });
    else prompts.hover(toImage(e));
  };

  const onPointerUp = (e: React.PointerEvent) => {
    if (!drag) return;
    setDrag(null);
    const moved = Math.hypot(e.clientX - drag.screen.x, e.clientY - drag.screen.y) > DRAG_PX;
    if (moved) {
      const end = toImage(e);
      const box: Box = { x0: drag.start.x, y0: drag.start.y, x1: end.x, y1: end.y };
      void prompts.commit({ clicks: prompt.clicks, box });
    } else {
      const click: Click = { ...drag.start, positive: !(e.shiftKey || e.button === 2) };
      void prompts.commit({ clicks: [...prompt.clicks, click], box: prompt.box });
    }
  };

  const [cssH, cssW] = fitInside(image.orig, window.innerHeight * 0.75, Math.min(window.innerWidth - 32, 1100));
  const dragBox = drag && Math.hypot(drag.now.x - drag.start.x, drag.now.y - drag.start.y) > 0 ? drag : null;
  return (
    <div
      id="stage"
      ref={stage}
      style={{ width: cssW, height: cssH }}
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerUp}
      onPointerLeave={prompts.leave}
      onContextMenu={(e) => e.preventDefault()}
    >
      <img src={image.url} alt={image.name} draggable={false} />
      <canvas id="mask" ref={maskCanvas} width={image.orig[1]} height={image.orig[0]} />
      {textFound?.map((f, i) => <TextMask key={i} found={f} index={i} orig={image.orig} />)}
      <PromptMarks prompt={prompt} orig={image.orig} drag={dragBox ? { x0: dragBox.start.x, y0: dragBox.start.y, x1: dragBox.now.x, y1: dragBox.now.y } : null} />
      {textFound && <TextMarks found={textFound} orig={image.orig} />}
    </div>
  );
}

/** One found object's mask, tinted in its colour, at the image's own size. */
function TextMask({ found, index, orig }: { found: TextFound; index: number; orig: HW }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [h, w] = orig;
  useEffect(() => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    const colour: RGBA = [...textColour(index), 120];
    ctx.clearRect(0, 0, w, h);
    ctx.putImageData(new ImageData(maskToRGBA(found.result.mask, h, w, colour), w, h), 0, 0);
  }, [found, index, h, w]);
  return <canvas ref={canvas} className="text-mask" data-index={index} data-label={found.label} data-score={found.score} width={w} height={h} />;
}

/** The found objects' boxes, each labelled "phrase score" in its colour. */
function TextMarks({ found, orig }: { found: TextFound[]; orig: HW }) {
  const size = Math.max(orig[0], orig[1]) / 45;
  return (
    <svg viewBox={`0 0 ${orig[1]} ${orig[0]}`} preserveAspectRatio="none">
      {found.map((f, i) => {
        const { x0, y0, x1, y1 } = f.box;
        const colour = `rgb(${textColour(i).join(",")})`;
        // a box in the right part of the image is labelled from its right edge, so the label stays on the image
        const right = Math.min(x0, x1) > orig[1] * 0.6;
        const x = right ? Math.min(orig[1], Math.max(x0, x1)) - size / 4 : Math.max(0, Math.min(x0, x1)) + size / 4;
        return (
          <g key={i} className="text-box" data-box={[x0, y0, x1, y1].join(",")}>
            <rect x={Math.min(x0, x1)} y={Math.min(y0, y1)} width={Math.abs(x1 - x0)} height={Math.abs(y1 - y0)} style={{ stroke: colour }} />
            <text x={x} y={Math.max(0, Math.min(y0, y1)) + size} textAnchor={right ? "end" : "start"} fontSize={size} style={{ fill: colour }}>
              {`${f.label} ${f.score.toFixed(2)}`}
            </text>
          </g>
        );
      })}
    </svg>
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
