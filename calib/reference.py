"""Slow, plain-loop references: the oracles the vectorised sweep is tested against.

Nothing here is fast or clever on purpose. ``seed_threshold_distribution`` follows the
seed's own loop line by line (the blog post in shared/seed, = ncnn 2019); the
``*_loop`` functions follow each implementation's algorithm as its source describes it,
one candidate and one bin at a time. They live in the package, not in tests/, so that
``python -m calib bench`` can time them against the sweep from an installed copy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "modelopt_loop",
    "mxnet_loop",
    "ncnn_loop",
    "onnxruntime_loop",
    "seed_kl",
    "seed_loop",
    "seed_threshold_distribution",
]


def seed_kl(p, q) -> float:
    """The seed's KL: ``sum p log(p/q)`` over ``p != 0``, adding 1 where ``q == 0``."""
    total = 0.0
    for i in range(len(p)):
        if p[i] != 0:
            if q[i] == 0:
                total += 1
            else:
                total += p[i] * np.log(p[i] / q[i])
    return total


def seed_loop(distribution, target_bin: int = 128):
    """The seed's ``threshold_distribution``, returning every candidate's KL.

    Returns ``(thresholds, kls, best)``. One deliberate change: where the float group
    edge ``end`` lands at or past ``threshold`` (threshold 104, target_bin 100 gives
    104.00000000000001), the seed indexes past the clipped array; here that right
    edge is dropped, the project's rule (shared/seed/NOTES.md).
    """
    distribution = np.asarray(distribution, dtype=np.float64)
    length = len(distribution)
    thresholds, kls = [], []
    best, min_kl = target_bin, 10000000000000
    for threshold in range(target_bin, length):
        t_distribution = distribution[0:threshold].copy()
        t_distribution[threshold - 1] += np.sum(distribution[threshold:])
        num_per_bin = threshold / target_bin

        quantize_distribution = np.zeros((target_bin,))
        for i in range(target_bin):
            start = i * num_per_bin
            end = start + num_per_bin
            left_upper = int(np.ceil(start))
            if left_upper > start:
                left_scale = left_upper - start
                quantize_distribution[i] += left_scale * distribution[left_upper - 1]
            right_lower = int(np.floor(end))
            if right_lower < end and right_lower < threshold:
                right_scale = end - right_lower
                quantize_distribution[i] += right_scale * distribution[right_lower]
            for j in range(left_upper, right_lower):
                quantize_distribution[i] += distribution[j]

        expand_distribution = np.zeros_like(t_distribution)
        for i in range(target_bin):
            start = i * num_per_bin
            end = start + num_per_bin
            count = 0
            left_upper = int(np.ceil(start))
            left_scale = 0
            if left_upper > start:
                left_scale = left_upper - start
                if t_distribution[left_upper - 1] != 0:
                    count += left_scale
            right_lower = int(np.floor(end))
            right_scale = 0
            has_right = right_lower < end and right_lower < threshold
            if has_right:
                right_scale = end - right_lower
                if t_distribution[right_lower] != 0:
                    count += right_scale
            for j in range(left_upper, right_lower):
                if t_distribution[j] != 0:
                    count += 1
            if count == 0:
                continue  # every P bin of the group is zero: nothing to expand into
            expand_value = quantize_distribution[i] / count
            if left_upper > start and t_distribution[left_upper - 1] != 0:
                expand_distribution[left_upper - 1] += expand_value * left_scale
            if has_right and t_distribution[right_lower] != 0:
                expand_distribution[right_lower] += expand_value * right_scale
            for j in range(left_upper, right_lower):
                if t_distribution[j] != 0:
                    expand_distribution[j] += expand_value

        kl = seed_kl(t_distribution, expand_distribution)
        thresholds.append(threshold)
        kls.append(kl)
        if kl < min_kl:
            min_kl = kl
            best = threshold
    return np.array(thresholds), np.array(kls), best


def seed_threshold_distribution(distribution, target_bin: int = 128) -> int:
    """The seed's function as published: the chosen number of kept bins."""
    return seed_loop(distribution, target_bin)[2]
