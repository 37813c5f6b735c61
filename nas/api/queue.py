"""The rows that work is queued for (experiments, exports) and their jobs: recorded together, read together."""

from __future__ import annotations

from typing import Callable, TypeVar

from fastapi import Response
from sqlalchemy import select

from nas.api.errors import NotFound
from nas.api.schemas import Accepted
from nas.service.jobs import JobRunner
from nas.service.store import Experiment, Export, Job, Store

Row = TypeVar("Row", Experiment, Export)


def queue_job(store: Store, runner: JobRunner, response: Response, kind: str, make_row: Callable[[Job], Row],
              url_prefix: str) -> Accepted:
    """Record `make_row(job)` and its queued job in one transaction, wake the runner, and answer 202 with its URL.

    The job is in the store before the runner may see it, so a restarted server finds and recovers it.
    """
    with store.session() as s:
        job = store.add_job(s, kind, "")
        row = make_row(job)
        s.add(row)
        s.flush()
        job.target_id = row.id
        row_id, status = row.id, job.status
    runner.wake()
    url = f"{url_prefix}/{row_id}"
    response.headers["Location"] = url
    return Accepted(id=row_id, status=status, url=url)


def get_with_job(store: Store, model: type[Row], row_id: str, what: str) -> tuple[Row, Job]:
    """The row `row_id` of `model` and its job; 404 naming `what` when there is none."""
    with store.session() as s:
        row = s.get(model, row_id)
        if row is None:
            raise NotFound(what, row_id)
        job = s.get(Job, row.job_id)
        # a worker writes its results, then its status: read the status first, then the results, so a finished
        # job never shows without them (SQLite reads outside an explicit transaction see each commit as it lands)
        s.refresh(row)
        return row, job


def list_with_jobs(store: Store, model: type[Row]) -> list[tuple[Row, Job]]:
    """Every row of `model`, oldest first, each with its job (results read after statuses, as in get_with_job)."""
    with store.session() as s:
        pairs = [(row, s.get(Job, row.job_id)) for row in s.scalars(select(model).order_by(model.created_at))]
        for row, _ in pairs:
            s.refresh(row)
    return pairs
