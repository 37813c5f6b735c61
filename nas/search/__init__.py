"""The search engine: one `run` over an arch space or a dict of choices, with Optuna (and our GP sampler), Ray
Tune, evolution, memetic or random search behind one `Strategy` protocol; constraints per device; trials in an
Optuna study (SQLite or PostgreSQL) that a search killed and started again resumes."""

from nas.search._engine import SearchResult, default_strategy, run
from nas.search._pareto import hypervolume_2d, nondominated_mask
from nas.search._problem import Constraint, Evaluation, Problem, SearchError
from nas.search._session import Session
from nas.search._store import open_storage
from nas.search._memetic import Memetic
from nas.search._strategies import (Evolution, OptunaSampler, RandomSearch, Strategy, available_strategies,
                                    get_strategy, register_strategy, strategy_options)
from nas.search._surrogate import SurrogateSampler

__all__ = ["run", "SearchResult", "Session", "Constraint", "Evaluation", "Problem", "SearchError", "Strategy",
           "Evolution", "Memetic", "RandomSearch", "OptunaSampler", "SurrogateSampler", "available_strategies",
           "get_strategy", "register_strategy", "strategy_options", "default_strategy", "hypervolume_2d",
           "nondominated_mask",
           "open_storage"]
