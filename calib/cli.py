"""The command line: ``python -m calib FILE`` prints a threshold table; ``bench`` times.

The table is :func:`calib.report.cli_records` of :func:`calib.report.layer_table`: the
Layers page's rows and flags.

Examples
--------
    python -m calib histograms.npz --variant onnxruntime
    python -m calib histograms.npz --method percentile --format csv
    python -m calib bench
    python -m calib collect model.onnx --inputs data.npz --out histograms.npz
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from calib import io as cio
from calib import report
from calib.histogram import DEFAULT_BINS
from calib.methods import DEFAULT_NUM_BITS, METHODS
from calib.numbers import fmt
from calib.policies import VARIANTS
from calib.report import CLI_COLUMNS

__all__ = ["main"]

_COLUMNS = CLI_COLUMNS


def _cell(v) -> str:
    """A table cell: a float as every page writes numbers (6 digits here), else as it is."""
    return fmt(v, 6) if isinstance(v, float) else str(v)


def _render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, default=float, allow_nan=True)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(r[c]) for c in _COLUMNS] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m calib", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("thresholds", help="threshold table for a histogram file (default)")
    t.add_argument("file", help="histogram file: .npz (multi-layer), .npy, .csv or .json")
    t.add_argument("--method", choices=METHODS, default="entropy")
    t.add_argument("--variant", choices=tuple(VARIANTS), default="seed")
    t.add_argument("--target-bins", type=int, default=None)
    t.add_argument("--num-bits", type=int, default=DEFAULT_NUM_BITS)
    t.add_argument("--format", choices=("table", "csv", "json"), default="table")
    t.add_argument("--trt-cache", metavar="OUT", help="also write a TensorRT calibration cache")
    t.add_argument(
        "--ort-json",
        metavar="OUT",
        help="also write an ONNX Runtime calibration.json (lowest, highest) = (-amax, amax)",
    )
    b = sub.add_parser("bench", help="time the loop references against the sweep")
    b.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke test)")
    c = sub.add_parser("collect", help="histogram an ONNX model's tensors (needs onnxruntime)")
    c.add_argument("model", help="the .onnx model")
    c.add_argument("--inputs", required=True, help=".npz of arrays named after the model inputs")
    c.add_argument("--out", required=True, help="histogram file to write (.npz)")
    c.add_argument(
        "--bins", type=int, default=DEFAULT_BINS, help=f"bins of the first range ({DEFAULT_BINS})"
    )
    c.add_argument("--signed", action="store_true", help="histogram x on [-m, m], not |x|")
    c.add_argument("--tensors", metavar="REGEX", help="only tensors whose name matches")
    c.add_argument("--op-types", metavar="OPS", help="only outputs of these ops: MatMul,Gemm")
    c.add_argument("--batch-size", type=int, default=None, help="samples per run")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _progress_printer():
    """A progress(done, total) callback: tqdm when installed, else a plain counter."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state: dict = {}

    def progress(done: int, total: int) -> None:
        if tqdm is not None:
            if "bar" not in state:
                state["bar"] = tqdm(total=total, unit="sample", file=sys.stderr)
            bar = state["bar"]
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
        else:
            end = "\n" if done >= total else ""
            print(f"\rcollect: {done}/{total} samples", end=end, file=sys.stderr, flush=True)

    return progress


def _collect(ns: argparse.Namespace) -> int:
    import os

    from calib import collect

    try:
        arrays = collect.load_inputs(ns.inputs)
        hists = collect.collect_histograms(
            ns.model,
            arrays,
            tensors=ns.tensors,
            op_types=ns.op_types,
            bins=ns.bins,
            signed=ns.signed,
            batch_size=ns.batch_size,
            progress=None if ns.quiet else _progress_printer(),
        )
        n = next(iter(arrays.values())).shape[0]
        meta = collect.collect_meta(
            ns.model,
            n,
            inputs=os.path.basename(ns.inputs),
            bins=ns.bins,
            signed=ns.signed,
            tensors=ns.tensors,
            op_types=ns.op_types,
        )
        cio.save_histograms(ns.out, hists, meta=meta)
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(hists)} histograms from {n} samples to {ns.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in ("thresholds", "bench", "collect", "-h", "--help"):
        args.insert(0, "thresholds")
    ns = _parser().parse_args(args)
    if ns.command == "bench":
        from calib.dev.bench import run_bench

        rows = run_bench(quick=ns.quick)
        return 0 if all(r.met is not False for r in rows) else 1
    if ns.command == "collect":
        return _collect(ns)
    if ns.command != "thresholds":
        _parser().print_help()
        return 2
    try:
        with open(ns.file, "rb") as f:
            hists = cio.load_histogram_file(f, ns.file)
        layer_rows = report.layer_table(hists, ns.method, ns.variant, ns.num_bits, ns.target_bins)
        rows = report.cli_records(layer_rows)
        # the Layers page's exports: scales only for a positive, finite amax
        if ns.trt_cache:
            text, _ = report.trt_cache_text(layer_rows)
            Path(ns.trt_cache).write_text(text, encoding="utf-8")
        if ns.ort_json:
            text, _ = report.ort_json_text(layer_rows, ns.method)
            Path(ns.ort_json).write_text(text, encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_render(rows, ns.format))
    return 0
