"""Explore: where a KL (entropy) calibrator clips one activation histogram, and why.

The app's default page (``streamlit run app.py``). Opens on a real model's layer (the FFN output of
all-MiniLM-L6-v2's first block, shipped in assets/); the sidebar switches to any other
layer, a built-in demo, or an upload. The view's state lives in the query string
(``?src=model&layer=...&variant=...``, see ``calib.explore.parse_explore_query``), so a link
reproduces it. The computation is ``calib.explore.explore_view``; this script only wires it.
"""

from __future__ import annotations

import streamlit as st

from calib.app.navigation import ensure_navigation

ensure_navigation()  # first, before the slow imports: see calib/app/navigation.py

import calib.explore
from calib.app import explore, sources
from calib.figures import histogram_figure, kl_curve_figure, pq_figure
from calib.figures.base import FIGURE_HEIGHT
from calib.numbers import fmt

KEY = "explore"


st.set_page_config(page_title="calib: explore a KL calibration", layout="wide")
st.title("KL calibration explorer")
st.write(
    "Where an entropy (KL-divergence) INT8 calibrator clips one activation histogram: the "
    "clip on the histogram, the KL of every candidate threshold, and P against Q at the "
    "chosen one and at any candidate you pick. It opens on a real model's layer; the "
    "sidebar picks another layer, a demo or your own file, and every implementation choice."
)

with explore.synced_query_params(KEY):
    source = sources.histogram_source(KEY)
    c = explore.explore_controls(source, KEY)

    view, problem = None, calib.explore.policy_error(c.variant, dict(c.overrides))
    if problem:
        problem = (
            f"Impossible policy combination for {c.variant}: {problem}. Change one of the "
            "overridden policies in the sidebar, or reset them to the preset."
        )
    else:
        try:
            view = explore.explore_view(
                source.key, c.variant, c.overrides, c.target_bins, c.hist_bins, c.num_bits,
                c.show_variants, _source=source,
            )  # fmt: skip
        except ValueError as err:
            problem = f"Cannot sweep with these settings: {err}"
    if view is None:
        st.error(problem)
        st.stop()
    r, h = view.result, view.hist

    st.caption(
        f"**{view.label}**: {h.n_bins} bins on [{h.edges[0]:.4g}, {h.edges[-1]:.4g}], "
        f"{h.total:.6g} counts; {c.variant}, {view.target_bins} levels, {c.num_bits}-bit"
        + (f"; overridden: {dict(c.overrides)}" if c.overrides else "")
    )
    explore.ranked_note(view, KEY)
    m = view.metrics
    # two rows of four: seven metrics in one row cut values like "0.0089%" at 1440 px
    cols = [*st.columns(4), *st.columns(4)]
    cols[0].metric(
        "Threshold (bins)", "—" if r.dead else f"{r.best}",
        help="The chosen candidate as the variant's own loop counts it (seed, ncnn, "
        "ModelOpt: kept bins; MXNet, ONNX Runtime: bins on each side of zero).",
    )  # fmt: skip
    cols[1].metric("Threshold", fmt(r.amax), help="The clip amax, in activation units.")
    cols[2].metric("Max |x|", fmt(view.max_abs), help="Where the data end.")
    cols[3].metric("Threshold / max", fmt(view.ratio, 3))
    cols[4].metric(
        # 2 significant digits: the metric column is narrow
        "Clipped mass", fmt(None if m is None else 100 * m.clipped_fraction, 2, unit="%"),
        help="Share of the values beyond the clip.",
    )  # fmt: skip
    cols[5].metric(
        "KL at minimum", fmt(None if r.dead else r.min_kl),  # a dead layer has no KL
        help="KL(P‖Q) of the chosen candidate, in the variant's own definition (the "
        "seed: raw counts, plus 1 for each bin where Q = 0 < P).",
    )  # fmt: skip
    cols[6].metric(
        "SQNR", fmt(None if m is None else m.sqnr_db, 1, fixed=True, unit=" dB"),
        help=f"Signal to quantization noise of a {c.num_bits}-bit symmetric quantizer "
        "clipped at the threshold (rounding plus clipping error).",
    )  # fmt: skip

    why = view.why
    lines = [t for t in (why.floor, why.penalty, why.error) if t]
    if lines:
        st.markdown("\n".join(f"- {t}" for t in lines))

    if not r.dead:
        d1, d2, _ = st.columns([1, 1, 5])
        d1.download_button(
            "KL curve (CSV)", lambda: calib.explore.kl_curve_csv(r), file_name="kl_curve.csv",
            mime="text/csv", on_click="ignore", key=f"{KEY}_csv",
        )  # fmt: skip
        d2.download_button(
            "Threshold (JSON)", lambda: calib.explore.threshold_json(view),
            file_name="threshold.json",
            mime="application/json", on_click="ignore", key=f"{KEY}_json",
        )  # fmt: skip

    def chart(where, option: dict, name: str) -> None:
        """An ECharts figure, keyed (so a rerun updates it in place), titled for readers."""
        where.echarts_chart(
            option, key=f"{KEY}_{name}", height=FIGURE_HEIGHT, alt=option["title"]["text"]
        )

    if r.dead:
        chart(st, histogram_figure(h, r, log_y=c.log_y), "histogram")
        st.warning(
            "Every count is zero (a dead layer): no clip is defined, amax is 0. A "
            "calibration table should flag this tensor rather than trust its scale."
        )
        st.stop()

    @st.fragment
    def candidate_views() -> None:
        """The figures and what a picked candidate changes. A click on the KL curve, the
        candidate slider and the zoom rerun only this (a fragment): the sidebar and the
        numbers above do not depend on them, and the sweep is the full run's."""
        hist_slot = st.empty()
        left, right = st.columns(2)
        kl_slot = left.empty()
        with left:
            pick_box = st.container()  # the candidate slider, drawn above the zoom
            span = explore.zoom_candidates(r, KEY)
        with pick_box:
            picked = explore.pick_candidate(r, KEY, span=span)
        i_picked = r.index_of(picked)
        others = view.others()
        chart(
            hist_slot,
            histogram_figure(h, r, log_y=c.log_y, others=others, picked=r.thresholds[i_picked]),
            "histogram",
        )
        kl_curve = kl_curve_figure(r, picked=picked, span=span)
        kl_slot.echarts_chart(
            kl_curve, key=explore.kl_chart_key(r, span, KEY), height=FIGURE_HEIGHT,
            alt=kl_curve["title"]["text"], on_select="rerun",
        )  # fmt: skip
        if why.undefined:
            left.caption(why.undefined)
        chart(
            right,
            pq_figure(
                view.chosen,
                log_y=c.log_y,
                title=f"Chosen: P and Q at {r.amax:.4g} (bin {r.best}, KL {r.min_kl:.4g})",
            ),
            "pq_chosen",
        )
        if why.coincide:
            right.caption(why.coincide)

        left, right = st.columns(2)
        pq = r.distributions(picked)
        chart(
            left,
            pq_figure(
                pq,
                log_y=c.log_y,
                title=f"Picked: P and Q at {pq.threshold:.4g} (bin {picked}, KL {pq.kl:.4g})",
            ),
            "pq_picked",
        )
        rows = [("entropy: " + c.variant, r.amax, m)]
        rows += [(o.name, o.amax, o.metrics) for o in (*view.methods, *view.variants) if not o.note]
        right.markdown(
            f"**Every threshold on this histogram** ({c.num_bits}-bit quantizer)\n\n"
            + explore.thresholds_table(rows, view.max_abs)
        )
        right.caption(
            "max: the largest |x|; percentile: ModelOpt's 99.99th; mse: the clip with the "
            "smallest expected quantization error. They are the faint lines on the histogram."
        )
        for line in view.left_out():
            right.caption(f"Left out (cannot run on this histogram): {line}.")
        explore.write_query(KEY)  # a rerun of this alone: the picked candidate into the URL

    candidate_views()
