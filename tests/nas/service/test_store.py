"""The store on SQLite (WAL) and on a real PostgreSQL server: tables, jobs, and Optuna's storage beside ours."""

from __future__ import annotations

import optuna
import pytest
from sqlalchemy import inspect, text

from nas.service.jobs import JobStateError, cancel_job, resume_job
from nas.service.store import Experiment, Store


def test_tables_and_job_round_trip(db_url):
    store = Store(db_url).create()
    with store.session() as s:
        job = store.add_job(s, "search", "exp1")
        s.add(Experiment(id="exp1", name="demo", spec={"devices": ["stm32f746"]}, out_dir="/x", study_name="nas-exp1",
                         job_id=job.id, budget=10))
    assert store.job(job.id).status == "queued"
    store.update_job(job.id, status="running", progress=0.5, message="5 of 10 trials")
    got = store.job(job.id)
    assert (got.status, got.progress, got.message) == ("running", 0.5, "5 of 10 trials")
    with store.session() as s:
        assert s.get(Experiment, "exp1").spec == {"devices": ["stm32f746"]}
    assert {"nas_jobs", "nas_experiments", "nas_exports", "nas_devices", "nas_runs"} <= set(inspect(store.engine).get_table_names())
    store.create()  # idempotent
    store.close()


def test_bad_job_kind_is_refused(db_url):
    store = Store(db_url).create()
    with pytest.raises(ValueError, match="job kind must be one of"):
        with store.session() as s:
            store.add_job(s, "mine-bitcoin", "x")
    assert store.jobs() == []


def test_sqlite_store_uses_wal(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'deep' / 'nas.db'}").create()
    with store.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert (tmp_path / "deep" / "nas.db").is_file()


def test_optuna_storage_shares_the_database(db_url):
    store = Store(db_url).create()
    study = optuna.create_study(storage=store.optuna_storage(), study_name="nas-abc", directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(params={"x": 1}, distributions={"x": optuna.distributions.CategoricalDistribution([1, 2])},
                                              values=[0.9, 3.0]))
    tables = set(inspect(store.engine).get_table_names())
    assert {"studies", "trials", "nas_jobs"} <= tables
    again = optuna.load_study(study_name="nas-abc", storage=Store(db_url).optuna_storage())
    assert len(again.trials) == 1 and again.trials[0].values == [0.9, 3.0]


def test_cancel_and_resume_states(db_url):
    store = Store(db_url).create()
    with store.session() as s:
        queued = store.add_job(s, "search", "a")
        running = store.add_job(s, "search", "b")
    store.update_job(running.id, status="running")
    assert cancel_job(store, queued.id).status == "cancelled"
    job = cancel_job(store, running.id)
    assert job.status == "running" and job.cancel_requested  # the worker stops itself between trials
    with pytest.raises(JobStateError, match="only interrupted, failed or cancelled"):
        resume_job(store, running.id)
    again = resume_job(store, queued.id)
    assert again.status == "queued" and not again.cancel_requested
    with pytest.raises(KeyError):
        cancel_job(store, "nope")
