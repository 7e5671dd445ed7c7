"""calib.dev.bench (``python -m calib bench``): every variant timed against its loop, and the
per-cell cost line that explains the seed's ratio."""

import pytest

import calib
from calib.dev.bench import BenchRow, _cell_costs, run_bench


@pytest.mark.slow
def test_bench_quick_runs_every_variant_and_agrees_with_the_loops():
    lines = []
    rows = run_bench(quick=True, out=lines.append)
    assert {r.name.split()[0] for r in rows} == {*calib.VARIANTS, "mse"}
    assert all(r.same_answer for r in rows)
    assert all(r.loop_s > 0 and r.sweep_s > 0 for r in rows)
    assert lines[0].startswith("case")


def test_bench_reports_the_seed_sweeps_cost_per_cell_and_what_1000x_allows():
    # 1920 candidates x 128 levels = 245,760 cells: 2.4576 ms is 10 ns a cell, and a loop
    # of 4.9152 s over 1000 (the 1000x target) is 20 ns a cell
    row = BenchRow("seed 2048/128", loop_s=4.9152, sweep_s=2.4576e-3, same_answer=True)
    line = _cell_costs(row, 2048, 128)
    assert "245,760 (candidate, level) cells at 10.0 ns each" in line
    assert line.endswith("1000x the seed's loop allows 20.0 ns")
    for name in ("log", "gather", "multiply"):
        cost = float(line.split(f"{name} ")[1].split(" ns")[0])
        assert 0 < cost < 100
