"""Queuing work from the API: the row and its job land together, the runner is woken, the answer points at the row."""

from __future__ import annotations

import pytest
from fastapi import Response

from nas.api.errors import NotFound
from nas.api.queue import get_with_job, list_with_jobs, queue_job
from nas.service.store import Experiment, Export, Store


class _Runner:
    woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_queue_job_records_row_and_job_then_answers_202(tmp_path):
    store, runner = Store(f"sqlite:///{tmp_path / 'nas.db'}").create(), _Runner()
    first, second = Response(), Response()
    exp = queue_job(store, runner, first, "search", lambda job: Experiment(
        id="exp1", name="demo", spec={}, out_dir="/x", study_name="demo-exp1", job_id=job.id, budget=3), "/experiments")
    ex = queue_job(store, runner, second, "export", lambda job: Export(
        run_id="r", device="stm32f746", arch={}, job_id=job.id, options={}), "/exports")
    assert (exp.id, exp.status, exp.url, first.headers["Location"]) == ("exp1", "queued", "/experiments/exp1",
                                                                         "/experiments/exp1")
    assert ex.url == second.headers["Location"] == f"/exports/{ex.id}" and runner.woken == 2
    for model, row_id, kind in [(Experiment, "exp1", "search"), (Export, ex.id, "export")]:
        row, job = get_with_job(store, model, row_id, model.__name__.lower())
        assert (row.id, job.id, job.kind, job.target_id, job.status) == (row_id, row.job_id, kind, row_id, "queued")
        assert [(r.id, j.id) for r, j in list_with_jobs(store, model)] == [(row_id, job.id)]
    with pytest.raises(NotFound, match="export 'nope' not found"):
        get_with_job(store, Export, "nope", "export")
    store.close()
