"""`Session`: what a strategy drives during one search (the problem, the trials so far, the budget)."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from nas.search._problem import Evaluation, Problem
from nas.search._store import History, TrialStore

Progress = Callable[[int, int, "dict[str, Any] | None"], None]


class Session:
    """What a strategy drives: the problem, the trials so far, and `evaluate` which runs and records a batch.

    Strategies ask `remaining` and `done`, draw candidates as choice-index rows, and call `evaluate(idx)`;
    a strategy whose candidates are evaluated elsewhere (Ray workers) calls `record(idx, evaluation)`.
    """

    def __init__(self, problem: Problem, store: TrialStore, budget: int, seed: int,
                 progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                 budget_seconds: float | None = None):
        self.problem, self.store, self.budget, self.seed = problem, store, budget, seed
        self.budget_seconds = budget_seconds
        self.started = time.perf_counter()
        self.out_of_time = False
        self.history: History = store.history()
        self.prior = len(self.history)
        self._progress, self._should_stop = progress, should_stop
        self._idx: list[np.ndarray] = [self.history.idx]
        self._ev: list[Evaluation] = [self.history.evaluation]
        self._source: list[str] = list(self.history.source)
        self.n_done = self.prior
        self.stopped = False
        self._best: dict[str, Any] | None = None
        self._best_key = math.inf
        self._update_best(self.history.idx, self.history.evaluation)

    # ---------------------------------------------------------------- budget
    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.n_done)

    @property
    def elapsed(self) -> float:
        """Seconds since this session started."""
        return time.perf_counter() - self.started

    @property
    def done(self) -> bool:
        if self.remaining == 0:  # the whole budget ran: finished, even if a stop was asked for meanwhile
            return True
        if self.budget_seconds is not None and self.elapsed >= self.budget_seconds:
            self.out_of_time = True
            return True
        if not self.stopped and self._should_stop is not None and self._should_stop():
            self.stopped = True
        return self.stopped

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded by (seed, trials already done, salt): a resumed search draws fresh candidates."""
        return np.random.default_rng([self.seed, self.n_done, salt])

    # ---------------------------------------------------------------- evaluating
    def evaluate(self, idx: np.ndarray, canonical: bool = False, constraints: np.ndarray | None = None) -> Evaluation:
        """Evaluate (at most `remaining`) candidate rows, record them, and return their evaluation
        (`canonical`: the rows are already in `Problem.canonical` form; `constraints`: their values, from
        `Problem.screen`, for a batch objective not to compute them again)."""
        p = self.problem
        idx = (idx if canonical else p.canonical(idx))[: self.remaining]
        if not len(idx):
            return Evaluation.concat([], p.n_obj, p.n_con)
        if p.batched or self.store.study is None:
            ev = p.evaluate(idx, None if constraints is None else constraints[: len(idx)])
            self.record(idx, ev)
            return ev
        parts = []
        for row in idx:  # per-candidate objective with storage: each trial RUNNING in storage while it runs
            tid = self.store.begin(row)
            try:
                ev = p.evaluate(row[None])
            except BaseException:
                self.store.finish(tid, None, p.source)
                raise
            self.store.finish(tid, ev, p.source)
            self._remember(row[None], ev, p.source)
            parts.append(ev)
            if self.done:
                break
        return Evaluation.concat(parts, p.n_obj, p.n_con)

    def record(self, idx: np.ndarray, ev: Evaluation, source: str | None = None) -> None:
        """Record candidates evaluated elsewhere (or just now) as finished trials."""
        source = source or self.problem.source
        self.store.add(idx, ev, source)
        self._remember(idx, ev, source)

    def _remember(self, idx: np.ndarray, ev: Evaluation, source: str) -> None:
        keep = ev.ok
        self._idx.append(idx[keep])
        self._ev.append(ev.take(keep))
        self._source += [source] * int(keep.sum())
        self.n_done += len(idx)
        self._update_best(idx[keep], ev.take(keep))
        if self._progress is not None:
            self._progress(self.n_done, self.budget, self._best)

    def _update_best(self, idx: np.ndarray, ev: Evaluation) -> None:
        rows = np.nonzero(ev.feasible)[0]
        if not len(rows):
            return
        sign = -1.0 if self.problem.directions[0] == "maximize" else 1.0
        i = rows[np.argmin(sign * ev.values[rows, 0])]
        key = sign * ev.values[i, 0]
        if key < self._best_key:
            self._best_key = key
            self._best = dict(zip(self.problem.objective_names, map(float, ev.values[i])))

    # ---------------------------------------------------------------- results
    def finished(self) -> tuple[np.ndarray, Evaluation, list[str]]:
        p = self.problem
        return np.concatenate(self._idx), Evaluation.concat(self._ev, p.n_obj, p.n_con), self._source

    def feasible_population(self) -> tuple[np.ndarray, Evaluation]:
        idx, ev, _ = self.finished()
        return idx[ev.feasible], ev.take(ev.feasible)
