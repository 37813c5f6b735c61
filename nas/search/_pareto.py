"""Pareto fronts, non-dominated ranks, crowding and 2-D hypervolume, on objective arrays with directions."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def as_minimize(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Flip maximised columns so that smaller is better everywhere."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=np.float64).reshape(-1, len(sign)) * sign


def nondominated_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """(N,) bool: rows no other row dominates (ties are all kept)."""
    v = as_minimize(values, directions)
    n = len(v)
    if n == 0:
        return np.zeros(0, bool)
    if v.shape[1] == 1:
        return v[:, 0] == v[:, 0].min()
    if v.shape[1] == 2:
        return _nondominated_2d(v)
    order = np.lexsort(v.T[::-1])  # by first objective, then the next ones
    keep = np.zeros(n, bool)
    front: list[np.ndarray] = []
    for i in order:
        x = v[i]
        if front:
            f = np.asarray(front)
            if ((f <= x).all(1) & (f < x).any(1)).any():
                continue
        keep[i] = True
        front.append(x)
    return keep


def _nondominated_2d(v: np.ndarray) -> np.ndarray:
    # Sorted by (x, y), a point is dominated iff an earlier point has a smaller y, or the same y at a smaller x.
    n = len(v)
    order = np.lexsort((v[:, 1], v[:, 0]))
    x, y = v[order, 0], v[order, 1]
    run_min = np.minimum.accumulate(y)
    prev_min = np.concatenate([[np.inf], run_min[:-1]])
    is_new = np.concatenate([[True], y[1:] < run_min[:-1]])
    first_at = np.maximum.accumulate(np.where(is_new, np.arange(n), 0))  # where the running min was reached
    prev_first = np.concatenate([[0], first_at[:-1]])
    dominated = (prev_min < y) | ((prev_min == y) & (x[prev_first] < x))
    keep = np.empty(n, bool)
    keep[order] = ~dominated
    return keep


def nondominated_rank(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """(N,) int: 0 for the Pareto front, 1 for the front once it is removed, and so on."""
    n = len(values)
    rank = np.full(n, -1)
    left = np.arange(n)
    r = 0
    while len(left):
        m = nondominated_mask(np.asarray(values)[left], directions)
        rank[left[m]] = r
        left = left[~m]
        r += 1
    return rank


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within one front (boundary rows get infinity)."""
    v = np.asarray(values, dtype=np.float64)
    n, m = v.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(v[:, j], kind="stable")
        span = v[order[-1], j] - v[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (v[order[2:], j] - v[order[:-2], j]) / span
    return dist


def selection_order(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Row indices best first: by value (one objective) or by non-dominated rank, then crowding (several)."""
    v = as_minimize(values, directions)
    if v.shape[1] == 1:
        return np.argsort(v[:, 0], kind="stable")
    rank = nondominated_rank(v, ["minimize"] * v.shape[1])
    crowd = np.zeros(len(v))
    for r in np.unique(rank):
        rows = np.nonzero(rank == r)[0]
        crowd[rows] = crowding_distance(v[rows])
    return np.lexsort((-crowd, rank))


def hypervolume_2d(values: np.ndarray, reference: Sequence[float], directions: Sequence[str]) -> float:
    """Area dominated by `values` and bounded by `reference` (two objectives, in the objectives' own units)."""
    if len(directions) != 2:
        raise ValueError("hypervolume_2d needs exactly two objectives")
    v = as_minimize(values, directions)
    ref = as_minimize(np.asarray(reference, dtype=np.float64)[None, :], directions)[0]
    v = v[(v < ref).all(1)]
    if not len(v):
        return 0.0
    v = v[nondominated_mask(v, ["minimize", "minimize"])]
    v = v[np.argsort(v[:, 0])]
    ys = np.minimum.accumulate(v[:, 1])
    xs_next = np.append(v[1:, 0], ref[0])
    return float(((xs_next - v[:, 0]) * (ref[1] - ys)).sum())
