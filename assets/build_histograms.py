"""The shipped collection of a real model: ``calib.collect`` on the tensors ``evaluate`` quantizes.

Runs with the project's own Python (numpy, onnx, onnxruntime; no torch), from the
repository root, on a folder an export script wrote (``model.onnx``, its calibration
inputs and ``export.json``):

    python assets/build_histograms.py /tmp/calib-minilm --inputs inputs_by_length.npz \\
        --out assets/minilm_histograms.npz
    python assets/build_histograms.py /tmp/calib-efficientnet --inputs calib.npz \\
        --out assets/efficientnet_lite0_histograms.npz

The tensors are exactly those that ``calib.evaluate``'s default selection quantizes
(``calib.evaluate.select_tensors(proto)``: the activation data inputs of MatMul, Gemm and
Conv), named as the ONNX graph names them, and passed to the collector by name, so the
Layers, Explore, Compare and convergence views and the Effect page (``build_effect.py``
evaluates from this very file) show the same tensors with the same numbers. Histograms are
signed, 2048 bins per side at first (the collector's defaults), with convergence traces
(each tensor's amax after each batch for max, percentile and the seed's and ONNX Runtime's
entropy clips). The provenance (``calib.load_histograms_meta``) is kept under 1,024
characters, the bound the readers put on it today.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib import collect, evaluate, save_histograms  # noqa: E402
from calib.histogram import DEFAULT_BINS  # noqa: E402

MAX_META_CHARS = 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="the export's folder (model.onnx, export.json)")
    p.add_argument("--inputs", required=True, help="calibration inputs in the folder (.npz)")
    p.add_argument("--out", type=Path, required=True, help="the histogram file to write")
    ns = p.parse_args()
    t0 = time.perf_counter()
    proto, _ = evaluate.load_model(ns.folder / "model.onnx")
    selection = evaluate.select_tensors(proto)
    export = json.loads((ns.folder / "export.json").read_text(encoding="utf-8"))

    def progress(pr: collect.Progress) -> None:
        print(f"\r  {pr.batches}/{pr.total_batches} batches, {pr.elapsed_s:.0f} s", end="",
              file=sys.stderr)  # fmt: skip

    found = collect.collect_histograms(
        proto,
        ns.folder / ns.inputs,
        tensors=list(selection.names),
        bins=DEFAULT_BINS,
        signed=True,
        convergence=True,
        progress=progress,
    )
    print(file=sys.stderr)
    seconds = time.perf_counter() - t0
    meta = collect.collect_meta(
        "model.onnx",
        found.n_samples,
        source=export.get("model"),
        export=export.get("export"),
        inputs=ns.inputs,
        batches=found.n_batches,
        bins=DEFAULT_BINS,
        signed=True,
        tensors=(
            f"calib.evaluate's default selection, {len(selection.names)} tensors: the "
            f"activation data inputs of {', '.join(selection.op_types)}"
        ),
        aliases=f"{len(found.aliases)} of them re-lay out another tensor (counted as it)",
        traces="amax after each batch (calib.load_convergence)",
        script="assets/build_histograms.py",
        seconds=round(seconds, 1),
    )
    text = json.dumps(meta)
    if len(text) > MAX_META_CHARS:
        raise SystemExit(f"meta is {len(text)} characters, more than {MAX_META_CHARS}: {text}")
    save_histograms(ns.out, found.histograms, meta=meta, traces=found.traces)
    print(f"{len(found)} histograms of {selection.describe()}; {found.n_samples} samples in "
          f"{found.n_batches} batches; {seconds:.0f} s")  # fmt: skip
    bins = [h.n_bins for h in found.histograms.values()]
    print(f"bins per histogram: {min(bins)} to {max(bins)}; not activations: "
          f"{dict(found.not_activations) or 'none'}")  # fmt: skip
    print(f"wrote {ns.out} ({ns.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
