"""Development tools: the slow, obviously-correct loop references and the benchmark.

Not imported by the rest of the package; numpy and the standard library only.
"""
