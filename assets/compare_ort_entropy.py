"""calib's ``entropy:onnxruntime`` against ONNX Runtime's own entropy calibrator, on a real model.

Runs with the project's own Python (numpy, onnx, onnxruntime), from the repository root:

    python assets/compare_ort_entropy.py /tmp/calib-efficientnet \\
        --histograms assets/efficientnet_lite0_histograms.npz --inputs calib.npz --eval eval.npz

1. **Same histograms**: each shipped histogram handed to ONNX Runtime's
   ``HistogramCollector.get_entropy_threshold`` (128 quantized bins, as ``calibrate`` uses at
   8 bits) against ``calib.calibrate(h, "entropy", variant="onnxruntime")``: the threshold
   each picks, tensor by tensor.
2. **Same data**: ONNX Runtime's whole pipeline, ``create_calibrator(...,
   CalibrationMethod.Entropy)``, collecting its own histograms from the calibration inputs
   (one batch per ``collect_data`` call, so that its memory stays one batch), once with its
   defaults (``num_bins=128``, ``num_quantized_bins=128``) and once with ``num_bins=4096``
   (the shipped histograms' grid: 2 x 2048 signed bins); its thresholds on the quantized
   tensors against calib's.
3. **What they do to the model**: ``calib.evaluate`` on the evaluation inputs with ONNX
   Runtime's thresholds as given clips, beside calib's ``entropy:onnxruntime``,
   ``entropy:seed`` and ``max`` (output SQNR, cosine, top-1 agreement).

Prints a table per step and writes the numbers to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib import calibrate, evaluate, load_histograms  # noqa: E402
from calib.collect import load_inputs  # noqa: E402

NQ = 128


def ort_threshold_on(h, nq: int = NQ) -> float:
    """ONNX Runtime's entropy threshold on calib's signed histogram ``h`` (its edges span
    [-m, m]; min and max passed as the edges, so ORT clamps to nothing)."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    c = HistogramCollector("entropy", True, len(h.counts), nq, 99.99, "same")
    edges = np.asarray(h.edges, dtype=np.float32)
    m = float(max(abs(edges[0]), abs(edges[-1])))
    histogram = (np.asarray(h.counts), edges, edges[0], edges[-1], np.float32(m))
    with contextlib.redirect_stdout(io.StringIO()):
        lo, hi = c.get_entropy_threshold(histogram, nq)
    return float(max(abs(float(lo)), abs(float(hi))))


def ort_pipeline(model: Path, batches: list[dict], names: list[str], num_bins: int,
                 op_types: list[str]) -> dict[str, float]:  # fmt: skip
    """ONNX Runtime's entropy calibrator end to end: tensor -> amax (max of |lo|, |hi|)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationDataReader,
        CalibrationMethod,
        create_calibrator,
    )

    class One(CalibrationDataReader):
        def __init__(self, feed):
            self.feeds = [feed]

        def get_next(self):
            return self.feeds.pop() if self.feeds else None

    with tempfile.TemporaryDirectory() as tmp:
        cal = create_calibrator(
            str(model),
            op_types,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": num_bins, "num_quantized_bins": NQ},
        )
        with contextlib.redirect_stdout(io.StringIO()):
            for feed in batches:
                cal.collect_data(One(feed))
            data = cal.compute_data()
    out = {}
    for n in names:
        lo, hi = data[n].range_value
        out[n] = float(max(abs(float(lo)), abs(float(hi))))
    return out


def table(rows: list[list[str]], cols: list[str]) -> str:
    w = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(x) for c, x in zip(cols, w, strict=True))]
    lines += ["  ".join(v.ljust(x) for v, x in zip(r, w, strict=True)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--histograms", type=Path, required=True)
    p.add_argument("--inputs", required=True, help="calibration inputs in the folder")
    p.add_argument("--eval", required=True, help="evaluation inputs in the folder")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", type=Path, default=Path("/tmp/compare_ort_entropy.json"))
    p.add_argument("--same-histograms-only", action="store_true", help="step 1 only")
    p.add_argument("--skip-same-histograms", action="store_true", help="steps 2 and 3 only")
    p.add_argument(
        "--num-bins",
        default="128,4096",
        help="ORT collections to run in step 2 (comma-separated num_bins; 128 is its default)",
    )
    p.add_argument(
        "--max-tensors",
        type=int,
        default=None,
        help="step 1 on the K tensors calib's entropy:onnxruntime clips furthest inside their "
        "max (ORT's search is a Python loop: minutes a tensor of 4096 bins on a busy machine)",
    )
    ns = p.parse_args()
    t0 = time.perf_counter()
    model = ns.folder / "model.onnx"
    hists = load_histograms(ns.histograms)
    names = list(hists)
    proto, _ = evaluate.load_model(model)
    selection = evaluate.select_tensors(proto)
    op_types = sorted({proto.graph.node[i].op_type for i in range(len(proto.graph.node))
                       if proto.graph.node[i].op_type in selection.op_types})  # fmt: skip
    result: dict = {"model": str(model), "histograms": str(ns.histograms), "nq": NQ}

    # 1. same histograms
    calib_ort = {n: calibrate(hists[n], "entropy", variant="onnxruntime").amax for n in names}
    seed = {n: calibrate(hists[n], "entropy", variant="seed").amax for n in names}
    mx = {n: calibrate(hists[n], "max").amax for n in names}
    step1 = sorted(names, key=lambda n: calib_ort[n] / mx[n] if mx[n] else 1.0)
    step1 = step1[: ns.max_tensors] if ns.max_tensors else names
    if ns.skip_same_histograms:
        step1 = []
    on_same = {}
    for k, n in enumerate(step1):
        t = time.perf_counter()
        on_same[n] = ort_threshold_on(hists[n])
        print(f"  {k + 1}/{len(step1)} {n}: ORT {on_same[n]:.6g}, calib {calib_ort[n]:.6g} "
              f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    width = {n: float(hists[n].edges[1] - hists[n].edges[0]) for n in step1}
    bins_off = {n: (calib_ort[n] - on_same[n]) / width[n] for n in step1} or {"": 0.0}
    same = sum(1 for n in step1 if calib_ort[n] == on_same[n])
    print(f"1. same histograms: ORT's get_entropy_threshold = calib entropy:onnxruntime on "
          f"{same} of {len(step1)} tensors; largest difference "
          f"{max(abs(v) for v in bins_off.values()):.2f} bins")  # fmt: skip
    result["same_histograms"] = {
        "equal": same,
        "tensors": len(step1),
        "max_abs_bins_off": max(abs(v) for v in bins_off.values()),
        "rows": {
            n: {
                "calib_onnxruntime": calib_ort[n],
                "ort_on_calib_histogram": on_same.get(n),
                "seed": seed[n],
                "max": mx[n],
            }
            for n in names
        },
    }
    t1 = time.perf_counter()
    if ns.same_histograms_only:
        ns.out.write_text(json.dumps(result, indent=1, allow_nan=False, default=_num) + "\n")
        print(f"wrote {ns.out}; {t1 - t0:.0f} s", file=sys.stderr)
        return

    # 2. same data, ORT's own collection
    inputs = load_inputs(str(ns.folder / ns.inputs))
    if isinstance(inputs, dict):
        n = len(next(iter(inputs.values())))
        batches = [{k: v[s : s + ns.batch_size] for k, v in inputs.items()}
                   for s in range(0, n, ns.batch_size)]  # fmt: skip
    else:
        batches = list(inputs)
    pipelines = {}
    for num_bins in [int(b) for b in ns.num_bins.split(",")]:
        t = time.perf_counter()
        pipelines[num_bins] = ort_pipeline(model, batches, names, num_bins, op_types)
        print(f"2. ORT create_calibrator(Entropy, num_bins={num_bins}): "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)  # fmt: skip
    rows = []
    for n in names:
        got = [f"{pipelines[nb][n]:.4g}" for nb in pipelines]
        rows.append([n[-48:], f"{mx[n]:.4g}", f"{seed[n]:.4g}", f"{calib_ort[n]:.4g}", *got])
    print(table(rows, ["tensor", "max", "calib seed", "calib onnxruntime",
                       *(f"ORT {nb} bins" for nb in pipelines)]))  # fmt: skip
    ratio = {nb: [pipelines[nb][n] / calib_ort[n] for n in names if calib_ort[n] > 0]
             for nb in pipelines}  # fmt: skip
    for nb, r in ratio.items():
        print(f"   ORT {nb} bins / calib onnxruntime amax: median {np.median(r):.3f}, "
              f"range {min(r):.3f} to {max(r):.3f}")  # fmt: skip
    result["same_data"] = {
        str(nb): {"amax": pipelines[nb], "ratio_to_calib_median": float(np.median(ratio[nb])),
                  "ratio_min": float(min(ratio[nb])), "ratio_max": float(max(ratio[nb]))}
        for nb in pipelines
    }  # fmt: skip
    t2 = time.perf_counter()

    # 3. on the model
    ev = evaluate.evaluate(
        model,
        ns.folder / ns.eval,
        histograms=hists,
        methods=["max", "entropy:seed", "entropy:onnxruntime"],
        amax={f"ORT entropy, {nb} bins": pipelines[nb] for nb in pipelines},
        sensitivity=False,
    )
    rows = []
    for m in ev.methods:
        top1 = m.result.top1_agreement
        rows.append([m.name, f"{m.sqnr_db:.2f} dB", f"{m.cosine:.4f}",
                     "n/a" if top1 is None else f"{top1:.3f}"])  # fmt: skip
    print("3. on the model (" + ev.data + ")")
    print(table(rows, ["calibration", "output SQNR", "cosine", "top-1 agreement"]))
    result["on_the_model"] = {
        m.name: {"output_sqnr_db": m.sqnr_db, "cosine": m.cosine,
                 "top1_agreement": m.result.top1_agreement}
        for m in ev.methods
    }  # fmt: skip
    result["seconds"] = {"same histograms": round(t1 - t0, 1), "ORT pipelines": round(t2 - t1, 1),
                         "evaluate": round(time.perf_counter() - t2, 1)}  # fmt: skip
    ns.out.write_text(json.dumps(result, indent=1, allow_nan=False, default=_num) + "\n")
    print(f"wrote {ns.out}; {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def _num(x):
    x = float(x)
    return None if math.isnan(x) else x


if __name__ == "__main__":
    main()
