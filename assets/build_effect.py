"""What INT8 calibration does to a real model, evaluated from its shipped collection.

Runs with the project's own Python (numpy, onnx, onnxruntime; no torch), from the
repository root, on the folder an export script wrote and the histogram file
``build_histograms.py`` wrote from it:

    python assets/build_effect.py /tmp/calib-minilm --histograms assets/minilm_histograms.npz \\
        --eval eval_by_length.npz --target-sqnr 20 --out assets/minilm_effect.json
    python assets/build_effect.py /tmp/calib-efficientnet \\
        --histograms assets/efficientnet_lite0_histograms.npz --eval eval.npz \\
        --out assets/efficientnet_lite0_effect.json

1. The calibrations come from the shipped histograms (no collection of its own): every
   method and entropy variant (``calib.evaluate.DEFAULT_METHODS``) on the tensors
   ``evaluate``'s default selection quantizes, which are the file's tensors.
2. ``calib.evaluate.evaluate`` on the held-out evaluation inputs: the methods side by side
   (output SQNR, cosine, and for class scores top-1 agreement and top-5 overlap), the
   sensitivity of the best calibration and of the seed's entropy calibration
   (``--sensitivity-of``), what to keep in float for the target, and the rank correlation
   of the histogram's numbers with the sensitivity.
3. The report (``Evaluation.to_dict``) plus, per sensitivity row, ``explore``: the name of
   its histogram in the shipped file, which is its own name (every quantized tensor has
   one), and the provenance (command, seconds, CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib import evaluate, load_histograms, load_histograms_meta  # noqa: E402
from calib.cli import evaluation_text  # noqa: E402

SENSITIVITY_OF = "best,entropy:seed"
"""The best calibration (what an engineer deploys) and the seed's entropy one (TensorRT's
default), so that what makes entropy fail is on record."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="the export's folder (model.onnx, export.json)")
    p.add_argument("--histograms", type=Path, required=True, help="the shipped collection")
    p.add_argument("--eval", required=True, help="evaluation inputs in the folder (.npz)")
    p.add_argument("--target-sqnr", type=float, default=evaluate.DEFAULT_TARGET_SQNR_DB)
    p.add_argument("--sensitivity-of", default=SENSITIVITY_OF)
    p.add_argument("--max-float", type=int, default=evaluate.DEFAULT_MAX_FLOAT)
    p.add_argument("--no-sensitivity", action="store_true", help="the methods table only")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)
    ns = p.parse_args()
    t0 = time.perf_counter()
    hists = load_histograms(ns.histograms)
    proto, _ = evaluate.load_model(ns.folder / "model.onnx")
    names = evaluate.select_tensors(proto).names
    if set(names) != set(hists):
        raise SystemExit(
            f"{ns.histograms} holds {len(hists)} tensors, the default selection {len(names)}: "
            "rebuild it with assets/build_histograms.py"
        )

    def progress(pr: evaluate.Progress) -> None:
        if pr.done == pr.total or pr.done % 10 == 0:
            print(f"  {pr.stage}: {pr.done}/{pr.total} runs, {pr.elapsed_s:.0f} s",
                  file=sys.stderr)  # fmt: skip

    ev = evaluate.evaluate(
        ns.folder / "model.onnx",
        ns.folder / ns.eval,
        histograms=hists,
        sensitivity_of=ns.sensitivity_of,
        target_sqnr_db=ns.target_sqnr,
        max_float=ns.max_float,
        sensitivity=not ns.no_sensitivity,
        workers=ns.workers,
        progress=progress,
        data=f"{ns.eval} (see assets/README.md)",
    )
    total = time.perf_counter() - t0
    print(evaluation_text(ev, top=12))

    doc = ev.to_dict()
    for rows in [doc["sensitivity"], *(s["sensitivity"] for s in doc["sensitivities"])]:
        for row in rows:
            row["explore"] = row["layer"] if row["layer"] in hists else None
    export = json.loads((ns.folder / "export.json").read_text(encoding="utf-8"))
    meta = load_histograms_meta(ns.histograms)
    doc["provenance"] = {
        "model": export.get("model"),
        "export": export.get("export"),
        "histograms": f"{ns.histograms.name} ({meta.get('date')}; assets/build_histograms.py)",
        "command": (
            f"python assets/build_effect.py {ns.folder} --histograms {ns.histograms} "
            f"--eval {ns.eval} --target-sqnr {ns.target_sqnr:g} "
            f"--sensitivity-of {ns.sensitivity_of} --max-float {ns.max_float} "
            f"{'--no-sensitivity ' if ns.no_sensitivity else ''}--out {ns.out}"
        ),
        "seconds": round(total, 1),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    ns.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {ns.out} ({len(text) // 1024} KB) in {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
