import { useState } from "react";

import type { TextFound } from "../hooks/useTextPrompt";
import { maskArea } from "../masks";
import { textColour } from "../text";

/** The text field of `sam-onnx serve --detector`: phrases ended by "." and a Find button. */
export function TextForm(props: { enabled: boolean; onFind: (prompt: string) => void }) {
  const [prompt, setPrompt] = useState("");
  return (
    <form
      id="text-form"
      onSubmit={(e) => {
        e.preventDefault();
        props.onFind(prompt);
      }}
    >
      <input id="text-prompt" type="text" value={prompt} placeholder="a cat. a remote." size={28} onChange={(e) => setPrompt(e.target.value)} />{" "}
      <button id="find" type="submit" disabled={!props.enabled}>
        Find
      </button>
    </form>
  );
}

/**
 * The found objects, one coloured entry each ("phrase score · area"); its data attributes are what
 * the end-to-end test reads (`data-state` "done" once every box is decoded).
 */
export function TextLine(props: { found: TextFound[] | null; busy: string | null }) {
  const { found, busy } = props;
  if (!found && !busy) return null;
  return (
    <p id="text-found" data-state={busy ? "busy" : "done"} data-count={found?.length ?? 0}>
      {busy
        ? `${busy}…`
        : found!.map((f, i) => (
            <span key={i} className="found" style={{ borderColor: `rgb(${textColour(i).join(",")})` }}>
              {`${f.label || "(no phrase)"} ${f.score.toFixed(2)} · ${maskArea(f.result.mask)} px`}
            </span>
          ))}
    </p>
  );
}
