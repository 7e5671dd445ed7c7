"""The command line: ``python -m calib FILE`` prints a threshold table; ``bench`` times.

The table is :func:`calib.report.cli_records` of :func:`calib.report.layer_table`: the
Layers page's rows and flags.

Examples
--------
    python -m calib histograms.npz --variant onnxruntime
    python -m calib histograms.npz --method percentile --format csv
    python -m calib bench
    python -m calib collect model.onnx --inputs data.npz --out histograms.npz
    python -m calib evaluate model.onnx --inputs data.npz --histograms histograms.npz
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import signal
import sys
import tempfile
import unicodedata
from collections.abc import Sequence

from calib import io as cio
from calib import report
from calib.convergence import DEFAULT_TOL
from calib.histogram import DEFAULT_BINS
from calib.methods import DEFAULT_NUM_BITS, METHODS
from calib.numbers import fmt
from calib.policies import VARIANTS
from calib.report import CLI_COLUMNS
from calib.spec import SYNTAX, Spec

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
        print(f"error: {printable(str(exc))}", file=sys.stderr)
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
        method = printable(r.method)  # a name from the file: no terminal escapes
        print(f"{method:<22} {r.tensors:>8} {n95:>12} {nall:>12} {r.total_samples:>8}")
    return 0


def _thresholds_spec(ns: argparse.Namespace) -> Spec:
    """The calibrator of ``thresholds``: ``--method`` with ``--variant``, ``--num-bits`` and
    ``--target-bins``, or a ``--method`` text that says them itself (not both)."""
    loose = {"--variant": ns.variant, "--num-bits": ns.num_bits, "--target-bins": ns.target_bins}
    if ns.method in METHODS:
        bits = DEFAULT_NUM_BITS if ns.num_bits is None else ns.num_bits
        return report.table_spec(ns.method, ns.variant or "seed", bits, ns.target_bins)
    spec = Spec.parse(ns.method)
    given = [k for k, v in loose.items() if v is not None]
    if given:
        raise ValueError(
            f"--method {ns.method!r} says its calibrator whole; give {', '.join(given)} in it "
            f"({SYNTAX}) or use a bare method name"
        )
    return spec


def _parser() -> argparse.ArgumentParser:
    # the console script is "calib"; python -m calib would show argparse "__main__.py"
    prog = "calib" if os.path.basename(sys.argv[0]) == "calib" else "python -m calib"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("thresholds", help="threshold table for a histogram file (default)")
    t.add_argument("file", help="histogram file: .npz (multi-layer), .npy, .csv or .json")
    t.add_argument(
        "--method",
        default="entropy",
        help=f"a method ({', '.join(METHODS)}) with the options below, or a calibrator that "
        f"says them itself, {SYNTAX}: entropy:mxnet@4, percentile:99.9, "
        "entropy:onnxruntime/levels=200 (default: entropy)",
    )
    t.add_argument("--variant", choices=tuple(VARIANTS), default=None, help="default: seed")
    t.add_argument("--target-bins", type=int, default=None)
    t.add_argument("--num-bits", type=int, default=None, help=f"default: {DEFAULT_NUM_BITS}")
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
        help="(from a checkout) time the loop references against the sweep; 'bench evaluate' "
        "times a 200-tensor sensitivity table against plain inference; 'bench collect DIR' "
        "times the collector on a real model against plain inference and ONNX Runtime's",
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
    c.add_argument("--op-types", metavar="OPS", help="only what these ops read, as evaluate's "
                   "--op-types: MatMul,Gemm (default: every float activation)")  # fmt: skip
    c.add_argument("--batch-size", type=int, default=None, help="samples per run")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    _evaluate_parser(sub)
    return p


def _evaluate_parser(sub) -> None:
    from calib.evaluate import DEFAULT_MAX_FLOAT, DEFAULT_METHODS, DEFAULT_TARGET_SQNR_DB

    e = sub.add_parser(
        "evaluate",
        help="what each calibration, and each tensor, does to a model's outputs",
        description=(
            "Fake-quantize a model's activations (QuantizeLinear -> DequantizeLinear) and "
            "compare its outputs with the float model's: the methods side by side, each "
            "tensor's sensitivity, what to keep in float. Needs onnxruntime."
        ),
    )
    e.add_argument("model", help="the float .onnx model")
    e.add_argument(
        "--inputs",
        help=".npz calibration inputs: histograms are collected from them unless "
        "--histograms is given; without --eval-inputs their last 20%% is held out for "
        "evaluation (and not collected from)",
    )
    e.add_argument("--histograms", metavar="H.npz", help="the tensors' histograms (no collection)")
    e.add_argument("--eval-inputs", metavar="E.npz", help=".npz evaluation inputs")
    e.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated calibrators: max, percentile[:P], mse, entropy[:<variant>] "
        "(default: all; any calib.Spec text)",
    )
    e.add_argument(
        "--cache",
        action="append",
        default=[],
        metavar="FILE",
        help="a TensorRT cache or ONNX Runtime calibration table: one more row (repeatable)",
    )
    e.add_argument(
        "--sensitivity-of",
        default="best",
        metavar="NAME",
        help="the calibration whose per-tensor sensitivity is measured (default: best); "
        "several, comma-separated: best,entropy:seed",
    )
    e.add_argument("--op-types", metavar="OPS", help="quantize the inputs of these ops "
                   "(default MatMul,Gemm,Conv)")  # fmt: skip
    e.add_argument("--tensors", metavar="REGEX", help="only tensors whose name matches")
    e.add_argument("--num-bits", type=int, default=DEFAULT_NUM_BITS, help="2..8")
    e.add_argument(
        "--weights", action="store_true", help="also quantize weights (per channel, max)"
    )
    e.add_argument(
        "--target-sqnr",
        type=float,
        default=DEFAULT_TARGET_SQNR_DB,
        metavar="DB",
        help=f"keep-in-float target, output SQNR in dB ({DEFAULT_TARGET_SQNR_DB:g})",
    )
    e.add_argument(
        "--max-float",
        type=int,
        default=DEFAULT_MAX_FLOAT,
        metavar="N",
        help=f"most tensors the keep-in-float search returns to float ({DEFAULT_MAX_FLOAT})",
    )
    e.add_argument("--no-sensitivity", action="store_true", help="only the methods table")
    where = e.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler's address")
    e.add_argument("--batch-size", type=int, default=None, help="samples per run")
    e.add_argument("--format", choices=("table", "json"), default="table")
    e.add_argument("--out", metavar="FILE.json", help="also write the JSON report here")
    e.add_argument("--quiet", action="store_true", help="no progress output")


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
    why = why or _unwritable({"--out": ns.out})
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
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(found)} histograms from {found.n_samples} samples "
        f"({found.n_batches} batches) to {printable(ns.out)}"
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


NEEDS_CHECKOUT = (
    "error: 'calib bench' is a maintainers' tool: it runs from a checkout of calib's source "
    "(python -m calib bench there); an installed calib leaves calib/dev out"
)


def _dev_tool(name: str):
    """``calib.dev.<name>``, or None after one line on stderr when calib/dev is not there
    (an installed wheel leaves the maintainers' folder out)."""
    import importlib

    try:
        return importlib.import_module(f"calib.dev.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("calib.dev", f"calib.dev.{name}"):
            raise  # something calib.dev itself needs: the real error
        print(NEEDS_CHECKOUT, file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status. Never a traceback for what a run can meet: memory
    running out is one line (exit 2), a reader that went away (``| head``) ends it quietly
    with the shell's status for SIGPIPE, 141."""
    try:
        return _main(argv)
    except MemoryError:
        print("error: out of memory (MemoryError): the input is too large for this machine; "
              "nothing was written", file=sys.stderr)  # fmt: skip
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 128 + signal.SIGPIPE


def _quiet_stdout() -> None:
    """The reader of stdout went away: point stdout at /dev/null, so the flush at exit does
    not fail again (the recipe of Python's ``signal`` documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass


def _unwritable(outputs: dict[str, str | None]) -> str | None:
    """Why an output file could not be written, checked before any run starts (a run of
    minutes is not lost to a typo in ``--out``): a folder, a missing folder, a place this
    process may not write. None if each can be. The test is the real one: a temporary file
    created (and removed) beside where the output goes."""
    for opt, path in outputs.items():
        if not path:
            continue
        shown = printable(path)
        if os.path.isdir(path):
            return f"{opt} {shown} is a folder; give a file name"
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            return f"{opt} {shown}: the folder {printable(folder)} does not exist"
        try:
            fd, probe = tempfile.mkstemp(prefix=".calib-probe-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            return f"{opt} {shown} cannot be written ({why.lower()} in {printable(folder)})"
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return f"{opt} {shown} cannot be written (the file is read-only)"
    return None


def _main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] in (["bench", "collect"], ["bench", "evaluate"]):
        # the collector on a real model; the sensitivity table against plain inference
        tool = _dev_tool(f"bench_{args[1]}")
        return 2 if tool is None else tool.main(args[2:])
    commands = ("thresholds", "bench", "collect", "converge", "evaluate", "-h", "--help")
    if args and args[0] not in commands:
        args.insert(0, "thresholds")
    ns = _parser().parse_args(args)
    if ns.command == "bench":
        bench = _dev_tool("bench")
        if bench is None:
            return 2
        rows = bench.run_bench(quick=ns.quick)
        return 0 if all(r.met is not False for r in rows) else 1
    if ns.command == "collect":
        return _collect(ns)
    if ns.command == "converge":
        return _converge(ns)
    if ns.command == "evaluate":
        return _evaluate(ns)
    if ns.command != "thresholds":
        _parser().print_help()
        return 2
    outputs = {"--trt-cache": ns.trt_cache, "--ort-json": ns.ort_json}
    why = _overwrites(outputs, {"histogram file": ns.file}) or _unwritable(outputs)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    try:
        with open(ns.file, "rb") as f:
            hists = cio.load_histogram_file(f, ns.file)
        layer_rows = report.layer_table(hists, _thresholds_spec(ns))
        rows = report.cli_records(layer_rows)
        # the Layers page's exports: scales only for a positive, finite amax; each file
        # written whole or not at all (a temporary file beside it, then a rename)
        if ns.trt_cache:
            text, skipped = report.trt_cache_text(layer_rows)
            cio.write_text(ns.trt_cache, text)
            _note_skipped(ns.trt_cache, skipped)
        if ns.ort_json:
            text, skipped = report.ort_json_text(layer_rows, _thresholds_spec(ns))
            cio.write_text(ns.ort_json, text)
            _note_skipped(ns.ort_json, skipped)
    except (ValueError, OSError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    print(_render(rows, ns.format))
    return 0


# -- evaluate ---------------------------------------------------------------------------------
def _text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def evaluation_text(ev, top: int = 15) -> str:
    """The report of :func:`calib.evaluate.evaluate` as the command line prints it."""
    db = " dB"
    out = [
        f"model: {ev.model}; outputs: {', '.join(ev.outputs)}",
        f"quantized: {ev.selection.describe()}; int{ev.num_bits} symmetric; weights "
        + ("int8 per channel (max)" if ev.weights else "float"),
        f"evaluation: {ev.data}",
        "",
        "Methods: every tensor quantized (output SQNR and mean cosine, worst output)",
    ]
    measured = {x.calibration for x in ev.sensitivities if x.rows}
    scores = any(m.result.top1_agreement is not None for m in ev.methods)
    rows = [
        [m.name, fmt(m.sqnr_db, 2, fixed=True, unit=db), fmt(m.cosine, 5, fixed=True),
         *([fmt(m.result.top1_agreement, 4, fixed=True),
            fmt(m.result.top5_overlap, 4, fixed=True)] if scores else []),
         f"{m.quantized}/{len(ev.selection.names)}",
         "<- its sensitivity below" if m.name in measured else ""]
        for m in ev.methods
    ]  # fmt: skip
    top_cols = ["top-1", "top-5"] if scores else []
    out.append(_text_table(["method", "SQNR", "cosine", *top_cols, "quantized", ""], rows))
    ranked = [(x.calibration, x.rows) for x in ev.sensitivities]
    for calibration, sens in ranked or [(ev.calibration, ev.sensitivity)]:
        if not sens:
            continue
        out += [
            "",
            f"Sensitivity of {calibration} (output SQNR; most harmful first; "
            f"{min(top, len(sens))} of {len(sens)})",
        ]
        rows = [
            [s.layer, fmt(s.only_this.sqnr_db, 2, fixed=True, unit=db),
             fmt(s.all_but_this.sqnr_db, 2, fixed=True, unit=db),
             *([fmt(s.only_this.top1_agreement, 4, fixed=True)] if scores else []),
             fmt(s.hist_sqnr_db, 2, fixed=True, unit=db), fmt(s.kl, 3), ", ".join(s.flags)]
            for s in sens[:top]
        ]  # fmt: skip
        cols = ["tensor", "only this", "all but this", *(["top-1 only this"] if scores else []),
                "histogram SQNR", "KL", "flags"]  # fmt: skip
        out.append(_text_table(cols, rows))
    if ev.reached is not None:
        start = fmt(ev.all_quantized.sqnr_db, 2, fixed=True, unit=db)
        out += ["", f"Keep in float (target {fmt(ev.target_sqnr_db, 4, unit=db)}; all "
                f"quantized: {start})"]  # fmt: skip
        if ev.keep_float:
            rows = [[str(i + 1), k.layer, fmt(k.result.sqnr_db, 2, fixed=True, unit=db)]
                    for i, k in enumerate(ev.keep_float)]  # fmt: skip
            out.append(_text_table(["step", "back to float", "output SQNR"], rows))
        out.append(
            "target met" if ev.reached else f"target not met after {len(ev.keep_float)} tensors"
        )
    if ev.rank_correlation:
        rho = {k: fmt(v, 2, fixed=True) for k, v in ev.rank_correlation.items()}
        out += [
            "",
            f"Does the histogram predict it? Spearman's rho against the only-this output SQNR "
            f"over {len(ev.sensitivity)} tensors: histogram SQNR {rho['hist_sqnr_db']}, "
            f"KL {rho['kl']}, clipped mass {rho['clipped']}",
        ]
    out += ["", f"{ev.runs} runs on {ev.backend} in {fmt(ev.seconds['total'], 3)} s"]
    return "\n".join(out)


def _evaluate_progress(stream=None):
    stream = sys.stderr if stream is None else stream
    tty = bool(getattr(stream, "isatty", lambda: False)())
    state = {"shown": -1.0}

    def progress(p) -> None:
        line = f"evaluate: {p.stage}: run {p.done}/{p.total}, {p.elapsed_s:.0f} s"
        last = p.done >= p.total
        if tty:
            print(f"\r{line}\x1b[K", end="\n" if last else "", file=stream, flush=True)
        elif last or p.elapsed_s - state["shown"] >= 10:
            print(line, file=stream, flush=True)
            state["shown"] = p.elapsed_s

    return progress


def _evaluate(ns: argparse.Namespace) -> int:
    from calib import collect, evaluate

    inputs = {f"{name} file": getattr(ns, name) for name in
              ("model", "inputs", "histograms", "eval_inputs")}  # fmt: skip
    inputs |= {f"cache {i + 1}": path for i, path in enumerate(ns.cache)}
    why = _overwrites({"--out": ns.out}, {k: v for k, v in inputs.items() if v})
    why = why or _unwritable({"--out": ns.out})
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if not ns.eval_inputs and not ns.inputs:
        print("error: give --eval-inputs, or --inputs to hold a share out", file=sys.stderr)
        return 2
    if not ns.histograms and not ns.inputs and not ns.cache:
        print("error: give --histograms, --inputs to collect them from, or --cache",
              file=sys.stderr)  # fmt: skip
        return 2
    progress = None if ns.quiet else _evaluate_progress()
    try:
        held = None
        if ns.eval_inputs:
            eval_inputs, data = ns.eval_inputs, os.path.basename(ns.eval_inputs)
        else:
            held = evaluate.hold_out(ns.inputs)
            eval_inputs, data = (
                held.evaluation,
                f"{os.path.basename(ns.inputs)}: {held.description}",
            )
        histograms = ns.histograms
        if histograms is None and ns.inputs:
            proto, _ = evaluate.load_model(ns.model)
            source = held.calibration if held is not None else ns.inputs
            histograms = collect.collect_histograms(  # the tensors evaluate quantizes
                proto, source, op_types=ns.op_types or evaluate.DEFAULT_OP_TYPES,
                tensors=ns.tensors, batch_size=ns.batch_size,
                progress=None if ns.quiet else _progress_printer(),
            )  # fmt: skip
        ev = evaluate.evaluate(
            ns.model,
            eval_inputs,
            histograms=histograms,
            methods=ns.methods.split(",") if histograms is not None else (),
            caches=ns.cache,
            sensitivity_of=ns.sensitivity_of,
            op_types=ns.op_types,
            tensors=ns.tensors,
            num_bits=ns.num_bits,
            weights=ns.weights,
            sensitivity=not ns.no_sensitivity,
            target_sqnr_db=ns.target_sqnr,
            max_float=ns.max_float,
            batch_size=ns.batch_size,
            workers=ns.workers,
            scheduler=ns.scheduler,
            progress=progress,
            data=data,
        )
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    doc = json.dumps(ev.to_dict(), indent=2, allow_nan=False)
    if ns.out:
        cio.write_text(ns.out, doc + "\n")  # whole or not at all
    # names in the report come from the model and files: every line printable
    text = doc if ns.format == "json" else evaluation_text(ev)
    print("\n".join(printable(line) for line in text.split("\n")))
    return 0
