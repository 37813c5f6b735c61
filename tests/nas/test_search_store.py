"""The bulk trial writer (Optuna's private RDB schema) and its fallback (Optuna's public API) store the same trials."""

from __future__ import annotations

import optuna
import pytest

import nas.search._store as store_mod
from nas.search import run
from nas.search._store import TESTED_SCHEMA, study_trials
from supernet import SearchSpace
from supernet.counting import count_macs

SPACE = SearchSpace.preset("tiny-mbv3")


class Macs:
    def evaluate_batch(self, codes):
        return -count_macs(SPACE, codes)


def _search(db, calls):
    res = run(SPACE, Macs(), directions="maximize", budget=24, seed=3, strategy="evolution",
              constraints={"macs": 9e6}, storage=f"sqlite:///{db}", study_name="s")
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    trials = optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)
    stored = [(t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in trials]
    return res, stored, study_trials(storage, "s"), calls


@pytest.fixture
def spy(monkeypatch):
    calls = []
    bulk = store_mod.TrialStore._add_rdb
    monkeypatch.setattr(store_mod.TrialStore, "_add_rdb", lambda self, *a: (calls.append(len(a[0])), bulk(self, *a)))
    return calls


def test_the_installed_optuna_has_the_tested_schema(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    assert storage.get_current_version() == TESTED_SCHEMA and store_mod.bulk_schema(storage)


def test_another_schema_falls_back_to_the_public_api_with_the_same_trials(tmp_path, spy, monkeypatch):
    res, bulk_rows, bulk_read, calls = _search(tmp_path / "bulk.db", spy)
    assert sum(calls) == 24  # the fast path wrote every trial
    spy.clear()
    monkeypatch.setattr(store_mod, "TESTED_SCHEMA", "v0.0.0.untested")
    res2, public_rows, public_read, calls2 = _search(tmp_path / "public.db", spy)
    assert calls2 == []  # nothing went through the private schema
    assert len(public_rows) == 24 and public_rows == bulk_rows
    assert public_read == bulk_read and len(public_read) == sum(1 for r in bulk_rows if r[1].name == "COMPLETE")
    assert res2.trials.drop(columns=["datetime"], errors="ignore").equals(
        res.trials.drop(columns=["datetime"], errors="ignore"))
