"""calib.dev.bench_evaluate (``python -m calib bench evaluate``) on a tiny generated model."""

import pytest

pytest.importorskip("onnxruntime")

from calib.dev.bench_evaluate import bench_model, main, measure
from calib.evaluate import load_model, select_tensors


@pytest.mark.slow
def test_the_bench_model_has_two_quantized_tensors_a_block():
    proto, _ = load_model(bench_model(3))
    assert select_tensors(proto).names == ("ln0", "act0", "ln1", "act1", "ln2", "act2")


@pytest.mark.slow
def test_measure_times_plain_inference_and_the_table():
    lines = []
    r = measure(blocks=2, samples=8, workers=(1,), out=lines.append)
    assert r.tensors == 4 and r.runs == 1 + 2 * 4  # the all-quantized run, then the table
    assert r.plain_s > 0 and r.by_workers[1] > 0 and r.speedup is None
    assert lines[0].startswith("plain (") and "5 inferences of 8 samples" in lines[0]


@pytest.mark.slow
def test_main_prints_the_ratio_and_the_speed_up(capsys):
    code = main(["--blocks", "2", "--samples", "8"])
    out = capsys.readouterr().out
    assert "sensitivity table of 4 tensors with 2 workers" in out and "1 -> 2 workers" in out
    assert code in (0, 1)  # a tiny model's table is dominated by starting the workers
