"""What INT8 calibration does to all-MiniLM-L6-v2: writes ``assets/minilm_effect.json``.

Runs with the project's own Python (numpy, onnx, onnxruntime; no torch), from the
repository root, on the folder that ``assets/export_minilm_onnx.py`` wrote:

    python assets/build_minilm_effect.py /tmp/calib-minilm

1. Histograms of the 48 tensors a deployment quantizes (the activation inputs of the 48
   MatMuls: ``calib.evaluate.select_tensors``), collected by ``calib.collect`` (signed, 2048
   bins) from ``inputs_by_length.npz``: the 512 calibration sentences in batches of 32,
   each padded only to its own longest sentence, so the histograms hold real tokens (the
   same sentences padded to 128 tokens would be three quarters padding).
2. ``calib.evaluate.evaluate`` on ``eval.npz`` (128 held-out sentences), sorted by length
   and cut into batches of 16, each padded only to its own longest: every method and
   entropy variant side by side, the sensitivity of the best one, what to keep in float
   for 20 dB (``TARGET_SQNR_DB``), and the rank correlation of the histogram's numbers
   with the sensitivity.
3. The report (``Evaluation.to_dict``) plus, per tensor, the shipped histogram
   (``assets/minilm_histograms.npz``) that Explore can open for it: the ``:input`` of the
   Linear layer whose MatMul reads it (24 of the 48; the attention MatMuls' inputs have no
   Linear layer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib import collect, evaluate, load_histograms  # noqa: E402
from calib.cli import evaluation_text  # noqa: E402

OUT = ROOT / "assets" / "minilm_effect.json"
SHIPPED = ROOT / "assets" / "minilm_histograms.npz"
EVAL_BATCH = 16
TARGET_SQNR_DB = 20.0
"""The keep-in-float target here: the default 30 dB is out of MiniLM's reach with int8
activations per tensor (the best calibration gives about 13.5 dB with all 48 quantized,
and each tensor returned to float adds well under a dB), so the list would only stop at
its step limit; 20 dB shows a list that ends."""


def by_length(arrays: dict[str, np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
    """Sentences sorted by token count (stable), in batches padded to their own longest."""
    lengths = arrays["attention_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = []
    for start in range(0, len(order), batch):
        pick = order[start : start + batch]
        width = int(lengths[pick].max())
        out.append({k: np.ascontiguousarray(a[pick, :width]) for k, a in arrays.items()})
    return out


def explore_layer(readers: tuple[str, ...], shipped: set[str]) -> str | None:
    """``/bert/encoder/layer.0/attention/self/query/MatMul`` reads the input of the Linear
    ``encoder.layer.0.attention.self.query``: that tensor's name in the shipped file."""
    for node in readers:
        parts = node.strip("/").split("/")
        if len(parts) > 2 and parts[0] == "bert" and parts[-1] == "MatMul":
            name = ".".join(parts[1:-1]) + ":input"
            if name in shipped:
                return name
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", nargs="?", default="/tmp/calib-minilm")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", default=str(OUT))
    ns = p.parse_args()
    folder = Path(ns.folder)
    model = folder / "model.onnx"
    t0 = time.perf_counter()

    proto, _ = evaluate.load_model(model)
    calib_batches = collect.load_inputs(folder / "inputs_by_length.npz")
    found = collect.collect_histograms(proto, calib_batches, op_types=evaluate.DEFAULT_OP_TYPES)
    t_collect = time.perf_counter() - t0
    print(f"collected {len(found)} histograms from {found.n_samples} sentences "
          f"in {t_collect:.0f} s", file=sys.stderr)  # fmt: skip

    with np.load(folder / "eval.npz", allow_pickle=False) as z:
        eval_arrays = {k: z[k] for k in z.files}
    batches = by_length(eval_arrays, EVAL_BATCH)
    n_eval = len(eval_arrays["input_ids"])

    def progress(pr: evaluate.Progress) -> None:
        if pr.done == pr.total or pr.done % 10 == 0:
            print(f"  {pr.stage}: {pr.done}/{pr.total} runs, {pr.elapsed_s:.0f} s",
                  file=sys.stderr)  # fmt: skip

    ev = evaluate.evaluate(
        model,
        batches,
        histograms=found.histograms,
        workers=ns.workers,
        target_sqnr_db=TARGET_SQNR_DB,
        progress=progress,
        data=(
            f"eval.npz: {n_eval} held-out sentences, sorted by length, in batches of "
            f"{EVAL_BATCH} padded to their own longest"
        ),
    )
    total = time.perf_counter() - t0
    print(evaluation_text(ev, top=12))

    doc = ev.to_dict()
    shipped = set(load_histograms(SHIPPED))
    for row in doc["sensitivity"]:
        row["explore"] = explore_layer(ev.selection.readers[row["layer"]], shipped)
    with open(folder / "export.json", encoding="utf-8") as f:
        export = json.load(f)
    doc["provenance"] = {
        "model": export.get("model"),
        "export": export.get("export"),
        "histograms": (
            f"calib.collect, signed, 2048 bins, from inputs_by_length.npz "
            f"({found.n_samples} sentences in {found.n_batches} batches)"
        ),
        "command": "python assets/build_minilm_effect.py /tmp/calib-minilm",
        "seconds": {"collect": round(t_collect, 1), "total": round(total, 1)},
        "cpus": os.cpu_count(),
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    Path(ns.out).write_text(text + "\n", encoding="utf-8")
    print(f"wrote {ns.out} ({len(text) // 1024} KB) in {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
