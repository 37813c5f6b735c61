"""What a search searches: parameters (from a SearchSpace or a dict of choices), objectives and constraints.

Internally every candidate is a row of choice indices, one column per parameter, so strategies work the same
on an elastic arch space and on a user's own table of choices. The objective sees candidates in the user's
terms: an `ArchConfig` (or the space's compact codes, batched) for a `SearchSpace`; a dict (or a DataFrame,
batched) for a dict space.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from supernet import SearchSpace
from supernet.errors import NasError

DIRECTIONS = ("minimize", "maximize")
_COUNTED = ("macs", "params")  # constraint values the engine can count itself on an arch space


class SearchError(NasError):
    """A search was asked for something it cannot do (bad space, directions, constraints or strategy)."""


@dataclass(frozen=True)
class Constraint:
    """Feasible when the value named `name` is at most `upper` (e.g. latency_ms <= 5).

    The value comes from `fn` when given (called like the objective: on one candidate, or on a batch of codes
    for a batch objective), else from the objective's output of the same name, else (arch spaces, `macs` and
    `params`) from `supernet.counting`.
    """

    name: str
    upper: float
    fn: Callable[[Any], Any] | None = None


@dataclass
class Evaluation:
    """Objective values (N, n_obj), constraint values (N, n_con), feasibility (N,) and validity (N,) of a batch;
    `columns`: every named column the objective returned for it (N each), when it returned names."""

    values: np.ndarray
    constraints: np.ndarray
    feasible: np.ndarray
    ok: np.ndarray  # every objective value finite
    columns: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def take(self, rows: np.ndarray | slice) -> "Evaluation":
        cols = None if self.columns is None else {k: v[rows] for k, v in self.columns.items()}
        return Evaluation(self.values[rows], self.constraints[rows], self.feasible[rows], self.ok[rows], cols)

    @staticmethod
    def concat(parts: Sequence["Evaluation"], n_obj: int, n_con: int) -> "Evaluation":
        if not parts:
            return Evaluation(np.empty((0, n_obj)), np.empty((0, n_con)), np.empty(0, bool), np.empty(0, bool))
        return Evaluation(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("values", "constraints", "feasible", "ok")), _concat_columns(parts))


def _concat_columns(parts: Sequence[Evaluation]) -> dict[str, np.ndarray] | None:
    """The columns every non-empty part has, joined; None when some part has none (trials read back from
    storage, or evaluated elsewhere)."""
    parts = [p for p in parts if len(p)]
    if not parts or any(p.columns is None for p in parts):
        return None
    names = [k for k in parts[0].columns if all(k in p.columns for p in parts[1:])]
    return {k: np.concatenate([p.columns[k] for p in parts]) for k in names}


def _named_columns(out: Any, n: int) -> dict[str, np.ndarray] | None:
    """An objective's output for n candidates as named columns of n values, when it gave names."""
    if isinstance(out, (pd.DataFrame, Mapping)):
        cols = {str(k): np.asarray(out[k]) for k in out.keys()}
        return {k: v for k, v in cols.items() if v.shape == (n,)}
    return None


def is_batch_objective(objective: Any) -> bool:
    return callable(getattr(objective, "evaluate_batch", None))


def _key(value: Any) -> str:
    # numpy scalars (from DataFrames) and Python values of one choice map to the same key
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_choice(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise SearchError(f"space parameter '{name}': choices must be numbers, strings, booleans or None, "
                          f"got {type(value).__name__}")


class Problem:
    """A space of candidates, the objective(s) with their directions, and the constraints."""

    def __init__(self, space: SearchSpace | Mapping[str, Sequence[Any]], objective: Any,
                 directions: str | Sequence[str] | Mapping[str, str],
                 constraints: Mapping[str, float] | Sequence[Constraint] | None = None):
        self.space = space
        if isinstance(space, SearchSpace):
            nb, ns = space.num_blocks, space.num_stages
            self.names = ([f"ks_{i}" for i in range(nb)] + [f"e_{i}" for i in range(nb)]
                          + [f"d_{i}" for i in range(ns)] + ["r"])
            self.choices = ([list(space.kernel_choices)] * nb + [list(space.expand_choices)] * nb
                            + [list(space.depth_choices)] * ns + [list(space.resolutions)])
        elif isinstance(space, Mapping):
            if not space:
                raise SearchError("space: a dict space needs at least one parameter (name -> list of choices)")
            self.names, self.choices = [], []
            for name, ch in space.items():
                if not isinstance(name, str) or not name:
                    raise SearchError(f"space: parameter names must be non-empty strings, got {name!r}")
                if isinstance(ch, (str, bytes)) or not hasattr(ch, "__iter__"):
                    raise SearchError(f"space parameter '{name}': choices must be a list, got {ch!r}")
                ch = list(ch)
                if not ch:
                    raise SearchError(f"space parameter '{name}': needs at least one choice")
                for v in ch:
                    _check_choice(name, v)
                if len(set(map(repr, ch))) != len(ch):
                    raise SearchError(f"space parameter '{name}': choices must be unique, got {ch}")
                self.names.append(name)
                self.choices.append(ch)
        else:
            raise SearchError(f"space must be a SearchSpace or a dict of name -> choices, got {type(space).__name__}")
        self.sizes = np.array([len(c) for c in self.choices], dtype=np.int64)
        self._lookup = [{_key(v): i for i, v in enumerate(c)} for c in self.choices]
        self._objects = []  # each parameter's choices as an array (typed when all ints or all floats)
        for c in self.choices:
            kinds = {type(v) for v in c}
            arr = np.asarray(c) if kinds <= {int} or kinds == {float} else np.empty(len(c), dtype=object)
            if arr.dtype == object:
                arr[:] = c
            self._objects.append(arr)

        self.objective = objective
        self.batched = is_batch_objective(objective)
        # an evaluate_batch(batch, columns=None) is told which columns the search reads, to compute only those
        self._pass_columns = self.batched and "columns" in inspect.signature(objective.evaluate_batch).parameters
        if not self.batched and not callable(objective):
            raise SearchError("objective must be callable (one candidate -> float or tuple) "
                              "or expose evaluate_batch(codes)")
        self.objective_names, self.directions = _parse_directions(directions, getattr(objective, "names", None))
        self.source = getattr(objective, "source", "predicted" if self.batched else "measured")
        self.constraints = _parse_constraints(constraints)
        clash = set(self.names) & (set(self.objective_names) | {c.name for c in self.constraints})
        if clash:
            raise SearchError(f"names {sorted(clash)} are used both as parameters and as objectives/constraints")

    # ---------------------------------------------------------------- candidates
    @property
    def is_arch_space(self) -> bool:
        return isinstance(self.space, SearchSpace)

    @property
    def n_obj(self) -> int:
        return len(self.directions)

    @property
    def n_con(self) -> int:
        return len(self.constraints)

    @property
    def constraint_names(self) -> list[str]:
        return [c.name for c in self.constraints]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` candidates drawn uniformly per parameter, as choice indices (n, P)."""
        return self.canonical((rng.random((n, len(self.sizes))) * self.sizes).astype(np.int64))

    def canonical(self, idx: np.ndarray) -> np.ndarray:
        """One index row per distinct candidate (arch spaces: inactive block slots copied, as ArchConfig does);
        integer rows keep their dtype."""
        idx = np.asarray(idx)
        idx = (idx if idx.dtype.kind in "iu" else idx.astype(np.int64)).reshape(-1, len(self.sizes))
        if not self.is_arch_space:
            return idx
        # index rows are the space's codes but for the resolution column, which canonical form leaves alone
        return self.space.canonical_codes(idx)

    def idx_to_codes(self, idx: np.ndarray) -> np.ndarray:
        """Arch spaces: choice indices -> the space's compact codes (resolution in px)."""
        codes = np.array(idx, dtype=np.int64, copy=True)
        codes[:, -1] = np.asarray(self.space.resolutions)[idx[:, -1]]
        return codes

    def codes_to_idx(self, codes: np.ndarray) -> np.ndarray:
        idx = np.array(codes, dtype=np.int64, copy=True)
        res = np.asarray(self.space.resolutions)
        pos = np.searchsorted(res, codes[:, -1])
        if (pos >= len(res)).any() or (res[np.minimum(pos, len(res) - 1)] != codes[:, -1]).any():
            raise SearchError(f"codes hold a resolution outside the space's {list(res)}")
        idx[:, -1] = pos
        return idx

    def values_of(self, idx: np.ndarray) -> dict[str, list[Any]]:
        """Parameter values per column for a batch of index rows."""
        return {n: self._objects[p][idx[:, p]].tolist() for p, n in enumerate(self.names)}

    def frame_of(self, idx: np.ndarray) -> pd.DataFrame:
        """Parameter values as a table, a column per parameter (typed where the choices are all ints or floats)."""
        if all(o.dtype.kind == "i" for o in self._objects):  # arch spaces: one gather into one int block
            flat = np.concatenate(self._objects)
            offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
            return pd.DataFrame(flat.take(idx + offsets), columns=self.names, copy=False)  # a new array: no copy
        cols = {n: self._objects[p][idx[:, p]] for p, n in enumerate(self.names)}
        return pd.DataFrame({n: c.tolist() if c.dtype == object else c for n, c in cols.items()})

    def idx_from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        """One index row from a mapping of parameter values (as Optuna or Ray hand them back)."""
        try:
            return np.array([self._lookup[p][_key(params[n])] for p, n in enumerate(self.names)], dtype=np.int64)
        except KeyError as exc:
            raise SearchError(f"a stored trial has a value or parameter not in this space: {exc}") from None

    def candidates(self, idx: np.ndarray) -> list[Any]:
        """The objective's view of each row: ArchConfig (arch spaces) or a dict of choices."""
        if self.is_arch_space:
            return self.space.decode(self.idx_to_codes(idx))
        cols = self.values_of(idx)
        return [{n: cols[n][i] for n in self.names} for i in range(len(idx))]

    def batch_input(self, idx: np.ndarray) -> Any:
        """The batch objective's view: the space's compact codes, or a DataFrame of choices (dict spaces)."""
        return self.idx_to_codes(idx) if self.is_arch_space else pd.DataFrame(self.values_of(idx))

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, idx: np.ndarray, constraints: np.ndarray | None = None) -> Evaluation:
        """Objective values, constraint values and feasibility of each candidate row (`constraints`: their
        values when already known, from `screen`)."""
        n = len(idx)
        if n == 0:
            return Evaluation.concat([], self.n_obj, self.n_con)
        if self.batched:
            if self._pass_columns:
                wanted = self.objective_names + ([] if constraints is not None else
                                                 [c.name for c in self.constraints if c.fn is None])
                out = self.objective.evaluate_batch(self.batch_input(idx), columns=wanted)
            else:
                out = self.objective.evaluate_batch(self.batch_input(idx))
            values, columns = self._batch_values(out, n)
            cons = constraints if constraints is not None else \
                self._constraint_values(idx, columns, None, batch=True)
            named = _named_columns(columns, n)
        else:
            cands = self.candidates(idx)
            outs = [self.objective(c) for c in cands]
            rows = [self._scalar_values(o) for o in outs]
            values = np.array([r[0] for r in rows], dtype=np.float64).reshape(n, self.n_obj)
            columns = [r[1] for r in rows]
            cons = constraints if constraints is not None else \
                self._constraint_values(idx, columns, cands, batch=False)
            named = None
            if all(isinstance(c, Mapping) for c in columns):
                keys = [k for k in columns[0] if all(k in c for c in columns[1:])]
                named = _named_columns({k: [c[k] for c in columns] for k in keys}, n)
        ok = np.isfinite(values).all(1)
        feasible = ok & self.feasible_by(cons) if self.n_con else ok.copy()
        return Evaluation(values, cons, feasible, ok, named)

    def screen(self, idx: np.ndarray) -> np.ndarray | None:
        """Constraint values (N, n_con) of candidate rows without running the objective, or None when some
        constraint's value only the objective gives.

        A value comes from the constraint's `fn`, else from the objective's `evaluate_constraints(batch, names)`
        (a mapping or DataFrame by name; batch objectives such as `PredictorObjective`, where latency and
        memory cost a fraction of accuracy), else (arch spaces, `macs`, `params`) from counting."""
        if not self.n_con:
            return np.empty((len(idx), 0))
        wanted = [c.name for c in self.constraints if c.fn is None]
        columns: Any = None
        if wanted:
            fn = getattr(self.objective, "evaluate_constraints", None) if self.batched else None
            if fn is not None:
                columns = fn(self.batch_input(idx), wanted)
            missing = {w for w in wanted if columns is None or w not in columns}
            if missing and not (self.is_arch_space and missing <= set(_COUNTED)):
                return None
        if self.batched:
            return self._constraint_values(idx, columns, None, batch=True)
        return self._constraint_values(idx, [{}] * len(idx), self.candidates(idx), batch=False)

    def feasible_by(self, cons: np.ndarray) -> np.ndarray:
        """(N,) bool: every constraint value within its bound."""
        upper = np.array([c.upper for c in self.constraints], dtype=np.float64)
        return (cons <= upper[None, :]).all(1)

    def violation(self, cons: np.ndarray) -> np.ndarray:
        """(N,) how far outside the bounds, summed relative to each bound (0 when feasible)."""
        upper = np.array([c.upper for c in self.constraints], dtype=np.float64)
        scale = np.where(np.abs(upper) > 0, np.abs(upper), 1.0)
        return (np.maximum(cons - upper[None, :], 0) / scale).sum(1)

    def _scalar_values(self, out: Any) -> tuple[list[float], Mapping[str, Any] | None]:
        if isinstance(out, Mapping):
            missing = [k for k in self.objective_names if k not in out]
            if missing:
                raise SearchError(f"objective returned {sorted(out)} but directions name {missing}")
            return [float(out[k]) for k in self.objective_names], out
        if isinstance(out, (int, float, np.number)) and not isinstance(out, bool):
            vals = [float(out)]
        elif isinstance(out, (tuple, list, np.ndarray)):
            vals = [float(v) for v in np.asarray(out, dtype=np.float64).ravel()]
        else:
            raise SearchError(f"objective must return a float, a tuple or a mapping, got {type(out).__name__}")
        if len(vals) != self.n_obj:
            raise SearchError(f"objective returned {len(vals)} value(s) but directions list {self.n_obj}")
        return vals, None

    def _batch_values(self, out: Any, n: int) -> tuple[np.ndarray, Mapping[str, Any] | None]:
        if isinstance(out, (pd.DataFrame, Mapping)):
            missing = [k for k in self.objective_names if k not in out]
            if missing:
                raise SearchError(f"evaluate_batch returned columns {list(out.keys())} but directions name {missing}")
            values = np.column_stack([np.asarray(out[k], dtype=np.float64) for k in self.objective_names])
            columns = out
        else:
            values = np.asarray(out, dtype=np.float64)
            values = values.reshape(n, -1) if values.ndim <= 1 else values
            columns = None
        if values.shape != (n, self.n_obj):
            raise SearchError(f"evaluate_batch must give ({n}, {self.n_obj}) values, got shape {values.shape}")
        return values, columns

    def _constraint_values(self, idx: np.ndarray, columns: Any, cands: list[Any] | None, batch: bool) -> np.ndarray:
        n = len(idx)
        out = np.empty((n, self.n_con), dtype=np.float64)
        for j, c in enumerate(self.constraints):
            if c.fn is not None:
                if batch:
                    out[:, j] = np.asarray(c.fn(self.batch_input(idx)), dtype=np.float64).reshape(n)
                else:
                    out[:, j] = [float(c.fn(x)) for x in cands]
            elif batch and columns is not None and c.name in columns:
                out[:, j] = np.asarray(columns[c.name], dtype=np.float64)
            elif not batch and all(col is not None and c.name in col for col in columns):
                out[:, j] = [float(col[c.name]) for col in columns]
            elif self.is_arch_space and c.name in _COUNTED:
                from supernet import counting

                fn = counting.count_macs if c.name == "macs" else counting.count_params
                out[:, j] = fn(self.space, self.idx_to_codes(idx))
            else:
                raise SearchError(
                    f"constraint '{c.name}' has no value: return it from the objective (a mapping or "
                    f"DataFrame column named '{c.name}') or give Constraint('{c.name}', upper, fn=...)"
                    + ("; on an arch space 'macs' and 'params' are counted for you" if self.is_arch_space else ""))
        return np.where(np.isnan(out), np.inf, out)


def _parse_directions(directions: Any, names: Any) -> tuple[list[str], list[str]]:
    if isinstance(directions, str):
        directions = [directions]
    if isinstance(directions, Mapping):
        names, dirs = list(directions), list(directions.values())
    elif isinstance(directions, Sequence) and directions:
        dirs = list(directions)
        if names is not None:
            names = list(names)
            if len(names) != len(dirs):
                raise SearchError(f"objective.names lists {len(names)} names but directions list {len(dirs)}")
        else:
            names = ["value"] if len(dirs) == 1 else [f"value_{i}" for i in range(len(dirs))]
    else:
        raise SearchError("directions must be 'minimize'/'maximize', a list of them, or a dict name -> direction")
    for name, d in zip(names, dirs):
        if d not in DIRECTIONS:
            raise SearchError(f"directions['{name}'] = {d!r}; allowed: {', '.join(DIRECTIONS)}")
    if len(set(names)) != len(names):
        raise SearchError(f"objective names must be unique, got {names}")
    return [str(n) for n in names], dirs


def _parse_constraints(constraints: Any) -> list[Constraint]:
    if constraints is None:
        return []
    if isinstance(constraints, Mapping):
        items = [c if isinstance(c, Constraint) else Constraint(str(k), c) for k, c in constraints.items()]
    elif isinstance(constraints, Sequence) and not isinstance(constraints, str):
        items = list(constraints)
    else:
        raise SearchError("constraints must be a dict name -> upper bound or a list of Constraint")
    out = []
    for c in items:
        if not isinstance(c, Constraint):
            raise SearchError(f"constraints: expected Constraint(name, upper, fn=None), got {c!r}")
        try:
            upper = float(c.upper)
        except (TypeError, ValueError):
            raise SearchError(f"constraints['{c.name}']: the upper bound must be a number, got {c.upper!r}") from None
        if math.isnan(upper):
            raise SearchError(f"constraints['{c.name}']: the upper bound must be a number, got NaN")
        out.append(Constraint(c.name, upper, c.fn))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise SearchError(f"constraint names must be unique, got {names}")
    return out
