"""Collect from a real model in the app's sandbox (its budget, nice 10), as the app does:

    PYTHONPATH=. python tests/server_model.py FOLDER INPUTS.npz

FOLDER holds model.onnx (all-MiniLM-L6-v2, EfficientNet-Lite0: see assets/). Prints the
time, the child's peak resident memory and the last progress line.
"""

import resource
import sys
import time
from pathlib import Path

from calib import sandbox

d = Path(sys.argv[1])
model = (d / "model.onnx").read_bytes()
inputs = (d / sys.argv[2]).read_bytes()
t0 = time.perf_counter()
last = []
try:
    found = sandbox.collect_upload(model, inputs, progress=last.append)
    what = f"{len(found.histograms)} histograms, {found.n_samples} samples"
except ValueError as exc:
    what = f"refused: {exc}"
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{d.name}: {dt:.1f} s, child peak {peak:.0f} MB; {what[:300]}; "
      f"last progress: {last[-1].text if last else None}")  # fmt: skip
