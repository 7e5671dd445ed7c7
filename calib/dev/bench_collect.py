"""``python -m calib.dev.bench_collect MODEL_DIR``: the collector on a real model, timed.

MODEL_DIR holds ``model.onnx`` and ``inputs.npz`` (``assets/export_minilm_onnx.py`` writes
them for all-MiniLM-L6-v2). One run measures three cases over the same batches, each in a
fresh Python process of its own, so that its peak RSS (``VmHWM``) is its own:

``plain``
    onnxruntime inference of every batch (CPU, graph optimisations off, as the collector
    runs it), outputs discarded: the floor every collector pays.
``calib``
    :func:`calib.collect.collect_histograms` with its default tensor set, then
    :func:`calib.save_histograms` to a file the parent reads back. Its default layout, ``x``
    on ``[-m, m]`` in ``2 * bins`` bins, with ``bins = NB / 2``: the grid ORT builds (same
    edges, same growth), so that the agreement compares the sweep with ORT's search on the
    same data.
``ort``
    ONNX Runtime's own route: ``create_calibrator(..., CalibrationMethod.Entropy,
    extra_options={"num_bins": NB, "num_quantized_bins": 128, "symmetric": True})``,
    ``collect_data`` once per batch (a reader yielding that one batch, so memory stays
    bounded), then ``compute_data()``. Its thresholds (``TensorData`` lowest / highest) and
    its final bin width per tensor are written as JSON for the parent. ``NB`` defaults to
    4096: ORT histograms x on ``[-m, m]``, so 4096 bins have the width of calib's 2048-bin
    ``|x|`` histogram on ``[0, m]``. A tensor on which ORT's histogram fails (the attention
    masks, which hold float32's minimum: ``np.histogram`` cannot make 4096 finite bins on
    ``[-3.4e38, 3.4e38]``) is dropped from ORT's collector at the failure, its error kept,
    and it is reported apart, not counted; every other tensor goes through ORT's own code.

Each case's wall time runs from the model load to its last step (imports and reading the
inputs come before). Then the parent prints the table (wall, ratio to ``plain``, peak RSS,
tensors) and the agreement: for every tensor both routes calibrate, ``kl_sweep(hist, 128,
"onnxruntime")`` on calib's histogram against ORT's threshold ``max(|lowest|, |highest|)``,
counted in ORT's bin widths (:func:`agreement`). Where they differ by more than a bin the
cause measured on all-MiniLM-L6-v2 was float32 KL noise on a flat curve
(``precision="float32"`` on ORT's own histogram gives ORT's answer) or a few thousand
counts that ORT's float32 ``np.histogram`` puts in the neighbouring bin; an ``|x|``
histogram mirrored (calib's old default) is not ORT's signed histogram of an asymmetric
tensor, and agreed on 60 of 204 tensors only.

numpy and the standard library at import; onnx and onnxruntime are imported by the cases.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CASES",
    "Agreement",
    "BenchCollect",
    "CaseResult",
    "Row",
    "agreement",
    "main",
    "print_report",
    "run",
    "run_case",
]

CASES = ("plain", "calib", "ort")
DEFAULT_BATCH_SIZE = 32
DEFAULT_ORT_BINS = 4096
DEFAULT_TARGET_BINS = 128
MODEL_FILE = "model.onnx"
INPUTS_FILE = "inputs.npz"
CALIB_FILE = "calib_histograms.npz"
ORT_FILE = "ort_thresholds.json"
_RESULT_TAG = "BENCH_COLLECT_RESULT "


# -- the agreement: pure ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One tensor both routes calibrate: calib's amax, ORT's threshold and ORT's bin width."""

    name: str
    calib_amax: float
    ort_threshold: float
    bin_width: float

    @property
    def bins_apart(self) -> float:
        """``|calib - ort|`` in ORT's bin widths (0 when equal, inf for a zero width)."""
        d = abs(self.calib_amax - self.ort_threshold)
        if d == 0:
            return 0.0
        return d / self.bin_width if self.bin_width > 0 else math.inf


@dataclasses.dataclass(frozen=True)
class Agreement:
    """calib against ORT, tensor by tensor. ``rows`` worst first (most bins apart)."""

    rows: tuple[Row, ...]
    only_calib: tuple[str, ...]
    only_ort: tuple[str, ...]

    @property
    def compared(self) -> int:
        return len(self.rows)

    @property
    def same_bin(self) -> int:
        """Less than half a bin apart: the same bin edge (thresholds are edges, or the max)."""
        return sum(r.bins_apart < 0.5 for r in self.rows)

    @property
    def within_one_bin(self) -> int:
        """At most one bin apart (less than 1.5 bin widths), the same bin included."""
        return sum(r.bins_apart < 1.5 for r in self.rows)


def agreement(calib: Mapping[str, float], ort: Mapping[str, tuple[float, float]]) -> Agreement:
    """Compare calib's amax per tensor with ORT's ``(threshold, bin_width)`` per tensor.

    Tensors in one mapping only are listed apart. The distance is ``|calib - ort|`` divided
    by ORT's bin width for that tensor: under 0.5 counts as the same bin, under 1.5 as
    within one bin, so values one bin width apart are within one and two apart are not.
    """
    rows = [
        Row(name, float(calib[name]), float(ort[name][0]), float(ort[name][1]))
        for name in calib
        if name in ort
    ]
    rows.sort(key=lambda r: (-r.bins_apart, r.name))
    return Agreement(
        rows=tuple(rows),
        only_calib=tuple(n for n in calib if n not in ort),
        only_ort=tuple(n for n in ort if n not in calib),
    )


# -- one case, in its own process ------------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak resident set size, MiB (``VmHWM``; getrusage where no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _batches(inputs: Mapping[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    n = next(iter(inputs.values())).shape[0]
    return [{k: a[s : s + batch_size] for k, a in inputs.items()} for s in range(0, n, batch_size)]


def _read_inputs(path: Path, batch_size: int, batches: int | None) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if batches is not None:
        arrays = {k: a[: batches * batch_size] for k, a in arrays.items()}
    return arrays


def _case_plain(model: Path, inputs: dict, batch_size: int, work: Path, **_: Any) -> dict:
    import onnxruntime as ort

    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    t1 = time.perf_counter()
    for batch in _batches(inputs, batch_size):
        session.run(None, batch)
    t2 = time.perf_counter()
    return {"wall_s": t2 - t0, "parts": {"session": t1 - t0, "run": t2 - t1}, "tensors": None}


def _case_calib(
    model: Path,
    inputs: dict,
    batch_size: int,
    work: Path,
    num_bins: int,
    **_: Any,
) -> dict:
    from calib.collect import collect_histograms
    from calib.io import save_histograms

    # calib's default layout: x on [-m, m] in 2 * bins bins, ORT's own grid when bins is
    # half of ORT's num_bins (the default 2048 against 4096)
    t0 = time.perf_counter()
    hists = collect_histograms(model, inputs, batch_size=batch_size, bins=num_bins // 2)
    t1 = time.perf_counter()
    save_histograms(work / CALIB_FILE, hists)
    t2 = time.perf_counter()
    return {
        "wall_s": t2 - t0,
        "parts": {"collect": t1 - t0, "save": t2 - t1},
        "tensors": len(hists),
    }


def _tolerant_collector(base: type) -> type:
    """ORT's HistogramCollector, one tensor at a time, failures recorded instead of raised.

    ``collect_value`` hands each tensor to ORT's own ``collect_value`` alone; one that
    raises is dropped and its error kept in ``failed``. ``get_entropy_threshold`` is ORT's,
    with a failure recorded and NaN returned (the tensor is then reported, not compared).
    """

    class Tolerant(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.failed: dict[str, str] = {}
            self._names: dict[int, str] = {}

        def collect_value(self, name_to_arr):
            for name, arr in name_to_arr.items():
                if name in self.failed:
                    continue
                try:
                    with np.errstate(over="ignore", invalid="ignore"):  # the error says it
                        super().collect_value({name: arr})
                except Exception as exc:  # numpy's ValueError on a non-finite range, mostly
                    self.failed[name] = f"collect: {type(exc).__name__}: {exc}"
                    self.histogram_dict.pop(name, None)

        def compute_entropy(self):
            self._names = {id(h): n for n, h in self.histogram_dict.items()}
            return super().compute_entropy()

        def get_entropy_threshold(self, histogram, num_quantized_bins):
            try:
                return super().get_entropy_threshold(histogram, num_quantized_bins)
            except Exception as exc:
                name = self._names.get(id(histogram), "?")
                self.failed[name] = f"threshold: {type(exc).__name__}: {exc}"
                nan = np.array(np.nan, dtype=np.float32)
                return nan, nan

    return Tolerant


def _case_ort(
    model: Path,
    inputs: dict,
    batch_size: int,
    work: Path,
    num_bins: int,
    target_bins: int,
    **_: Any,
) -> dict:
    from onnxruntime.quantization import calibrate as oc

    class OneBatch(oc.CalibrationDataReader):
        def __init__(self, batch: dict[str, np.ndarray]) -> None:
            self._left = [batch]

        def get_next(self):
            return self._left.pop() if self._left else None

    t0 = time.perf_counter()
    calibrator = oc.create_calibrator(
        str(model),
        op_types_to_calibrate=None,
        augmented_model_path=str(work / "ort_augmented.onnx"),
        calibrate_method=oc.CalibrationMethod.Entropy,
        extra_options={
            "num_bins": num_bins,
            "num_quantized_bins": target_bins,
            "symmetric": True,
        },
    )
    # collect_data would make a plain HistogramCollector on its first call: same arguments
    calibrator.collector = _tolerant_collector(oc.HistogramCollector)(
        method=calibrator.method,
        symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins,
        num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile,
        scenario=calibrator.scenario,
    )
    t1 = time.perf_counter()
    for batch in _batches(inputs, batch_size):
        calibrator.collect_data(OneBatch(batch))
    t2 = time.perf_counter()
    data = calibrator.compute_data()
    t3 = time.perf_counter()

    collector = calibrator.collector
    failed = dict(collector.failed)
    thresholds = {}
    for name, td in data.items():
        if name in failed:
            continue
        hist, _edges, _lo, _hi, rng = collector.histogram_dict[name]
        lowest, highest = float(td.lowest), float(td.highest)
        width = 2 * float(rng) / len(hist)
        if not all(math.isfinite(v) for v in (lowest, highest, width)):
            failed[name] = f"non-finite result: lowest {lowest}, highest {highest}, bin {width}"
            continue
        thresholds[name] = {
            "lowest": lowest,
            "highest": highest,
            "threshold": max(abs(lowest), abs(highest)),
            "bin_width": width,
            "bins": len(hist),
        }
    (work / ORT_FILE).write_text(json.dumps({"thresholds": thresholds, "failed": failed}))
    t4 = time.perf_counter()
    return {
        "wall_s": t4 - t0,
        "parts": {"setup": t1 - t0, "collect": t2 - t1, "compute_data": t3 - t2},
        "tensors": len(thresholds),
        "failed": len(failed),
        "selected": len(calibrator.tensors_to_calibrate),
    }


_CASE_FNS: dict[str, Callable[..., dict]] = {
    "plain": _case_plain,
    "calib": _case_calib,
    "ort": _case_ort,
}


def run_case(
    case: str,
    model_dir: str | os.PathLike,
    work: str | os.PathLike,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batches: int | None = None,
    num_bins: int = DEFAULT_ORT_BINS,
    target_bins: int = DEFAULT_TARGET_BINS,
) -> dict:
    """Run one case in this process; its timings, tensor count and this process's peak RSS.

    Meant for a fresh process (``run`` starts one per case): the peak RSS is the process's.
    ``batches`` keeps only the first so many batches. Files go to ``work``.
    """
    if case not in _CASE_FNS:
        raise ValueError(f"case must be one of {', '.join(CASES)}, got {case!r}")
    model_dir, work = Path(model_dir), Path(work)
    inputs = _read_inputs(model_dir / INPUTS_FILE, batch_size, batches)
    n = next(iter(inputs.values())).shape[0]
    # ORT prints progress on stdout; stdout carries this case's result
    with contextlib.redirect_stdout(sys.stderr):
        out = _CASE_FNS[case](
            model_dir / MODEL_FILE,
            inputs,
            batch_size,
            work,
            num_bins=num_bins,
            target_bins=target_bins,
        )
    out.update(case=case, samples=n, batches=-(-n // batch_size), peak_rss_mb=_peak_rss_mb())
    return out


# -- the parent ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CaseResult:
    case: str
    wall_s: float | None
    peak_rss_mb: float | None
    tensors: int | None
    info: dict
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class BenchCollect:
    results: tuple[CaseResult, ...]
    agreement: Agreement | None
    ort_failed: dict[str, str]
    calib_max_abs: dict[str, float]
    samples: int
    batch_size: int
    num_bins: int
    target_bins: int

    def result(self, case: str) -> CaseResult | None:
        return next((r for r in self.results if r.case == case), None)


def _child(case: str, model_dir: Path, work: Path, opts: dict, python: str) -> CaseResult:
    cmd = [python, "-m", "calib.dev.bench_collect", str(model_dir), "--child", case]
    cmd += ["--work", str(work), "--batch-size", str(opts["batch_size"])]
    cmd += ["--num-bins", str(opts["num_bins"]), "--target-bins", str(opts["target_bins"])]
    if opts["batches"] is not None:
        cmd += ["--batches", str(opts["batches"])]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the calib package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_RESULT_TAG)]
    if done.returncode or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return CaseResult(case, None, None, None, {}, f"exit {done.returncode}: {tail}")
    info = json.loads(lines[-1][len(_RESULT_TAG) :])
    return CaseResult(case, info["wall_s"], info["peak_rss_mb"], info["tensors"], info)


def run(
    model_dir: str | os.PathLike,
    *,
    cases: Sequence[str] = CASES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batches: int | None = None,
    num_bins: int = DEFAULT_ORT_BINS,
    target_bins: int = DEFAULT_TARGET_BINS,
    python: str = sys.executable,
    progress: Callable[[str], Any] | None = None,
) -> BenchCollect:
    """Run each case in a fresh process, then compare calib's thresholds with ORT's."""
    from calib.io import load_histograms
    from calib.sweep import kl_sweep

    model_dir = Path(model_dir)
    for f in (MODEL_FILE, INPUTS_FILE):
        if not (model_dir / f).is_file():
            raise ValueError(f"{model_dir} holds no {f}")
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        raise ValueError(f"cases must be among {', '.join(CASES)}, got {list(cases)}")
    opts = dict(
        batch_size=batch_size,
        batches=batches,
        num_bins=num_bins,
        target_bins=target_bins,
    )
    with tempfile.TemporaryDirectory(prefix="calib-bench-collect-") as tmp:
        work = Path(tmp)
        results = []
        for case in cases:
            if progress is not None:
                progress(case)
            results.append(_child(case, model_dir, work, opts, python))
        calib_amax: dict[str, float] = {}
        calib_max_abs: dict[str, float] = {}
        if (work / CALIB_FILE).is_file():
            for name, h in load_histograms(work / CALIB_FILE).items():
                calib_amax[name] = float(kl_sweep(h, target_bins, "onnxruntime").amax)
                calib_max_abs[name] = float(h.max_abs)
        ort: dict[str, tuple[float, float]] = {}
        ort_failed: dict[str, str] = {}
        if (work / ORT_FILE).is_file():
            got = json.loads((work / ORT_FILE).read_text())
            ort = {n: (d["threshold"], d["bin_width"]) for n, d in got["thresholds"].items()}
            ort_failed = got["failed"]
    samples = next((r.info["samples"] for r in results if r.error is None), 0)
    return BenchCollect(
        results=tuple(results),
        agreement=agreement(calib_amax, ort) if calib_amax and ort else None,
        ort_failed=ort_failed,
        calib_max_abs=calib_max_abs,
        samples=samples,
        batch_size=batch_size,
        num_bins=num_bins,
        target_bins=target_bins,
    )


def _g(x: float) -> str:
    return f"{x:.6g}"


def _names(names: Sequence[str], shown: int = 3) -> str:
    if not names:
        return ""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ": " + ", ".join(names[:shown]) + more


def print_report(b: BenchCollect, out: Callable[[str], Any] = print, worst: int = 10) -> None:
    """The table, the agreement and the tensors ORT could not calibrate."""
    plain = b.result("plain")
    base = plain.wall_s if plain is not None and plain.error is None else None
    out(
        f"{b.samples} samples in batches of {b.batch_size}; ORT entropy with {b.num_bins} "
        f"bins, {b.target_bins} quantized bins; calib x on [-m, m] in {b.num_bins} bins "
        "(its default layout); each case in a fresh process"
    )
    out(f"{'case':<7} {'wall s':>8} {'x plain':>8} {'peak RSS MB':>12} {'tensors':>8}")
    for r in b.results:
        if r.error is not None:
            out(f"{r.case:<7} failed: {r.error}")
            continue
        ratio = f"{r.wall_s / base:.1f}" if base else "-"
        tensors = "-" if r.tensors is None else str(r.tensors)
        if r.info.get("failed"):
            tensors += f" (+{r.info['failed']} failed)"
        out(f"{r.case:<7} {r.wall_s:>8.2f} {ratio:>8} {r.peak_rss_mb:>12.0f} {tensors:>8}")
    for r in b.results:
        if r.error is None:
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in r.info["parts"].items())
            out(f"  {r.case}: {parts}")

    a = b.agreement
    if a is not None:
        out(
            f"\nagreement, calib kl_sweep(hist, {b.target_bins}, 'onnxruntime') amax vs ORT "
            f"max(|lowest|, |highest|), in ORT's bin widths, over the {a.compared} tensors "
            f"both calibrate: same bin {a.same_bin}, within one bin {a.within_one_bin}"
        )
        failed_calib = [n for n in a.only_calib if n in b.ort_failed]
        other_calib = [n for n in a.only_calib if n not in b.ort_failed]
        out(
            f"  collected by calib only: {len(a.only_calib)} ({len(failed_calib)} that ORT "
            f"failed on){_names(other_calib)}"
        )
        out(f"  calibrated by ORT only: {len(a.only_ort)}{_names(a.only_ort)}")
        rows = a.rows[:worst]
        w = max([6, *(len(r.name) for r in rows)])
        out(f"  worst {len(rows)}:")
        out(
            f"  {'tensor':<{w}} {'calib amax':>11} {'ORT':>11} {'bins apart':>10} "
            f"{'ORT bin':>10} {'max|x|':>11}"
        )
        for r in rows:
            seen = b.calib_max_abs.get(r.name, math.nan)
            out(
                f"  {r.name:<{w}} {_g(r.calib_amax):>11} {_g(r.ort_threshold):>11} "
                f"{r.bins_apart:>10.1f} {_g(r.bin_width):>10} {_g(seen):>11}"
            )
    if b.ort_failed:
        out(f"\nORT failed on {len(b.ort_failed)} tensors (not counted):")
        for name, why in b.ort_failed.items():
            seen = b.calib_max_abs.get(name)
            calib = f" [calib max|x| {_g(seen)}]" if seen is not None else ""
            out(f"  {name}: {why[:100]}{calib}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m calib.dev.bench_collect", description=__doc__.split("\n")[0]
    )
    p.add_argument("model_dir", type=Path, help="a folder with model.onnx and inputs.npz")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--batches", type=int, default=None, help="only the first N batches")
    p.add_argument("--num-bins", type=int, default=DEFAULT_ORT_BINS, help="ORT's num_bins (signed)")
    p.add_argument("--target-bins", type=int, default=DEFAULT_TARGET_BINS)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, of " + str(CASES))
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    kw = dict(
        batch_size=ns.batch_size,
        batches=ns.batches,
        num_bins=ns.num_bins,
        target_bins=ns.target_bins,
    )
    if ns.child:
        result = run_case(ns.child, ns.model_dir, ns.work, **kw)
        print(_RESULT_TAG + json.dumps(result), flush=True)
        return 0
    try:
        b = run(
            ns.model_dir,
            cases=[c.strip() for c in ns.cases.split(",") if c.strip()],
            progress=lambda c: print(f"running {c} ...", file=sys.stderr, flush=True),
            **kw,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(b)
    return 1 if any(r.error for r in b.results) else 0


if __name__ == "__main__":
    sys.exit(main())
