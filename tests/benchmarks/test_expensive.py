"""The expensive-objective benchmark's hypervolume: three objectives against inclusion-exclusion, two against
`hypervolume_2d`, mixed directions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks._expensive import hypervolume
from nas.search import hypervolume_2d


def _boxes(points: np.ndarray, ref: np.ndarray) -> float:
    """The union of the boxes [p, ref] by inclusion-exclusion (minimise)."""
    total = 0.0
    for k in range(1, len(points) + 1):
        for sub in itertools.combinations(points, k):
            corner = np.max(sub, axis=0)
            total += (-1) ** (k + 1) * np.prod(np.clip(ref - corner, 0, None))
    return float(total)


def test_three_objectives_match_inclusion_exclusion():
    rng = np.random.default_rng(0)
    ref = np.array([1.0, 1.0, 1.0])
    for _ in range(20):
        pts = rng.random((6, 3)) * 1.1  # some beyond the reference
        assert hypervolume(pts, ref, ["minimize"] * 3) == pytest.approx(_boxes(pts, ref), abs=1e-12)
    flipped = pts * np.array([-1, 1, 1])  # the first objective maximised
    assert hypervolume(flipped, np.array([-1.0, 1.0, 1.0]), ["maximize", "minimize", "minimize"]) == \
        pytest.approx(_boxes(pts, ref), abs=1e-12)


def test_two_objectives_are_hypervolume_2d():
    pts = np.random.default_rng(1).random((10, 2))
    ref = np.array([0.0, 1.2])
    assert hypervolume(pts, ref, ["maximize", "minimize"]) == hypervolume_2d(pts, ref, ["maximize", "minimize"])
