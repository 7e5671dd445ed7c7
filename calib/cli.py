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
import os
import sys
import unicodedata
from collections.abc import Sequence

from calib import io as cio
from calib import report
from calib.histogram import DEFAULT_BINS
from calib.methods import DEFAULT_NUM_BITS, METHODS
from calib.numbers import fmt
from calib.policies import VARIANTS
from calib.report import CLI_COLUMNS

__all__ = ["main", "printable"]

_COLUMNS = CLI_COLUMNS


_UNPRINTABLE = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")  # controls, formats, separators


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: control characters (ESC starts escape
    sequences), format characters (right-to-left overrides), line and paragraph separators,
    surrogates and unassigned code points are written as ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN``. Names in files may hold any of them; ``--format json`` writes them
    exactly (JSON escapes them its own way)."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in _UNPRINTABLE:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}" if code < 0x100
                else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )  # fmt: skip
        else:
            out.append(ch)
    return "".join(out)


def _cell(v) -> str:
    """A table cell: a float as every page writes numbers (6 digits here), else as it is,
    safe to print (:func:`printable`)."""
    return fmt(v, 6) if isinstance(v, float) else printable(str(v))


def _render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":  # strict JSON: nan is null, inf "inf" (report.json_value)
        doc = [{k: report.json_value(v) for k, v in r.items()} for r in rows]
        return json.dumps(doc, indent=2, allow_nan=False)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows({k: printable(v) if isinstance(v, str) else v for k, v in r.items()}
                    for r in rows)  # fmt: skip
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
        return os.path.realpath(a) == os.path.realpath(b)


def _overwrites(outputs: dict[str, str | None], inputs: dict[str, str]) -> str | None:
    """Why writing ``outputs`` (option -> path) would lose a file: an output that is an
    input (a link to it included), or two outputs that are one file; None if none would."""
    paths = [(opt, path) for opt, path in outputs.items() if path]
    for opt, path in paths:
        for what, src in inputs.items():
            if _same_file(path, src):
                return f"{opt} {printable(path)} is the {what}; an input is never written over"
    for i, (opt, path) in enumerate(paths):
        for other, path2 in paths[i + 1 :]:
            if _same_file(path, path2):
                return f"{opt} and {other} are the same file, {printable(path)}"
    return None


def _collect(ns: argparse.Namespace) -> int:
    from calib import collect

    why = _overwrites({"--out": ns.out}, {"model file": ns.model, "inputs file": ns.inputs})
    if why:
        print(f"error: {why}", file=sys.stderr)
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
        cio.save_histograms(ns.out, found.histograms, meta=meta)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing written", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(found)} histograms from {found.n_samples} samples "
        f"({found.n_batches} batches) to {ns.out}"
    )
    for name, why in found.not_activations.items():
        print(f"not collected: {printable(name)}: {why}")
    return 0


def _note_skipped(path: str, skipped: list[str]) -> None:
    """Say which tensors an export left out (no scale, or a name its lines cannot hold)."""
    if skipped:
        names = ", ".join(printable(repr(n)) for n in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        print(f"note: {printable(path)} leaves out {len(skipped)} tensors (dead, no scale, "
              f"or a name a line cannot hold): {names}{more}", file=sys.stderr)  # fmt: skip


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
    why = _overwrites(
        {"--trt-cache": ns.trt_cache, "--ort-json": ns.ort_json}, {"histogram file": ns.file}
    )
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    try:
        with open(ns.file, "rb") as f:
            hists = cio.load_histogram_file(f, ns.file)
        layer_rows = report.layer_table(hists, ns.method, ns.variant, ns.num_bits, ns.target_bins)
        rows = report.cli_records(layer_rows)
        # the Layers page's exports: scales only for a positive, finite amax; each file
        # written whole or not at all (a temporary file beside it, then a rename)
        if ns.trt_cache:
            text, skipped = report.trt_cache_text(layer_rows)
            cio.write_text(ns.trt_cache, text)
            _note_skipped(ns.trt_cache, skipped)
        if ns.ort_json:
            text, skipped = report.ort_json_text(layer_rows, ns.method)
            cio.write_text(ns.ort_json, text)
            _note_skipped(ns.ort_json, skipped)
    except (ValueError, OSError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    print(_render(rows, ns.format))
    return 0
