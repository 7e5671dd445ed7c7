"""Run an uploaded ONNX model in a child process, under a wall-clock and a memory budget.

An uploaded model is a program: a 271-byte model can loop 10**15 times, a 178-byte one
can expand to an 800 MB tensor. The app therefore never runs one in its own process. The
collection (and the Effect page's evaluation) runs in a fresh interpreter,

    python -c <bootstrap> <workdir> <bytes> <cpu seconds>

whose first statements set ``RLIMIT_AS`` (address space: ``budget.bytes``), ``RLIMIT_CPU``
(a backstop should this process die and leave it running) and ``RLIMIT_FSIZE`` (no file
it writes grows past ``MAX_FILE_BYTES``), before numpy or onnxruntime is imported. This
process waits at most ``budget.seconds`` of wall-clock time, then kills the child's
process group (the child and anything it started). Past either budget the call raises
:class:`BudgetExceeded`, a ``ValueError`` that says which budget, its value and the
environment variable that changes it (:func:`calib.limits.app_collect_budget`), so a page
shows it with ``st.error`` and stays usable.

Nothing is pickled across the boundary. The uploads go in as files; the child writes its
result as the project's own formats, read back with the project's readers: histograms as
the ``.npz`` of :func:`calib.save_histograms` (:func:`calib.load_histograms`, bounded, no
pickle), an evaluation as the JSON of ``Evaluation.to_dict`` (``evaluate.read_report``);
an error as a small JSON object; progress as one JSON object per line on its stdout.

The command line and the Python API run a user's own model in-process without limits
(``calib.collect.collect_histograms``, ``calib.evaluate.evaluate``).
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import io
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from calib import limits
from calib.limits import CollectBudget

__all__ = ["BudgetExceeded", "SandboxProgress", "collect_upload", "evaluate_upload", "running"]

_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds the calib package
_LINE_BYTES = 1 << 16  # the longest progress line read; longer ones are dropped
_ERROR_BYTES = 1 << 16

_BOOTSTRAP = """\
import resource, sys
workdir, space, cpu, fsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for name, soft, hard in (("RLIMIT_AS", space, space), ("RLIMIT_CPU", cpu, cpu + 5),
                         ("RLIMIT_FSIZE", fsize, fsize)):
    res = getattr(resource, name)
    top = resource.getrlimit(res)[1]
    cap = lambda v: v if top == resource.RLIM_INFINITY else min(v, top)
    resource.setrlimit(res, (cap(soft), cap(hard)))
import os
os.nice(10)  # below the server: other visitors' pages stay responsive
from calib.sandbox import _child, _orphan_guard
_orphan_guard(int(sys.argv[5]))
sys.exit(_child(workdir))
"""


class BudgetExceeded(ValueError):
    """A sandboxed run went past its time or memory budget and was stopped."""


@dataclasses.dataclass(frozen=True)
class SandboxProgress:
    """What the child reported last: its ``stage`` ("collect", or the evaluation's), a
    ``fraction`` done (0..1, None when unknown) and a line of ``text``."""

    stage: str
    fraction: float | None
    text: str


Progress = Callable[[SandboxProgress], Any]
Cancel = Callable[[], Any]
"""Called while a child runs; raises to end the run (the child is killed), e.g. the app's
check for Streamlit's rerun and stop requests (``calib.app.jobs``)."""


# -- the parent ---------------------------------------------------------------------------------
def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def _run(
    task: str,
    files: Mapping[str, bytes],
    options: Mapping[str, Any],
    outputs: tuple[str, ...],
    budget: CollectBudget | None,
    progress: Progress | None,
    what: str,
    cancel: Cancel | None = None,
) -> dict[str, bytes]:
    """Run ``task`` in a budgeted child; its ``outputs`` files as bytes, or an error.

    The child never outlives this call: however it is left (its result, an error, an
    exception ``progress`` or ``cancel`` raises, such as Streamlit's rerun or stop), the
    ``finally`` kills the child's process group. At most ``MAX_APP_MODEL_RUNS`` children run
    at once in this process; a call past that waits its turn (``progress`` says so)."""
    budget = limits.app_collect_budget() if budget is None else budget
    workdir = Path(tempfile.mkdtemp(prefix="calib-sandbox-"))
    proc: subprocess.Popen | None = None
    slot = False
    try:
        for name, data in files.items():
            (workdir / name).write_bytes(data)
        (workdir / "task.json").write_text(json.dumps({"task": task, "options": dict(options)}))
        cpu = math.ceil(budget.seconds * max(1, os.cpu_count() or 1)) + 30
        fsize = limits.MAX_FILE_BYTES + (1 << 20)
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        argv = [sys.executable, "-c", _BOOTSTRAP, str(workdir), str(budget.bytes), str(cpu),
                str(fsize), str(os.getpid())]  # fmt: skip
        slot = _take_slot(progress, cancel)
        with open(workdir / "stderr.txt", "wb") as err:
            with _LIVE_LOCK:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env,
                    cwd=workdir, start_new_session=True,  # its own group: killed as one
                )  # fmt: skip
                _LIVE.add(proc)
            timed_out = _wait(proc, time.monotonic() + budget.seconds, progress, cancel)
        if timed_out:
            raise BudgetExceeded(
                f"{what} was stopped after {budget.seconds:g} s, its time budget "
                "(APP_COLLECT_SECONDS; the environment variable CALIB_APP_COLLECT_SECONDS "
                "changes it). A model that loops, or inputs too many for the budget"
            )
        if proc.returncode != 0:
            raise _failure(proc.returncode, workdir, budget, what)
        out = {}
        for name in outputs:
            path = workdir / name
            if not path.is_file() or path.stat().st_size > limits.MAX_FILE_BYTES:
                raise ValueError(f"{what}: the child process wrote no readable {name}")
            out[name] = path.read_bytes()
        return out
    finally:
        if proc is not None:
            if proc.poll() is None:  # left early: a rerun, a stop, an error
                _kill(proc)
            with _LIVE_LOCK:
                _LIVE.discard(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        if slot:
            _SLOTS.release()
        shutil.rmtree(workdir, ignore_errors=True)


# -- children alive, and the server-wide cap on them ----------------------------------------------
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()
_SLOTS = threading.BoundedSemaphore(limits.MAX_APP_MODEL_RUNS)
_POLL_S = 0.5  # how often a wait checks ``cancel`` (and the queue), in seconds


def _take_slot(progress: Progress | None, cancel: Cancel | None) -> bool:
    """Wait for one of the ``MAX_APP_MODEL_RUNS`` slots (queue, in arrival order of the
    semaphore), saying so through ``progress`` and checking ``cancel`` while waiting."""
    said = False
    while not _SLOTS.acquire(timeout=_POLL_S if said else 0):
        if not said and progress is not None:
            progress(SandboxProgress(
                "queued", None,
                f"Queued: {limits.MAX_APP_MODEL_RUNS} uploaded models are running on this "
                "server (MAX_APP_MODEL_RUNS); this one starts when one of them ends",
            ))  # fmt: skip
        said = True
        if cancel is not None:
            cancel()
    return True


def running() -> list[int]:
    """The process ids of the children running now (tests and the exit hook read it)."""
    with _LIVE_LOCK:
        return [p.pid for p in _LIVE if p.poll() is None]


@atexit.register
def _kill_all() -> None:
    """At interpreter exit (the server stopping), kill every child still running: the
    script threads that wait on them are daemons and their ``finally`` never runs."""
    with _LIVE_LOCK:
        live = [p for p in _LIVE if p.poll() is None]
    for proc in live:
        _kill(proc)


def _wait(
    proc: subprocess.Popen, deadline: float, progress: Progress | None, cancel: Cancel | None
) -> bool:
    """Relay the child's progress lines until it exits; kill its group at ``deadline``.
    ``cancel`` is called at least every half second and may raise to end the wait (the
    caller's ``finally`` kills the child). True when it was killed for time."""
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(proc)
                return True
            if cancel is not None:
                cancel()
            if not sel.select(timeout=min(left, _POLL_S)):
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:  # the child closed its stdout: it is exiting
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > _LINE_BYTES:
                pending = b""
            for line in lines:
                _relay(line, progress)
        while True:  # stdout closed; the child is exiting (or closed it and loops on)
            left = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(min(left, _POLL_S), 0.0))
                return False
            except subprocess.TimeoutExpired:
                if left <= _POLL_S:
                    _kill(proc)
                    return True
            if cancel is not None:
                cancel()
    finally:
        sel.close()


def _relay(line: bytes, progress: Progress | None) -> None:
    if progress is None or len(line) > _LINE_BYTES:
        return
    try:
        doc = json.loads(line)
        p = SandboxProgress(str(doc["stage"]), doc.get("fraction"), str(doc.get("text", "")))
    except (ValueError, KeyError, TypeError):
        return  # not a progress line (a library printing to stdout)
    if p.fraction is not None and not (isinstance(p.fraction, (int, float)) and
                                       0 <= p.fraction <= 1):  # fmt: skip
        p = dataclasses.replace(p, fraction=None)
    progress(p)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child's process group (the child and what it started), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    proc.wait()


def _failure(code: int, workdir: Path, budget: CollectBudget, what: str) -> ValueError:
    """The error a child's exit stands for: its own message, or the budget it ran into."""
    memory = (
        f"its memory budget, {_gib(budget.bytes)} of address space (APP_COLLECT_BYTES; the "
        "environment variable CALIB_APP_COLLECT_BYTES changes it)"
    )
    path = workdir / "error.json"
    if path.is_file() and path.stat().st_size <= _ERROR_BYTES:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            kind, message = str(doc["kind"]), str(doc["message"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            kind, message = "", ""
        if kind == "memory":
            return BudgetExceeded(f"{what} ran out of {memory} ({message})")
        if kind == "import":
            return ImportError(message)
        if message:
            return ValueError(message)
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        if -code == signal.SIGXCPU:
            return BudgetExceeded(f"{what} used up its CPU time budget and was stopped")
        return BudgetExceeded(f"{what} was stopped by {sig}, most likely for going past {memory}")
    tail = _stderr_tail(workdir)
    if any(s in tail.lower() for s in (*_OUT_OF_MEMORY, "memoryerror")):
        return BudgetExceeded(f"{what} ran out of {memory} before it could start")
    last = tail.strip().splitlines()[-1] if tail.strip() else "no message"
    return ValueError(f"{what} failed (exit status {code}): {last[:500]}")


def _stderr_tail(workdir: Path, n: int = 4096) -> str:
    """The end of the child's stderr (a traceback, if it died before writing error.json)."""
    path = workdir / "stderr.txt"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def collect_upload(
    model: bytes,
    inputs: bytes,
    *,
    bins: int | None = None,
    budget: CollectBudget | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Any:
    """:func:`calib.collect.collect_histograms` of an uploaded model on uploaded inputs
    (an ``.npz``, widened at most ``MAX_UNPACKED_BYTES``), in a child process under
    ``budget`` (default :func:`calib.limits.app_collect_budget`); ``cancel`` is called
    while it runs and may raise to stop it (the child is killed either way). Returns a
    :class:`calib.collect.Collection`; raises :class:`BudgetExceeded` past the budget and
    ``ValueError`` (``ImportError``) for what the collector refuses."""
    from calib.collect import Collection
    from calib.io import load_histograms

    options = {} if bins is None else {"bins": bins}
    files = {"model.onnx": model, "inputs.npz": inputs}
    out = _run(
        "collect", files, options, ("histograms.npz", "meta.json"), budget, progress,
        "the model", cancel,
    )  # fmt: skip
    hists = load_histograms(io.BytesIO(out["histograms.npz"]))
    # the metadata as its own JSON document (a real model's aliases and not-activations run
    # past what a histogram file's reader takes as one string, MAX_NAME_CHARS)
    if len(out["meta.json"]) > limits.MAX_TEXT_BYTES:
        raise ValueError("the model: the child process wrote no readable meta.json")
    try:
        meta = json.loads(out["meta.json"].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the model: the child process wrote no readable meta.json") from None
    meta = meta if isinstance(meta, dict) else {}

    def names(key: str) -> dict[str, str]:
        value = meta.get(key, {})
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    return Collection(
        histograms=hists, not_activations=names("not_activations"), aliases=names("aliases"),
        n_samples=int(meta.get("n_samples", 0)), n_batches=int(meta.get("batches", 0)),
    )  # fmt: skip


def evaluate_upload(
    model: bytes,
    inputs: bytes,
    eval_inputs: bytes | None,
    *,
    options: Mapping[str, Any],
    budget: CollectBudget | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Effect page's evaluation of an uploaded model, in a child process under
    ``budget``: histograms collected on ``inputs`` (or their first share, the rest held
    out when ``eval_inputs`` is None), then ``calib.evaluate.evaluate``. ``options``:
    ``target_sqnr_db``, ``weights``, ``max_float``, ``max_tensors``, ``workers``. Returns
    the report as ``calib.evaluate.read_report`` reads it, and the histograms it was
    calibrated from (name -> :class:`calib.Histogram`), which Explore can open."""
    from calib import evaluate
    from calib.io import load_histograms

    files = {"model.onnx": model, "inputs.npz": inputs}
    if eval_inputs is not None:
        files["eval.npz"] = eval_inputs
    out = _run(
        "evaluate", files, options, ("report.json", "histograms.npz"), budget, progress,
        "the model", cancel,
    )  # fmt: skip
    hists = load_histograms(io.BytesIO(out["histograms.npz"]))
    return evaluate.read_report(out["report.json"]), dict(hists)


# -- the child ----------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _orphan_guard(parent: int) -> None:
    """Die with the server: on Linux the kernel sends SIGKILL when the thread that started
    this child exits (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and as a second line, a
    daemon thread exits the child once its parent is no longer ``parent``."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the guard was set
        os._exit(4)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(4)

    threading.Thread(target=watch, name="calib-orphan-guard", daemon=True).start()


def _say(stage: str, fraction: float | None, text: str) -> None:
    print(json.dumps({"stage": stage, "fraction": fraction, "text": text}), flush=True)


def _collect_progress(p) -> None:
    total = p.total_samples
    _say("collect", p.samples / total if total else None,
         f"Collecting {p.tensors} tensors: {p.samples} of {total or '?'} samples")  # fmt: skip


_UPLOADED = {"inputs.npz": "the calibration inputs", "eval.npz": "the evaluation inputs"}


def _uploaded_inputs(workdir: Path, name: str) -> Any:
    """An uploaded inputs file, read under the app's bound; an error names the upload as the
    user knows it ("the calibration inputs"), not the child's copy of it ('inputs.npz')."""
    from calib.io.inputs import load_inputs

    try:
        return load_inputs(workdir / name, max_bytes=limits.MAX_UNPACKED_BYTES)
    except ValueError as exc:
        text = str(exc)
        for shown in (repr(str(workdir / name)), repr(name)):  # the child's path, or its name
            text = text.replace(shown, _UPLOADED[name])
        raise ValueError(text) from None


def _collect_task(workdir: Path, options: dict) -> None:
    from calib import collect
    from calib.io import save_histograms

    inputs = _uploaded_inputs(workdir, "inputs.npz")
    kwargs = {"bins": int(options["bins"])} if "bins" in options else {}
    found = collect.collect_histograms(
        (workdir / "model.onnx").read_bytes(), inputs, progress=_collect_progress, **kwargs
    )
    meta = collect.collect_meta(
        "upload.onnx", found.n_samples, batches=found.n_batches, aliases=found.aliases,
        not_activations=found.not_activations,
    )  # fmt: skip
    save_histograms(workdir / "histograms.npz", found.histograms)
    (workdir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def _evaluate_task(workdir: Path, options: dict) -> None:
    from calib import collect, evaluate
    from calib.io import save_histograms

    proto, _ = evaluate.load_model((workdir / "model.onnx").read_bytes())
    names = evaluate.select_tensors(proto).names
    most = int(options.get("max_tensors", limits.MAX_LAYERS))
    if len(names) > most:
        raise ValueError(
            f"the model has {len(names)} tensors to quantize; the app evaluates at most "
            f"{most} (use python -m calib evaluate)"
        )
    inputs = _uploaded_inputs(workdir, "inputs.npz")
    if (workdir / "eval.npz").is_file():
        calib_inputs = inputs
        eval_inputs = _uploaded_inputs(workdir, "eval.npz")
        data = "the uploaded evaluation inputs"
    else:
        held = evaluate.hold_out(inputs)
        calib_inputs, eval_inputs, data = held.calibration, held.evaluation, held.description
    hists = collect.collect_histograms(  # what evaluate quantizes: the same selection
        proto, calib_inputs, op_types=evaluate.DEFAULT_OP_TYPES, progress=_collect_progress
    )

    def progress(p) -> None:
        _say(p.stage, min(p.done / max(p.total, 1), 1.0),
             f"{p.stage}: run {p.done} of {p.total}, {p.elapsed_s:.0f} s")  # fmt: skip

    ev = evaluate.evaluate(
        proto, eval_inputs, histograms=hists, weights=bool(options.get("weights", False)),
        target_sqnr_db=float(options["target_sqnr_db"]),
        max_float=int(options["max_float"]), workers=int(options.get("workers", 1)),
        progress=progress, data=data, sensitivity_of=str(options.get("sensitivity_of", "best")),
    )  # fmt: skip
    report = json.dumps(ev.to_dict(), allow_nan=False)
    (workdir / "report.json").write_text(report, encoding="utf-8")
    save_histograms(workdir / "histograms.npz", hists)


_TASKS = {"collect": _collect_task, "evaluate": _evaluate_task}
_OUT_OF_MEMORY = (
    "bad_alloc", "failed to allocate", "out of memory", "cannot allocate", "failed to map segment",
)  # fmt: skip


def _child(workdir: str) -> int:
    """The child's main: run the task in ``workdir``; 0 done, 2 refused, 3 out of memory."""
    d = Path(workdir)
    try:
        spec = json.loads((d / "task.json").read_text(encoding="utf-8"))
        _TASKS[spec["task"]](d, spec["options"])
    except MemoryError:
        return _error(d, "memory", "a MemoryError", 3)
    except ImportError as exc:  # a library that cannot be mapped within the budget is memory
        if any(s in str(exc).lower() for s in _OUT_OF_MEMORY):
            return _error(d, "memory", str(exc)[:2000], 3)
        return _error(d, "import", str(exc), 2)
    except Exception as exc:  # the task's ValueError, or anything a model can provoke
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        if any(s in message.lower() for s in _OUT_OF_MEMORY):
            return _error(d, "memory", message[:2000], 3)
        return _error(d, "error", message[:8000], 2)
    return 0


def _error(d: Path, kind: str, message: str, code: int) -> int:
    try:
        (d / "error.json").write_text(json.dumps({"kind": kind, "message": message}))
    except Exception:  # out of memory or disk even for this: the exit status says enough
        pass
    return code
