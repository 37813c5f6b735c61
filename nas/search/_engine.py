"""`run`: one search over a space, with any strategy, recorded (and resumable) in an Optuna study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nas.search._pareto import as_minimize, nondominated_mask
from nas.search._problem import Constraint, Problem, SearchError
from nas.search._session import Progress, Session
from nas.search._store import TrialStore
from nas.search._strategies import get_strategy


@dataclass
class SearchResult:
    """Every finished trial (`trials`), the feasible Pareto front (`pareto`) and the best feasible candidate.

    `trials` has one column per parameter (named as in the space), one per objective, one per constraint
    value, `feasible`, `source` (predicted or measured) and `trial` (its number in the study). What was
    evaluated comes with it, row for row with `trials`: `codes` (arch spaces: each trial's compact codes, r in
    px), `frame` (every named column the objective returned) and the `problem` that maps rows to candidates.
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
    problem: Problem | None = None
    codes: np.ndarray | None = None  # arch spaces only: (len(trials), code length); None on a dict space
    # every column the objective named, per trial; None when some trials' were not kept (read back from storage
    # on a resumed search, or evaluated on Ray workers)
    frame: pd.DataFrame | None = None
    best_trial: int | None = None  # the row of `trials` (= its `trial`) that `best` is
    extra: dict[str, Any] = field(default_factory=dict)  # out_of_time: the time limit ended it; seconds

    @property
    def feasible(self) -> pd.DataFrame:
        return self.trials[self.trials["feasible"]]

    def candidate(self, row: Mapping[str, Any] | pd.Series) -> Any:
        """The ArchConfig (arch spaces) or dict of choices of one row of `trials` or `pareto`."""
        return self.problem.candidates(self.problem.idx_from_params(row)[None])[0]


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
    if len(pareto_rows):  # each candidate once, its first trial (a DataFrame's drop_duplicates costs 10x)
        pareto_rows = pareto_rows[np.sort(np.unique(idx[pareto_rows], axis=0, return_index=True)[1])]
    pareto = trials.iloc[pareto_rows].sort_values(p.objective_names[0])
    best = best_values = best_trial = None
    if len(feas):
        best_trial = int(feas[np.argmin(as_minimize(ev.values[feas][:, :1], p.directions[:1])[:, 0])])  # the first
        best = p.candidates(idx[best_trial][None])[0]
        best_values = dict(zip(p.objective_names, map(float, ev.values[best_trial])))
    return SearchResult(trials=trials, pareto=pareto.reset_index(drop=True), best=best, best_values=best_values,
                        objectives=p.objective_names, directions=p.directions, constraints=p.constraints,
                        params=p.names, strategy=strategy, study_name=study_name, stopped=session.stopped,
                        resumed_from=session.prior, problem=p,
                        codes=p.idx_to_codes(idx) if p.is_arch_space else None,
                        frame=None if ev.columns is None else pd.DataFrame(ev.columns), best_trial=best_trial,
                        extra={"out_of_time": session.out_of_time, "seconds": session.elapsed})


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
