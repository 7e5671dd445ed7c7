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
import dataclasses
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from calib import io as cio
from calib import report
from calib.convergence import DEFAULT_TOL
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


def _converge(ns: argparse.Namespace) -> int:
    from calib import convergence

    try:
        traces = cio.load_convergence(ns.file)
        if not traces:
            raise ValueError(
                f"{ns.file} holds no traces: collect with --convergence to record them"
            )
        rows = convergence.settling_table(traces, ns.tol)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ns.format == "json":
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return 0
    print(f"samples until each method's amax stays within {ns.tol:.0%} of its final value")
    head = f"{'method':<22} {'tensors':>8} {'95% settled':>12} {'all settled':>12} {'of':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        n95 = "never" if r.samples_95 is None else str(r.samples_95)
        nall = "never" if r.samples_all is None else str(r.samples_all)
        print(f"{r.method:<22} {r.tensors:>8} {n95:>12} {nall:>12} {r.total_samples:>8}")
    return 0


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
    v = sub.add_parser(
        "converge", help="samples until the thresholds settled (collect --convergence)"
    )
    v.add_argument("file", help="histogram .npz written by collect --convergence")
    v.add_argument("--tol", type=float, default=DEFAULT_TOL, help="relative, to the final amax")
    v.add_argument("--format", choices=("table", "json"), default="table")
    b = sub.add_parser(
        "bench",
        help="time the loop references against the sweep; 'bench collect DIR' times the "
        "collector on a real model against plain inference and ONNX Runtime's",
    )
    b.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke test)")
    c = sub.add_parser("collect", help="histogram an ONNX model's tensors (needs onnxruntime)")
    c.add_argument("model", help="the .onnx model")
    c.add_argument(
        "--inputs",
        required=True,
        help=".npz of arrays named after the model inputs, or batches <input>__b<k>",
    )
    c.add_argument("--out", required=True, help="histogram file to write (.npz)")
    c.add_argument(
        "--bins",
        type=int,
        default=DEFAULT_BINS,
        help=f"bins of |x| on the first range ({DEFAULT_BINS})",
    )
    c.add_argument(
        "--abs", action="store_true", help="store |x| only (default: x on [-m, m], which folds)"
    )
    c.add_argument(
        "--convergence",
        action="store_true",
        help="record every tensor's amax after each batch (python -m calib converge reads it)",
    )
    c.add_argument("--tensors", metavar="REGEX", help="only tensors whose name matches")
    c.add_argument("--op-types", metavar="OPS", help="only outputs of these ops: MatMul,Gemm")
    c.add_argument("--batch-size", type=int, default=None, help="samples per run")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _progress_printer(stream=None):
    """A progress callback printing one line, redrawn in place on a terminal: tensors,
    batches, samples, time so far and time left."""
    stream = sys.stderr if stream is None else stream
    tty = bool(getattr(stream, "isatty", lambda: False)())
    state = {"shown": -1.0}

    def progress(p) -> None:
        batches = f"{p.batches}/{p.total_batches}" if p.total_batches else f"{p.batches}"
        samples = f"{p.samples}/{p.total_samples}" if p.total_samples else f"{p.samples}"
        left = "" if p.left_s is None else f", ~{p.left_s:.0f} s left"
        line = (
            f"collect: {p.tensors} tensors, batch {batches}, {samples} samples, "
            f"{p.elapsed_s:.0f} s{left}"
        )
        finished = p.total_batches is not None and p.batches >= p.total_batches
        if tty:
            print(f"\r{line}\x1b[K", end="\n" if finished else "", file=stream, flush=True)
        elif finished or p.batches == 0 or p.elapsed_s - state["shown"] >= 10:
            print(line, file=stream, flush=True)  # a log file: a line every 10 s at most
            state["shown"] = p.elapsed_s

    return progress


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _collect(ns: argparse.Namespace) -> int:
    from calib import collect

    for name, path in (("model", ns.model), ("inputs", ns.inputs)):
        if _same_file(ns.out, path):
            print(f"error: --out {ns.out} is the {name} file; it is never written over",
                  file=sys.stderr)  # fmt: skip
            return 2
    try:
        found = collect.collect_histograms(
            ns.model,
            ns.inputs,
            tensors=ns.tensors,
            op_types=ns.op_types,
            bins=ns.bins,
            signed=not ns.abs,
            batch_size=ns.batch_size,
            progress=None if ns.quiet else _progress_printer(),
            convergence=ns.convergence,
        )
        meta = collect.collect_meta(
            ns.model,
            found.n_samples,
            inputs=os.path.basename(ns.inputs),
            bins=ns.bins,
            signed=not ns.abs,
            tensors=ns.tensors,
            op_types=ns.op_types,
            batches=found.n_batches,
            aliases=found.aliases,
            not_activations=found.not_activations,
        )
        cio.save_histograms(ns.out, found.histograms, meta=meta, traces=found.traces)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing written", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(found)} histograms from {found.n_samples} samples "
        f"({found.n_batches} batches) to {ns.out}"
    )
    for name, why in found.not_activations.items():
        print(f"not collected: {name}: {why}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["bench", "collect"]:  # the collector on a real model: its own options
        from calib.dev import bench_collect

        return bench_collect.main(args[2:])
    if args and args[0] not in ("thresholds", "bench", "collect", "converge", "-h", "--help"):
        args.insert(0, "thresholds")
    ns = _parser().parse_args(args)
    if ns.command == "bench":
        from calib.dev.bench import run_bench

        rows = run_bench(quick=ns.quick)
        return 0 if all(r.met is not False for r in rows) else 1
    if ns.command == "collect":
        return _collect(ns)
    if ns.command == "converge":
        return _converge(ns)
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
