"""``python -m calib bench evaluate``: the whole sensitivity table against plain inference.

A generated model of ``blocks`` residual blocks, each ``x + MatMul(Relu(MatMul(LN(x), W1)),
W2)`` (LayerNormalization, then 64 -> 128 -> 64 wide), has ``2 * blocks`` tensors to
quantize (each block's two MatMul inputs): 200 by default. On the same evaluation set
(64 samples of 16 x 64, in batches of 32), one run measures:

``plain``
    ``tensors + 1`` inferences of the evaluation set by the float model, in one
    onnxruntime session (all graph optimisations; the faster, measured first, of its
    default threads and one thread): what a table of one run per tensor, plus the float
    run, would cost at the least.
``sensitivity, N workers``
    :func:`calib.evaluate.evaluate` with one calibration (clips at 4, all tensors), its
    sensitivity (only-this and all-but-this for every tensor: ``2 * tensors`` runs, plus
    the all-quantized run and each worker's float run), no keep-in-float search; the wall
    time of the whole call, starting its workers included. With 1 and with 2 workers.

The target (issue 12): the sensitivity table in at most 3x the time of ``plain``, with the
default workers. The speed-up from 1 to 2 workers is printed beside it. Both come from
this run, on this machine, never from constants.

numpy and the standard library at import; onnx and onnxruntime are imported when it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["EvaluateBench", "bench_model", "main", "measure"]

TARGET_RATIO = 3.0
WIDTH, HIDDEN, TOKENS = 64, 128, 16


def bench_model(blocks: int, seed: int = 0) -> bytes:
    """The generated residual MLP (see the module docstring), serialised."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT
    nodes, inits = [], []
    inits += [
        numpy_helper.from_array(np.ones(WIDTH, np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(WIDTH, np.float32), "beta"),
    ]
    x = "x"
    for b in range(blocks):
        w1 = rng.normal(0, WIDTH**-0.5, (WIDTH, HIDDEN)).astype(np.float32)
        w2 = rng.normal(0, HIDDEN**-0.5 / 4, (HIDDEN, WIDTH)).astype(np.float32)
        inits += [numpy_helper.from_array(w1, f"w1_{b}"), numpy_helper.from_array(w2, f"w2_{b}")]
        nodes += [
            helper.make_node("LayerNormalization", [x, "gamma", "beta"], [f"ln{b}"], axis=-1),
            helper.make_node("MatMul", [f"ln{b}", f"w1_{b}"], [f"up{b}"]),
            helper.make_node("Relu", [f"up{b}"], [f"act{b}"]),
            helper.make_node("MatMul", [f"act{b}", f"w2_{b}"], [f"down{b}"]),
            helper.make_node("Add", [x, f"down{b}"], [f"res{b}"]),
        ]
        x = f"res{b}"
    graph = helper.make_graph(
        nodes,
        "bench",
        [helper.make_tensor_value_info("x", f, ["N", TOKENS, WIDTH])],
        [helper.make_tensor_value_info(x, f, ["N", TOKENS, WIDTH])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@dataclasses.dataclass(frozen=True)
class EvaluateBench:
    """One run of the bench: seconds for each case, and what they were."""

    tensors: int
    samples: int
    plain_s: float  # tensors + 1 plain inferences of the evaluation set
    by_workers: dict[int, float]  # workers -> the sensitivity table's wall time
    runs: int  # runs of the switched model per table

    @property
    def speedup(self) -> float | None:
        if 1 in self.by_workers and 2 in self.by_workers:
            return self.by_workers[1] / self.by_workers[2]
        return None

    def ratio(self, workers: int) -> float:
        return self.by_workers[workers] / self.plain_s


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(
    blocks: int = 100,
    samples: int = 64,
    workers: Sequence[int] = (1, 2),
    out: Callable[[str], Any] | None = None,
) -> EvaluateBench:
    """Time ``plain`` and the sensitivity table (module docstring) on one generated model."""
    import onnxruntime as ort

    from calib.evaluate import DEFAULT_OP_TYPES, evaluate

    model = bench_model(blocks)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(samples, TOKENS, WIDTH)).astype(np.float32)
    batches = [{"x": x[s : s + 32]} for s in range(0, samples, 32)]
    tensors = 2 * blocks
    amax = {f"ln{b}": 4.0 for b in range(blocks)} | {f"act{b}": 4.0 for b in range(blocks)}

    # the faster of onnxruntime's default threads and one thread: on a busy machine its
    # default threads can spin against other work and lose to one
    sessions = {}
    for threads in (0, 1):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        sessions[threads] = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def one_pass(session: Any) -> None:
        for b in batches:
            session.run(None, b)

    pace = {}
    for threads, session in sessions.items():
        one_pass(session)  # warm up
        pace[threads] = min(_timed(lambda s=session: one_pass(s)) for _ in range(3))
    threads = min(pace, key=pace.get)
    plain_s = _timed(lambda: [one_pass(sessions[threads]) for _ in range(tensors + 1)])
    if out:
        how = "default threads" if threads == 0 else "1 thread"
        out(f"plain ({how}, the faster here): {tensors + 1} inferences of {samples} samples "
            f"in {plain_s:.2f} s")  # fmt: skip

    by_workers = {}
    runs = 0
    for w in workers:
        t0 = time.perf_counter()
        ev = evaluate(model, batches, amax={"clip 4": amax}, op_types=DEFAULT_OP_TYPES,
                      workers=w, max_float=0)  # fmt: skip
        by_workers[w] = time.perf_counter() - t0
        runs = ev.runs
        if out:
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in ev.seconds.items())
            out(f"sensitivity, {w} worker(s): {ev.runs} runs in {by_workers[w]:.2f} s ({parts})")
    return EvaluateBench(tensors, samples, plain_s, by_workers, runs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m calib bench evaluate", description=__doc__)
    p.add_argument("--blocks", type=int, default=100, help="residual blocks (2 tensors each)")
    p.add_argument("--samples", type=int, default=64)
    ns = p.parse_args(argv)
    r = measure(ns.blocks, ns.samples, out=print)
    ok = r.ratio(2) <= TARGET_RATIO
    print(
        f"sensitivity table of {r.tensors} tensors with 2 workers: {r.ratio(2):.2f}x the time "
        f"of {r.tensors + 1} plain inferences (target <= {TARGET_RATIO:g}x: "
        f"{'met' if ok else 'MISSED'}); 1 -> 2 workers: {r.speedup:.2f}x faster"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
