"""The web page's copy of the contract and the family records: ``demo_web/src/contract.json``.

``python -m sam_onnx.web_contract [ROOT]`` (re)writes it from :mod:`sam_onnx.contract` and
:mod:`sam_onnx.families`; ``tests/test_house.py`` fails when the committed copy differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .contract import CLICK_OUTPUTS, DECODER_OUTPUTS, ORIG_IM_SIZE, PROMPT_INPUTS, Tensor
from .families import FAMILIES, Family

WEB_CONTRACT_PATH = Path("demo_web") / "src" / "contract.json"


def _feature(t: Tensor) -> dict:
    return {"name": t.name, "dims": list(t.shape)}


def _family(f: Family) -> dict:
    stability = None if f.stability is None else {"delta": f.stability.delta, "thresh": f.stability.thresh}
    return {
        "label": f.label,
        "features": [_feature(t) for t in f.features],
        "resize": f.resize,
        "box_first": f.box_first,
        "pad_without_box": f.pad_without_box,
        "stability": stability,
        "low_res_clamp": f.low_res_clamp,
    }


def web_contract() -> dict:
    """The names, shapes and rules the page reads: per family its record, and the prompt inputs and
    outputs of the decoders and the click graph."""
    return {
        "generated_by": "python -m sam_onnx.web_contract (from sam_onnx/contract.py, sam_onnx/families.py)",
        "prompt_inputs": list(PROMPT_INPUTS),
        "orig_im_size": ORIG_IM_SIZE.name,
        "decoder_outputs": list(DECODER_OUTPUTS),
        "click_outputs": list(CLICK_OUTPUTS),
        "families": {f.name: _family(f) for f in FAMILIES.values()},
    }


def web_contract_text() -> str:
    return json.dumps(web_contract(), indent=2) + "\n"


def main(argv: list[str]) -> None:
    root = Path(argv[0]) if argv else Path.cwd()
    (root / WEB_CONTRACT_PATH).write_text(web_contract_text())


if __name__ == "__main__":
    main(sys.argv[1:])
