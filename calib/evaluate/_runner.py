"""Runs of the switched model over the evaluation set: in this process, over a local process
pool, or on a Dask cluster, with the same arithmetic everywhere.

Pickle: the process pool (``spawn``) and Dask move the project's own objects between the
project's own processes by pickling them: the model's bytes, the evaluation arrays, the
clips and the run descriptions going out, :class:`RunResult` records coming back. Nothing
a user uploads is ever unpickled: uploads are read with ``np.load(allow_pickle=False)`` and
``onnx`` before any of this starts. A Dask cluster must be one the user trusts as much as
this machine (its workers unpickle what the client sends, as every Dask client's do).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

from calib.evaluate._graph import TensorSwitch, clip_feeds, require_onnx
from calib.evaluate._metrics import ErrorAccumulator, RunResult

DASK_HINT = 'pip install "dask[distributed]"'
CONNECT_TIMEOUT_S = 20
"""Seconds to wait for a Dask scheduler before saying it cannot be reached."""
MAX_DEFAULT_WORKERS = 4
"""Default workers: the CPU count, at most this (each holds a session of the model)."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One pass over the evaluation set.

    Attributes
    ----------
    calibration : int
        Row of :attr:`Payload.amax` (the clips) to quantize with.
    on : tuple of bool
        Per quantized tensor: quantize it in this run.
    weights : bool
        Use the int8 weights (a model built with weights quantized).
    """

    calibration: int
    on: tuple[bool, ...]
    weights: bool = False


@dataclasses.dataclass(frozen=True)
class Payload:
    """Everything a worker needs to answer :class:`Run` s (sent once per worker)."""

    model: bytes  # the switched model, serialised
    switches: tuple[TensorSwitch, ...]
    weights_on: str | None
    outputs: tuple[str, ...]
    num_bits: int
    batches: tuple[dict[str, np.ndarray], ...]
    amax: np.ndarray  # (calibrations, tensors), nan: not quantized by that calibration


class Evaluator:
    """One single-threaded onnxruntime session of the switched model, and the float
    outputs of every batch (every switch off), computed once.

    One intra-op thread, sequential execution: a run's numbers then do not depend on how
    the runs are spread over processes or machines (parallelism is across runs).
    """

    def __init__(self, payload: Payload) -> None:
        _, ort = require_onnx()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                payload.model, opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception classes
            raise ValueError(f"model: onnxruntime cannot load the quantized copy: {exc}") from None
        self.payload = payload
        n = len(payload.switches)
        self.reference = [self._outputs(b, self._switches(0, (False,) * n, False), k)
                          for k, b in enumerate(payload.batches)]  # fmt: skip

    def _switches(self, calibration: int, on: Sequence[bool], weights: bool) -> dict:
        p = self.payload
        if p.amax.shape[0] == 0:
            amax = np.ones(len(p.switches))
        else:
            amax = p.amax[calibration]
        feeds = clip_feeds(p.switches, p.num_bits, amax, on)
        if p.weights_on is not None:
            feeds[p.weights_on] = np.array(bool(weights))
        return feeds

    def _outputs(self, batch: dict, switches: dict, k: int) -> list[np.ndarray]:
        try:
            return self.session.run(list(self.payload.outputs), {**batch, **switches})
        except Exception as exc:
            raise ValueError(f"onnxruntime failed on evaluation batch {k}: {exc}") from None

    def run(self, run: Run) -> RunResult:
        switches = self._switches(run.calibration, run.on, run.weights)
        accs = [ErrorAccumulator(o) for o in self.payload.outputs]
        for k, (batch, ref) in enumerate(zip(self.payload.batches, self.reference, strict=True)):
            for acc, y, y_q in zip(accs, ref, self._outputs(batch, switches, k), strict=True):
                acc.add(y, y_q)
        return RunResult(tuple(a.result() for a in accs))


# -- workers: a process pool's initializer, and Dask's per-worker cache ------------------------
_WORKER: dict[str, Evaluator] = {}
_LOCK = threading.Lock()


def _init_worker(payload: Payload) -> None:
    _WORKER["local"] = Evaluator(payload)


def _run_local(run: Run) -> RunResult:
    return _WORKER["local"].run(run)


def _run_dask(payload: Payload, token: str, runs: list[Run]) -> list[RunResult]:
    with _LOCK:  # a worker's threads share one session per evaluation
        if token not in _WORKER:
            _WORKER[token] = Evaluator(payload)
        ev = _WORKER[token]
    return [ev.run(r) for r in runs]


def _forget(token: str) -> None:
    with _LOCK:
        _WORKER.pop(token, None)


def check_workers(workers: Any) -> int:
    """``workers`` as a positive int; None: the CPU count, at most 4."""
    if workers is None:
        return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


Progress = Callable[[int, int], Any]


class Runner:
    """Answers lists of :class:`Run` s; a context manager that owns its workers.

    Parameters
    ----------
    payload : Payload
    workers : int, optional
        Local processes (``spawn``); 1 runs in this process. Default: the CPU count, at
        most :data:`MAX_DEFAULT_WORKERS`. Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        A Dask scheduler's address (``"tcp://host:8786"``) or a connected client: the runs
        go to its workers instead.
    """

    def __init__(self, payload: Payload, workers: Any = None, scheduler: Any = None) -> None:
        self.payload = payload
        self._pool: ProcessPoolExecutor | None = None
        self._local: Evaluator | None = None
        self._client: Any = None
        self._own_client = False
        self._token = ""
        self._remote: Any = None
        if scheduler is not None:
            self._start_dask(scheduler)
            return
        self.workers = check_workers(workers)
        if self.workers == 1:
            self._local = Evaluator(payload)
            self.backend = "1 process"
        else:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(payload,)
            )
            self.backend = f"{self.workers} local processes"

    def _start_dask(self, scheduler: Any) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise ImportError(f"a Dask scheduler needs dask.distributed: {DASK_HINT}") from exc
        if isinstance(scheduler, Client):
            self._client = scheduler
        elif isinstance(scheduler, str) and scheduler:
            try:
                self._client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ValueError(
                    f"scheduler: cannot reach a Dask scheduler at {scheduler!r} ({exc})"
                ) from None
            self._own_client = True
        else:
            raise ValueError(
                f"scheduler must be an address or a distributed.Client, got {scheduler!r}"
            )
        n = len(self._client.scheduler_info().get("workers", {}))
        if n == 0:
            self.close()
            raise ValueError(f"scheduler: {scheduler!r} has no workers")
        self.workers = n
        self._token = uuid.uuid4().hex
        [self._remote] = self._client.scatter([self.payload], broadcast=True)
        address = getattr(self._client.scheduler, "address", str(scheduler))
        self.backend = f"dask at {address} ({n} workers)"

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._client is not None:
            try:
                if self._token:
                    self._client.run(_forget, self._token)
            except Exception:  # a cluster already gone has nothing to forget
                pass
            if self._own_client:
                self._client.close()
            self._client = None

    def run(self, runs: Sequence[Run], progress: Progress | None = None) -> list[RunResult]:
        """The results of ``runs``, in order; ``progress(done, total)`` after each."""
        runs = list(runs)
        total = len(runs)
        out: list[RunResult | None] = [None] * total
        done = 0

        def tick() -> None:
            if progress is not None:
                progress(done, total)

        if self._local is not None:
            for i, r in enumerate(runs):
                out[i] = self._local.run(r)
                done += 1
                tick()
        elif self._pool is not None:
            futures = {self._pool.submit(_run_local, r): i for i, r in enumerate(runs)}
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                done += 1
                tick()
        else:
            from distributed import as_completed as dask_completed

            size = max(1, math.ceil(total / (4 * self.workers)))
            chunks = [list(range(s, min(s + size, total))) for s in range(0, total, size)]
            futures = {
                self._client.submit(
                    _run_dask, self._remote, self._token, [runs[i] for i in chunk], pure=False
                ): chunk
                for chunk in chunks
            }
            for f in dask_completed(futures):
                for i, res in zip(futures[f], f.result(), strict=True):
                    out[i] = res
                done += len(futures[f])
                tick()
        return [r for r in out if r is not None]
