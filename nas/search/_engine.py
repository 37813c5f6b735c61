"""`run`: one search over a space, with any strategy, recorded (and resumable) in an Optuna study."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nas.search._pareto import nondominated_mask, selection_order
from nas.search._problem import Constraint, Evaluation, Problem, SearchError
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


@dataclass
class SearchResult:
    """Every finished trial (`trials`), the feasible Pareto front (`pareto`) and the best feasible candidate.

    `trials` has one column per parameter (named as in the space), one per objective, one per constraint
    value, `feasible`, `source` (predicted or measured) and `trial` (its number in the study).
    """

    trials: pd.DataFrame
    pareto: pd.DataFrame
    best: Any  # ArchConfig (arch spaces) or dict of choices; None when no trial was feasible
    best_values: dict[str, float] | None
    objectives: list[str]
    directions: list[str]
    constraints: list[Constraint]
    params: list[str]
    strategy: str
    study_name: str | None = None
    stopped: bool = False
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> pd.DataFrame:
        return self.trials[self.trials["feasible"]]

    def candidate(self, row: Mapping[str, Any] | pd.Series) -> Any:
        """The ArchConfig (arch spaces) or dict of choices of one row of `trials` or `pareto`."""
        return self.extra["problem"].candidates(self.extra["problem"].idx_from_params(row)[None])[0]


def _result(session: Session, strategy: str, study_name: str | None) -> SearchResult:
    p = session.problem
    idx, ev, source = session.finished()
    cols: dict[str, Any] = {}
    for j, name in enumerate(p.objective_names):
        cols[name] = ev.values[:, j]
    for j, name in enumerate(p.constraint_names):
        if name not in cols:
            cols[name] = ev.constraints[:, j]
    cols["feasible"] = ev.feasible
    cols["source"] = source
    trials = pd.concat([pd.DataFrame({"trial": np.arange(len(idx))}), p.frame_of(idx), pd.DataFrame(cols)], axis=1)
    feas = np.nonzero(ev.feasible)[0]
    pareto_rows = feas[nondominated_mask(ev.values[feas], p.directions)] if len(feas) else feas
    pareto = trials.iloc[pareto_rows].drop_duplicates(subset=p.names).sort_values(p.objective_names[0])
    best = best_values = None
    if len(feas):
        i = feas[selection_order(ev.values[feas][:, :1], p.directions[:1])[0]]
        best = p.candidates(idx[i][None])[0]
        best_values = dict(zip(p.objective_names, map(float, ev.values[i])))
    return SearchResult(trials=trials, pareto=pareto.reset_index(drop=True), best=best, best_values=best_values,
                        objectives=p.objective_names, directions=p.directions, constraints=p.constraints,
                        params=p.names, strategy=strategy, study_name=study_name, stopped=session.stopped,
                        resumed_from=session.prior, extra={"problem": p, "out_of_time": session.out_of_time,
                                                           "seconds": session.elapsed})


def default_strategy(problem: Problem) -> str:
    """Batch objectives (predictors): memetic with one objective, NSGA-II with several; costly per-candidate
    objectives: our GP `surrogate` sampler, which needs the fewest evaluations (BENCHMARKS.md, "Search")."""
    if problem.batched:
        return "memetic" if problem.n_obj == 1 else "optuna-nsga2"
    return "surrogate"


def run(space: Any, objective: Any, *, directions: str | Sequence[str] | Mapping[str, str], budget: int,
        seed: int = 0, strategy: Any = None, constraints: Mapping[str, float] | Sequence[Constraint] | None = None,
        storage: Any = None, study_name: str | None = None, progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None, budget_seconds: float | None = None) -> SearchResult:
    """Search `space` for candidates optimising `objective` under `constraints`, for `budget` trials in all
    (a trial is one candidate the objective evaluated, feasible or not; a candidate a strategy rejects from its
    constraint values alone, without calling the objective, is no trial and costs no budget), or until
    `budget_seconds` of wall time, whichever ends first.

    space: a `SearchSpace` (candidates are `ArchConfig`s) or a dict name -> list of choices (candidates are dicts).
    objective: `f(candidate) -> float | tuple | mapping`, or an object with `evaluate_batch(codes)` returning
      (N, n_obj) values or a DataFrame with a column per objective (and per constraint) for a batch.
    directions: 'minimize'/'maximize', a list of them, or a dict objective name -> direction.
    constraints: dict name -> upper bound, or `Constraint`s; infeasible trials never win.
    strategy: a registered name (`available_strategies()`), a Strategy object, or None for the default.
    storage: an Optuna storage URL or `.db` path; a search started again with the same `study_name` (default
      "search") resumes
      (the budget counts the trials already finished there).
    progress: called as `progress(done, budget, best_values)` after each recorded batch.
    should_stop: polled between batches; True ends the search early (its trials are kept).
    budget_seconds: wall-time limit, checked between batches (`result.extra["out_of_time"]` says it ended it).
    """
    from nas.search._strategies import get_strategy

    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise SearchError(f"budget must be a positive number of trials, got {budget!r}")
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(
            budget_seconds, (int, float, np.integer, np.floating)) or not budget_seconds > 0):
        raise SearchError(f"budget_seconds must be a positive number of seconds, got {budget_seconds!r}")
    problem = Problem(space, objective, directions, constraints)
    strat = get_strategy(strategy if strategy is not None else default_strategy(problem))
    store = TrialStore(problem, storage, study_name)
    session = Session(problem, store, int(budget), int(seed), progress, should_stop,
                      None if budget_seconds is None else float(budget_seconds))
    if not session.done:
        strat.search(session)
    return _result(session, getattr(strat, "name", type(strat).__name__), store.study.study_name if store.study else None)
