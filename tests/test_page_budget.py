"""The work one page view may start has a total bound (issue 21): the Layers table past
``MAX_PAGE_CELLS`` is refused before any tensor is calibrated, with what to do; Compare
merges a histogram past ``MAX_COMPARE_BINS`` down and says so."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import calib
from calib import limits
from calib.numbers import plural

ROOT = Path(__file__).resolve().parents[1]


def _npz(hists) -> bytes:
    buf = io.BytesIO()
    calib.save_histograms(buf, hists)
    return buf.getvalue()


def test_page_cells_bounds_each_methods_search():
    """The estimate is an upper bound of the cells the searches count themselves."""
    assert limits.page_cells([2048, 4096], "entropy", 128) == (2048 + 4096) * 129
    assert limits.page_cells([100], "mse", 128) == limits.MSE_CELL_COST * 100 * 100
    assert limits.page_cells([2048, 10], "max", 128) == 2058
    minilm = calib.load_histograms(ROOT / "assets" / "minilm_histograms.npz")
    for method in ("entropy", "mse"):  # the shipped model's table fits the budget
        assert limits.page_cells([h.n_bins for h in minilm.values()], method, 128) <= (
            limits.MAX_PAGE_CELLS
        )
    assert limits.page_cells([2**16] * 500, "entropy", 128) > limits.MAX_PAGE_CELLS


@pytest.mark.slow
def test_a_table_past_the_page_budget_is_refused_before_it_runs(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from calib import report

    ran = []
    real = report.layer_table
    monkeypatch.setattr(report, "layer_table", lambda *a, **k: ran.append(1) or real(*a, **k))
    # the shipped model's table (15 million cells: signed, folded to |x| by the seed) fits;
    # three 65,536-bin tensors do not
    monkeypatch.setattr(limits, "MAX_PAGE_CELLS", 22_000_000)
    h = calib.Histogram.from_samples(np.random.default_rng(0).laplace(size=5000), 2**16)
    at = AppTest.from_file(str(ROOT / "pages" / "2_Layers.py"), default_timeout=120).run()
    ran.clear()
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value(("big.npz", _npz({"a": h, "b": h, "c": h}), "x"))
    at.run()
    assert not at.exception and not ran
    message = at.error[0].value
    assert "MAX_PAGE_CELLS" in message and "python -m calib FILE --method entropy" in message
    assert not at.dataframe
    at.radio(key="layers_src").set_value("model").run()  # the page stays usable
    assert not at.exception and not at.error and at.dataframe


@pytest.mark.slow
def test_compare_merges_a_histogram_past_its_budget_down_and_says_so():
    from streamlit.testing.v1 import AppTest

    rng = np.random.default_rng(1)
    h = calib.Histogram.from_samples(rng.laplace(size=200_000), 2**16)
    at = AppTest.from_file(str(ROOT / "pages" / "3_Compare.py"), default_timeout=300).run()
    at.radio(key="compare_kind").set_value("histogram").run()
    at.file_uploader(key="compare_histogram_file").set_value(("h.npz", _npz({"x": h}), "x"))
    at.run()
    assert not at.exception
    size = at.select_slider(key="compare_hist_bins")
    assert size.value == limits.MAX_COMPARE_BINS
    assert max(int(o) for o in size.options) <= limits.MAX_COMPARE_BINS
    assert any("MAX_COMPARE_BINS" in i.value for i in at.info)
    assert plural(limits.MAX_COMPARE_BINS, "bin") in " ".join(c.value for c in at.caption)
