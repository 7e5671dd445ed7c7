"""Maintainers' tools, run from a checkout: the benchmarks (``bench``, ``bench_collect``,
``bench_evaluate``, the app's ``bench_app``) and the browser driver (``browser``).

Not part of the wheel (``pyproject.toml`` leaves ``calib.dev*`` out) and not imported by the
rest of the package, except by ``python -m calib bench``, which says it needs a checkout when
this folder is not there. The slow loop references the tests use as oracles ship:
``calib.reference``.
"""
