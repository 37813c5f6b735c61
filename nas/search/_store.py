"""Persistent trials: an Optuna study in RDB storage (SQLite file, PostgreSQL URL) that a search resumes from.

Trials of a batch objective are written in one batch after each evaluated batch (an in-memory search copied
to durable storage); a trial of a per-candidate objective is created RUNNING in storage before it runs and
completed after, so a crash leaves it RUNNING, and the next start marks it FAIL and runs it again.
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.search._problem import Evaluation, Problem, SearchError

PARAMS_ATTR = "nas:params"
FEASIBLE_ATTR = "nas:feasible"
SOURCE_ATTR = "nas:source"
CON_PREFIX = "nas:c:"

# The bulk writer and reader below use Optuna's private RDB schema (optuna.storages._rdb.models), tested at this
# schema revision: the head of Optuna 3.2 through 5.0 (pyproject pins optuna to the 4.x-5.0 releases). A storage at
# any other revision takes Optuna's public API instead: slower, the same trials.
TESTED_SCHEMA = "v3.2.0.a"


def bulk_schema(storage: optuna.storages.BaseStorage) -> bool:
    """True when `storage` is an RDB storage whose schema revision is the one the bulk writer is tested against."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        return False
    try:
        return storage.get_current_version() == TESTED_SCHEMA
    except Exception:  # noqa: BLE001 - an Optuna without this method or table: not the tested schema
        return False


def open_storage(storage: Any) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (`sqlite:///x.db`, `postgresql://...`), a `.db` file path, or a storage."""
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    text = str(storage)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"sqlite:///{path}"
    kwargs = {"connect_args": {"timeout": 60}} if text.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(text, engine_kwargs=kwargs)
    except Exception as exc:  # sqlalchemy: bad URL, missing driver, unreachable server
        raise SearchError(f"storage '{storage}' cannot be opened: {type(exc).__name__}: {exc}") from None


@dataclass
class History:
    """Finished trials: choice-index rows and their evaluation, in trial order."""

    idx: np.ndarray
    evaluation: Evaluation
    source: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.idx)


class TrialStore:
    """Where a search's finished trials live: in memory, and in an Optuna study when `storage` is given."""

    def __init__(self, problem: Problem, storage: Any = None, study_name: str | None = None):
        self.problem = problem
        self.study: optuna.Study | None = None
        self.distributions = {n: CategoricalDistribution(c) for n, c in zip(problem.names, problem.choices)}
        if storage is not None:
            self._open(open_storage(storage), study_name or "search")

    # ---------------------------------------------------------------- opening and resuming
    def _open(self, storage: optuna.storages.BaseStorage, name: str) -> None:
        p = self.problem
        directions = [optuna.study.StudyDirection.MAXIMIZE if d == "maximize" else
                      optuna.study.StudyDirection.MINIMIZE for d in p.directions]
        study = optuna.create_study(storage=storage, study_name=name, directions=p.directions, load_if_exists=True)
        if list(study.directions) != directions:
            raise SearchError(f"study '{name}' exists with {len(study.directions)} objective(s) "
                              f"{[d.name.lower() for d in study.directions]}; this search has {p.directions}: "
                              f"use another study name")
        stored = study.user_attrs.get(PARAMS_ATTR)
        if stored is None:
            study.set_user_attr(PARAMS_ATTR, p.names)
            study.set_user_attr("nas:objectives", p.objective_names)
        elif stored != p.names:
            raise SearchError(f"study '{name}' was made for another space ({len(stored)} parameters); "
                              f"use another study name")
        if study.metric_names is None:  # where optuna-dashboard (and study.trials_dataframe) find the objectives' names
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(p.objective_names)
        self.storage, self.study_id = storage, storage.get_study_id_from_name(name)
        self.bulk = bulk_schema(storage)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a crashed process
            tid = storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
            storage.set_trial_state_values(tid, TrialState.FAIL)
        self.study = study

    def history(self) -> History:
        """Finished trials already in storage (empty for a new or in-memory study)."""
        p = self.problem
        if self.study is None:
            return History(np.empty((0, len(p.names)), np.int64), Evaluation.concat([], p.n_obj, p.n_con))
        idx, values, cons, source = self._read_trials()
        # judged again against this search's bounds: a resumed experiment may have changed them
        uppers = np.array([c.upper for c in p.constraints], dtype=np.float64)
        feasible = (cons <= uppers[None, :]).all(1) if p.n_con else np.ones(len(idx), bool)
        return History(idx, Evaluation(values, cons, feasible, np.ones(len(idx), bool)), source)

    def _read_trials(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        p = self.problem
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        idx = np.array([p.idx_from_params(t.params) for t in trials], dtype=np.int64).reshape(-1, len(p.names))
        values = np.array([t.values for t in trials], dtype=np.float64).reshape(-1, p.n_obj)
        cons = np.zeros((len(trials), p.n_con))
        for i, t in enumerate(trials):
            cons[i] = [t.user_attrs.get(CON_PREFIX + c, math.inf) for c in p.constraint_names]
        return idx, values, cons, [t.user_attrs.get(SOURCE_ATTR, p.source) for t in trials]

    # ---------------------------------------------------------------- writing
    def _attrs(self, cons: np.ndarray, feasible: bool, source: str) -> tuple[dict, dict[str, float]]:
        names = self.problem.constraint_names
        uppers = [c.upper for c in self.problem.constraints]
        user = {FEASIBLE_ATTR: bool(feasible), SOURCE_ATTR: source}
        user.update({CON_PREFIX + n: float(v) for n, v in zip(names, cons)})
        # Optuna's convention: feasible when every constraint value is <= 0.
        constraints = {n: float(min(v - u, 1e300)) for n, v, u in zip(names, cons, uppers)}
        return user, constraints

    def _params(self, row: np.ndarray) -> dict[str, Any]:
        return {n: c[j] for n, c, j in zip(self.problem.names, self.problem.choices, row)}

    def add(self, idx: np.ndarray, ev: Evaluation, source: str) -> None:
        """Write a batch of finished trials in one go (one transaction on an RDB storage)."""
        if self.study is None or not len(idx):
            return
        if self.bulk:
            self._add_rdb(idx, ev, source)
            return
        trials = []
        for i in range(len(idx)):
            user, constraints = self._attrs(ev.constraints[i], ev.feasible[i], source)
            ok = bool(ev.ok[i])
            trials.append(optuna.trial.create_trial(
                state=TrialState.COMPLETE if ok else TrialState.FAIL,
                values=[float(v) for v in ev.values[i]] if ok else None,
                params=self._params(idx[i]), distributions=self.distributions,
                user_attrs=user, constraints=constraints))
        self.study.add_trials(trials)

    def _add_rdb(self, idx: np.ndarray, ev: Evaluation, source: str) -> None:
        # Optuna's add_trials commits once per trial and queries once per parameter (~2-50 trials/s here
        # with 45 parameters); the same rows in Optuna's own tables, inserted in one transaction, go ~100x
        # faster. The study row is locked for the transaction, as Optuna does, so trial numbers stay unique.
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models
        from sqlalchemy import func, insert, orm

        names, dists = self.problem.names, self.distributions
        dist_json = {n: distribution_to_json(d) for n, d in dists.items()}
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # Optuna stores naive UTC
        with orm.Session(self.storage.engine) as session, session.begin():
            models.StudyModel.find_or_raise_by_id(self.study_id, session, for_update=True)
            n0 = session.query(func.count(models.TrialModel.trial_id)).filter(
                models.TrialModel.study_id == self.study_id).scalar()
            rows = [{"number": n0 + i, "study_id": self.study_id,
                     "state": TrialState.COMPLETE if ev.ok[i] else TrialState.FAIL,
                     "datetime_start": now, "datetime_complete": now} for i in range(len(idx))]
            result = session.execute(insert(models.TrialModel.__table__).returning(
                models.TrialModel.__table__.c.trial_id, sort_by_parameter_order=True), rows)
            ids = [r[0] for r in result]
            params, values, user, system = [], [], [], []
            for i, tid in enumerate(ids):
                for n, c, j in zip(names, self.problem.choices, idx[i]):
                    params.append({"trial_id": tid, "param_name": n, "param_value": float(j),
                                   "distribution_json": dist_json[n]})
                if ev.ok[i]:
                    for o, v in enumerate(ev.values[i]):
                        stored, vtype = models.TrialValueModel.value_to_stored_repr(float(v))
                        values.append({"trial_id": tid, "objective": o, "value": stored, "value_type": vtype})
                u, cons = self._attrs(ev.constraints[i], ev.feasible[i], source)
                user += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in u.items()]
                system += [{"trial_id": tid, "key": f"constraints:{k}", "value_json": json.dumps(v)}
                           for k, v in cons.items()]
            for model, batch in ((models.TrialParamModel, params), (models.TrialValueModel, values),
                                 (models.TrialUserAttributeModel, user),
                                 (models.TrialSystemAttributeModel, system)):
                if batch:
                    session.execute(insert(model.__table__), batch)

    def begin(self, row: np.ndarray) -> int | None:
        """Create one RUNNING trial in storage for a candidate about to be evaluated; its id."""
        if self.study is None:
            return None
        template = optuna.trial.FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None, datetime_start=None, datetime_complete=None,
            params=self._params(row), distributions=self.distributions, user_attrs={}, system_attrs={},
            intermediate_values={}, trial_id=-1)
        return self.storage.create_new_trial(self.study_id, template_trial=template)

    def finish(self, trial_id: int | None, ev: Evaluation | None, source: str) -> None:
        """Complete (or, with `ev` None or non-finite, fail) a trial made by `begin`."""
        if trial_id is None:
            return
        storage = self.storage
        if ev is None or not ev.ok[0]:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            return
        user, constraints = self._attrs(ev.constraints[0], ev.feasible[0], source)
        for k, v in user.items():
            storage.set_trial_user_attr(trial_id, k, v)
        for k, v in constraints.items():
            storage.set_trial_system_attr(trial_id, f"constraints:{k}", v)
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [float(v) for v in ev.values[0]])


def study_trials(storage: optuna.storages.RDBStorage, study_name: str) -> list[dict[str, Any]] | None:
    """The finished trials of a study in RDB storage, read in four queries (Optuna's `get_trials` builds one
    object per trial and takes seconds for thousands): per trial its number, params (external values), objective
    values in order, feasibility and constraint values. None when there is no such study."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    if not bulk_schema(storage):
        return _study_trials_public(storage, study_name)
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models
    from sqlalchemy import orm, select

    T, P, V, U = models.TrialModel, models.TrialParamModel, models.TrialValueModel, models.TrialUserAttributeModel
    with orm.Session(storage.engine) as s:
        done = select(T.trial_id).where(T.study_id == study_id, T.state == TrialState.COMPLETE)
        rows = {tid: {"trial": number, "params": {}, "values": {}, "feasible": True, "constraints": {}}
                for tid, number in s.execute(select(T.trial_id, T.number).where(T.trial_id.in_(done)))}
        dists: dict[str, Any] = {}
        for tid, name, value, dist in s.execute(select(P.trial_id, P.param_name, P.param_value,
                                                       P.distribution_json).where(P.trial_id.in_(done))):
            if tid not in rows:  # finished after the first query (the search is writing): left for the next read
                continue
            if name not in dists:
                dists[name] = json_to_distribution(dist)
            rows[tid]["params"][name] = dists[name].to_external_repr(value)
        for tid, objective, value, vtype in s.execute(select(V.trial_id, V.objective, V.value,
                                                             V.value_type).where(V.trial_id.in_(done))):
            if tid in rows:
                rows[tid]["values"][objective] = V.stored_repr_to_value(value, vtype)
        for tid, key, value in s.execute(select(U.trial_id, U.key, U.value_json).where(U.trial_id.in_(done))):
            if tid not in rows:
                continue
            if key == FEASIBLE_ATTR:
                rows[tid]["feasible"] = bool(json.loads(value))
            elif key.startswith(CON_PREFIX):
                rows[tid]["constraints"][key[len(CON_PREFIX):]] = float(json.loads(value))
    out = sorted(rows.values(), key=lambda r: r["trial"])
    for r in out:
        r["values"] = [r["values"][k] for k in sorted(r["values"])]
    return out


def _study_trials_public(storage: optuna.storages.BaseStorage, study_name: str) -> list[dict[str, Any]]:
    """`study_trials` through Optuna's public API, for a schema the bulk reader is not tested against."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [{"trial": t.number, "params": dict(t.params), "values": list(t.values),
             "feasible": bool(t.user_attrs.get(FEASIBLE_ATTR, True)),
             "constraints": {k[len(CON_PREFIX):]: float(v) for k, v in t.user_attrs.items()
                             if k.startswith(CON_PREFIX)}}
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
