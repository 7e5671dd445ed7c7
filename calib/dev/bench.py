"""``python -m calib bench``: the vectorised sweep against the loops, timed in one run.

Each row times a loop reference (the seed's own loop, or a plain per-candidate loop
following an implementation's algorithm, see ``calib.reference``) and the sweep on the
same histogram, and prints both medians and their ratio. The targets are checked
against numbers measured in this run, never against constants from another machine.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from calib import reference
from calib.histogram import Histogram
from calib.sweep import kl_sweep

__all__ = ["BenchRow", "activation_histograms", "run_bench"]


@dataclasses.dataclass(frozen=True)
class BenchRow:
    name: str
    loop_s: float | None
    sweep_s: float
    same_answer: bool | None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.loop_s is None else self.loop_s / self.sweep_s


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _activations(rng: np.random.Generator, n: int) -> np.ndarray:
    """A ReLU-like activation: a spike of zeros, a half-normal body and a few outliers."""
    x = np.abs(rng.standard_normal(n))
    x[rng.random(n) < 0.3] = 0.0
    out = rng.random(n) < 2e-4
    x[out] *= rng.uniform(4, 12, out.sum())
    return x * np.where(rng.random(n) < 0.5, -1.0, 1.0)


def activation_histograms(bins: int, count: int = 1, seed: int = 0) -> list[Histogram]:
    """Seeded activation-like histograms of |x| (unsigned), for benchmarks and tests."""
    rng = np.random.default_rng(seed)
    return [Histogram.from_samples(_activations(rng, 200_000), bins) for _ in range(count)]


def _signed(bins: int, seed: int = 0) -> Histogram:
    rng = np.random.default_rng(seed)
    return Histogram.from_samples(_activations(rng, 200_000), bins, signed=True)


def _loops(h: Histogram, hs: Histogram, T: int) -> dict[str, Callable[[], float]]:
    """Each variant's loop reference, returning its amax."""
    c, e = h.counts, h.edges
    return {
        # the seed as published (T is a power of two here: its group edges never overshoot)
        "seed": lambda: float(e[0] + (reference.seed_as_published(c, T) + 0.5) * (e[1] - e[0])),
        "ncnn": lambda: reference.ncnn_loop(c, e, T).amax,
        # ModelOpt's levels are 2 ** (num_bits - 1): T = 128 is 8 bits
        "modelopt": lambda: reference.modelopt_loop(c, e, num_bits=T.bit_length()).amax,
        "mxnet": lambda: reference.mxnet_loop(hs.counts, hs.edges, T).amax,
        "onnxruntime": lambda: reference.onnxruntime_loop(hs.counts, hs.edges, T).amax,
    }


def run_bench(quick: bool = False, out: Callable[[str], None] = print) -> list[BenchRow]:
    """Time loops and sweeps, print a table, and return the rows.

    ``quick`` uses small histograms and one repeat (a smoke test, no targets).
    """
    rows: list[BenchRow] = []
    reps = 1 if quick else 15
    sizes = [(256, 32)] if quick else [(2048, 128), (8001, 255)]
    for n_bins, T in sizes:
        h = activation_histograms(n_bins)[0]
        hs = _signed(n_bins)
        loops = _loops(h, hs, T)
        for variant in ("seed", "ncnn", "modelopt", "mxnet", "onnxruntime"):
            hist = hs if variant in ("mxnet", "onnxruntime") else h
            kl_sweep(hist, T, variant)  # warm up
            sweep_s = _median_time(lambda v=variant, x=hist, t=T: kl_sweep(x, t, v), reps)
            amax = kl_sweep(hist, T, variant).amax
            loop_s = same = None
            # the unsigned loops cost O(N^2 T) in Python: minutes at 8001 bins
            if quick or n_bins <= 2048 or variant in ("mxnet", "onnxruntime"):
                t0 = time.perf_counter()
                loop_amax = loops[variant]()
                loop_s = time.perf_counter() - t0
                same = bool(np.isclose(loop_amax, amax, rtol=1e-9, atol=0))
            target, met = _target(variant, n_bins, sweep_s, loop_s, quick)
            rows.append(BenchRow(
                name=f"{variant} {n_bins}/{T}", loop_s=loop_s, sweep_s=sweep_s,
                same_answer=same, target=target, met=met,
            ))  # fmt: skip
    if not quick:
        hists = activation_histograms(2048, count=100, seed=1)
        t0 = time.perf_counter()
        for x in hists:
            kl_sweep(x)
        total = time.perf_counter() - t0
        rows.append(BenchRow(
            name="seed x100 tensors 2048/128", loop_s=None, sweep_s=total, same_answer=None,
            target="< 0.5 s", met=total < 0.5,
        ))  # fmt: skip
        rows.extend(_onnxruntime_itself(reps))
    rows.extend(_mse_rows(reps, quick))
    if not quick:
        rows.extend(_evaluate_rows())
        rows.extend(_app_rows())
    _print(rows, out)
    if not quick:
        out("")
        out(_cell_costs(next(r for r in rows if r.name == "seed 2048/128"), 2048, 128))
    return rows


def _mse_rows(reps: int, quick: bool) -> list[BenchRow]:
    """The MSE search (``calib.amax_mse``, linear in the bins) against the same search by
    ``calib.clip_metrics`` clip by clip (``reference.clip_mse_direct``, quadratic), on the
    same histogram in this run; and the search alone at ``MAX_BINS``, where the direct one
    would take minutes."""
    from calib.limits import MAX_BINS
    from calib.methods import MODELOPT_START_BIN, amax_mse

    rows = []
    sizes = [(256, True)] if quick else [(2048, True), (MAX_BINS, False)]
    for n_bins, with_loop in sizes:
        h = activation_histograms(n_bins)[0]
        amax_mse(h)  # warm up
        sweep_s = _median_time(lambda x=h: amax_mse(x), max(1, reps // 5))
        amax = amax_mse(h)
        loop_s = same = None
        if with_loop:
            candidates = h.edges[MODELOPT_START_BIN:]
            candidates = candidates[candidates > 0]
            t0 = time.perf_counter()
            direct = reference.clip_mse_direct(h, candidates)
            loop_s = time.perf_counter() - t0
            # the search takes the first clip within MSE_TIE_RTOL of the least error
            same = bool(np.isclose(float(candidates[np.argmin(direct)]), amax, rtol=1e-9))
        target = met = None
        if not quick:
            target = "< 20 ms" if n_bins == 2048 else "< 1 s"
            met = sweep_s < (20e-3 if n_bins == 2048 else 1.0)
        rows.append(BenchRow(
            name=f"mse {n_bins} bins / 8 bits", loop_s=loop_s, sweep_s=sweep_s,
            same_answer=same, target=target or "", met=met,
        ))  # fmt: skip
    return rows


def _numpy_ns_per_element(n: int = 8192, repeats: int = 200) -> dict[str, float]:
    """What one numpy pass costs here, per element, on arrays of the sweep's block size."""
    rng = np.random.default_rng(0)
    x, y = rng.random(n) + 0.5, rng.random(n) + 0.5
    table, idx, o = rng.random(2049), rng.integers(0, 2049, n), np.empty(n)
    passes = {
        "log": lambda: np.log(x, out=o),
        "gather": lambda: table[idx],
        "multiply": lambda: np.multiply(x, y, out=o),
    }
    costs = {}
    for name, fn in passes.items():
        best = min(_median_time(fn, repeats) for _ in range(3))
        costs[name] = best / n * 1e9
    return costs


def _cell_costs(seed_row: BenchRow, n_bins: int, T: int) -> str:
    """The seed sweep's cost per (candidate, level) cell, beside numpy's per-pass costs
    measured now, and the cost per cell that 1000x the seed's loop would allow."""
    cells = (n_bins - T) * T
    c = _numpy_ns_per_element()
    per_cell = seed_row.sweep_s / cells * 1e9
    line = (
        f"seed {n_bins}/{T}: {cells:,} (candidate, level) cells at {per_cell:.1f} ns each; "
        f"numpy here, per element: log {c['log']:.2f} ns, gather {c['gather']:.2f} ns, "
        f"multiply {c['multiply']:.2f} ns"
    )
    if seed_row.loop_s is not None:
        line += f". 1000x the seed's loop allows {seed_row.loop_s / 1000 / cells * 1e9:.1f} ns"
    return line


def _target(variant: str, n_bins: int, sweep_s: float, loop_s, quick: bool):
    if quick:
        return "", None
    if n_bins == 2048 and variant == "seed":
        ok = loop_s is not None and loop_s / sweep_s >= 1000 and sweep_s < 5e-3
        return ">= 1000x the seed's loop, < 5 ms", ok
    if n_bins == 2048 and variant in ("ncnn", "modelopt"):
        return "< 5 ms", sweep_s < 5e-3
    if n_bins == 2048:
        return "< 25 ms", sweep_s < 25e-3
    if variant in ("mxnet", "onnxruntime"):
        return "< 0.5 s", sweep_s < 0.5
    return "", None


def _onnxruntime_itself(reps: int) -> list[BenchRow]:
    """ONNX Runtime's own get_entropy_threshold on the same histogram, if installed."""
    try:
        from onnxruntime.quantization.calibrate import HistogramCollector
    except Exception:  # optional: the bench runs without it
        return []
    import contextlib
    import io

    hs = _signed(2048)
    coll = HistogramCollector("entropy", True, 2048, 128, 99.99, "same")
    e32 = hs.edges.astype(np.float32)
    hist = (hs.counts.astype(np.int64), e32, e32[0], e32[-1], e32[-1])
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        ort = coll.get_entropy_threshold(hist, 128)
        loop_s = time.perf_counter() - t0
    sweep_s = _median_time(lambda: kl_sweep(hs, 128, "onnxruntime"), reps)
    amax = kl_sweep(hs, 128, "onnxruntime").amax
    same = bool(np.isclose(float(ort[1]), amax, rtol=1e-6))
    return [
        BenchRow(
            name="onnxruntime package 2048/128", loop_s=loop_s, sweep_s=sweep_s, same_answer=same
        )
    ]


def _evaluate_rows() -> list[BenchRow]:
    """The sensitivity table of a 200-tensor model against plain inference, and the speed-up
    from 1 to 2 workers (``calib.dev.bench_evaluate``); none without onnxruntime."""
    try:
        from calib.dev.bench_evaluate import TARGET_RATIO, measure

        r = measure()
    except ImportError:
        return []
    ratio = r.ratio(2)
    return [
        BenchRow(
            name=f"evaluate {r.tensors} tensors, 2 workers", loop_s=r.plain_s,
            sweep_s=r.by_workers[2], same_answer=None,
            target=f"<= {TARGET_RATIO:g}x {r.tensors + 1} plain runs: {ratio:.2f}x "
            f"({r.cpu_by_workers[2] / r.plain_cpu_s:.2f}x in CPU time)",
            met=ratio <= TARGET_RATIO,
        ),
        BenchRow(
            name="evaluate 1 -> 2 workers", loop_s=r.by_workers[1], sweep_s=r.by_workers[2],
            same_answer=None, target=f"speed-up {r.speedup:.2f}x",
        ),
    ]  # fmt: skip


def _app_rows() -> list[BenchRow]:
    """The app's targets, measured by ``python -m calib.dev.bench_app`` in a fresh interpreter.

    A separate process, not an import: the core never loads the UI, and the pages' first
    run is timed as a fresh server would meet it. Without Streamlit the rows are left out.
    """
    done = subprocess.run(
        [sys.executable, "-m", "calib.dev.bench_app"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    if done.returncode != 0:
        return []  # streamlit missing or a page failed: the numerical bench still stands
    return [BenchRow(**row) for row in json.loads(done.stdout)]


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _print(rows: list[BenchRow], out: Callable[[str], None]) -> None:
    head = f"{'case':<30} {'loop':>11} {'sweep':>11} {'ratio':>9}  same  target"
    out(head)
    out("-" * len(head))
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:,.0f}x"
        same = "-" if r.same_answer is None else ("yes" if r.same_answer else "NO")
        met = "" if r.met is None else (" ok" if r.met else " MISSED")
        out(f"{r.name:<30} {_fmt_s(r.loop_s):>11} {_fmt_s(r.sweep_s):>11} {ratio:>9}  "
            f"{same:<4}  {r.target}{met}")  # fmt: skip
