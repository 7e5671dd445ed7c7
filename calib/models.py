"""The real models whose results ship in ``assets/``: one registry every page reads.

Each :class:`ShippedModel` names its histogram file (one ONNX collection, the tensors
under their ONNX names, with convergence traces), its Effect results, the tensor Explore
opens on, and a line saying what it is. A model whose histogram file is missing is not
offered (:func:`shipped_models`); one without Effect results is offered everywhere but
the Effect page (:func:`with_effect`).

>>> list(MODELS)
['minilm', 'efficientnet_lite0']
>>> short_name("/bert/encoder/layer.4/attention/output/LayerNorm/LayerNormalization_output_0")
'layer.4/…/output/LayerNorm/LayerNormalization output'
>>> short_name("/_blocks.3/_swish/Clip_output_0")
'_blocks.3/_swish/Clip output'
>>> short_name("/bert/embeddings/LayerNorm/LayerNormalization_output_0")
'bert/embeddings/LayerNorm/LayerNormalization output'
>>> short_name("input")
'input'
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

__all__ = [
    "ASSETS",
    "DEFAULT_MODEL",
    "MODELS",
    "ShippedModel",
    "shipped_models",
    "short_name",
    "with_effect",
]

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """One real model shipped in ``assets/``; ``id`` is what a link (``?model=``) names."""

    id: str
    label: str  # "all-MiniLM-L6-v2"
    histograms: Path  # the multi-layer .npz (calib.load_histograms), with traces
    effect: Path  # the Effect results (calib.evaluate.read_report)
    default_layer: str  # the tensor Explore opens on (a key of the histogram file)
    description: str  # one line: what the model is and what its tensors are


MODELS: dict[str, ShippedModel] = {
    m.id: m
    for m in (
        ShippedModel(
            "minilm",
            "all-MiniLM-L6-v2",
            ASSETS / "minilm_histograms.npz",
            ASSETS / "minilm_effect.json",
            # the GELU output the first block's second FFN MatMul reads: values up to 24.7
            # against 99% of them below 1
            "/bert/encoder/layer.0/intermediate/intermediate_act_fn/Mul_1_output_0",
            "A sentence-embedding transformer (6 BERT layers); its 48 MatMul inputs, "
            "collected on English sentences.",
        ),
        ShippedModel(
            "efficientnet_lite0",
            "EfficientNet-Lite0",
            ASSETS / "efficientnet_lite0_histograms.npz",
            ASSETS / "efficientnet_lite0_effect.json",
            # a ReLU6 output a depthwise block's projection reads: the hard edge at 6
            "/_blocks.1/_swish_1/Clip_output_0",
            "An ImageNet CNN built for INT8 (ReLU6, depthwise convolutions); its 50 "
            "Conv/Gemm data inputs, collected on scikit-image's photos.",
        ),
    )
}
DEFAULT_MODEL = "minilm"


def shipped_models() -> dict[str, ShippedModel]:
    """The models whose histogram file is there (the default first), by id."""
    return {k: m for k, m in MODELS.items() if m.histograms.is_file()}


def with_effect() -> dict[str, ShippedModel]:
    """The shipped models whose Effect results are there too, by id."""
    return {k: m for k, m in shipped_models().items() if m.effect.is_file()}


_SUFFIX = re.compile(r"_output_(\d+)$")
_INDEXED = re.compile(r"\.\d+$")  # a repeated block: "layer.3", "_blocks.11"


def short_name(tensor: str) -> str:
    """A tensor's ONNX name shown short: its last three path parts, after the block they
    sit in (the last part numbered like ``layer.3``, else the part before them), with
    ``/…/`` for what is left out between; ``_output_0`` reads `` output``. The full name
    goes on hover and in links."""
    parts = [p for p in str(tensor).split("/") if p] or [str(tensor)]
    tail, rest = parts[-3:], parts[:-3]
    numbered = [i for i, p in enumerate(rest) if _INDEXED.search(p)]
    head = numbered[-1] if numbered else len(rest) - 1
    out = "/".join(tail)
    if head >= 0:
        out = rest[head] + ("/" if head == len(rest) - 1 else "/…/") + out
    m = _SUFFIX.search(out)
    if m:
        out = out[: m.start()] + (" output" if m.group(1) == "0" else f" output {m.group(1)}")
    return out
