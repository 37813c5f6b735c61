"""The experiment store: runs, devices, experiments, exports and jobs in one SQL database (SQLAlchemy 2).

SQLite with WAL in `runs/nas.db` by default, PostgreSQL (or anything SQLAlchemy speaks) by URL. Optuna keeps its
studies in the same database (its own tables; ours are prefixed `nas_`), so one URL is all a deployment sets.
Only `nas/` touches the store; the API turns rows into response schemas, never returns rows themselves.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Integer, String, Text,
                        create_engine, event, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

JOB_KINDS = ("search", "export")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("succeeded", "failed", "cancelled")


INT32_MAX = 2**31 - 1  # PostgreSQL's `integer`; SQLite's is wider, so the same bound is a CHECK on both


def _bounded(table: str, *int_columns: str, names: tuple[str, ...] = ()) -> tuple[CheckConstraint, ...]:
    """CHECK constraints that make SQLite refuse what PostgreSQL's column types refuse: integers beyond 32 bits,
    strings longer than their VARCHAR(255)."""
    return (*(CheckConstraint(f"{c} BETWEEN 0 AND {INT32_MAX}", name=f"{table}_{c}_range") for c in int_columns),
            *(CheckConstraint(f"length({c}) <= 255", name=f"{table}_{c}_length") for c in names))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A short random id (12 hex digits) for experiments, exports and jobs."""
    return uuid.uuid4().hex[:12]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Job(Base):
    """One unit of work run by a worker process. Recorded (queued) before any process starts it."""

    __tablename__ = "nas_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    interruptions: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Experiment(Base):
    """A search experiment: its spec (as `nas search` reads it), where its outputs go, and what it found so far."""

    __tablename__ = "nas_experiments"
    __table_args__ = _bounded("nas_experiments", "budget", "trials_done", names=("name", "study_name"))
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    out_dir: Mapped[str] = mapped_column(Text)
    study_name: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("nas_jobs.id"), nullable=True)
    budget: Mapped[int] = mapped_column(Integer, default=0)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    best: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Export(Base):
    """An export bundle of one arch for one device; `bundle_dir` lies under the store's exports folder."""

    __tablename__ = "nas_exports"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(255))
    arch: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    experiment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("nas_jobs.id"), nullable=True)
    bundle_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Device(Base):
    """A device profile added through the service (uploaded or fitted); shipped profiles are not copied here."""

    __tablename__ = "nas_devices"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))  # uploaded | fitted
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Run(Base):
    """A trained supernet registered with the store (runs are also discovered from the runs folder's run.json)."""

    __tablename__ = "nas_runs"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    space: Mapped[str] = mapped_column(String(255), default="")
    checkpoint_hash: Mapped[str] = mapped_column(String(128), default="")
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the worker writing progress
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite files get WAL and a generous busy timeout; servers get pre-ping."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Store:
    """The service's database: a session factory over the tables above, and Optuna's storage on the same URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create(self) -> "Store":
        """Create missing tables (idempotent)."""
        Base.metadata.create_all(self.engine)
        return self

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    def optuna_storage(self) -> Any:
        """Optuna's RDB storage on this store's database (its tables beside ours)."""
        import optuna

        kwargs: dict[str, Any] = {}
        if make_url(self.url).get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        return optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs)

    # ------------------------------------------------------------------ jobs
    def add_job(self, s: Session, kind: str, target_id: str) -> Job:
        """Record a queued job in session `s` (committed with the caller's transaction)."""
        if kind not in JOB_KINDS:
            raise ValueError(f"job kind must be one of {JOB_KINDS}, got {kind!r}")
        job = Job(id=new_id(), kind=kind, target_id=target_id, status="queued", message="queued")
        s.add(job)
        s.flush()  # rows that reference the job (experiments, exports) are inserted after it
        return job

    def job(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def jobs(self, status: str | None = None) -> list[Job]:
        with self.session() as s:
            q = select(Job).order_by(Job.created_at)
            if status:
                q = q.where(Job.status == status)
            return list(s.scalars(q))

    def update_job(self, job_id: str, **values: Any) -> Job | None:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            for k, v in values.items():
                setattr(job, k, v)
            return job


__all__ = ["Store", "Job", "Experiment", "Export", "Device", "Run", "Base", "make_engine", "new_id", "utcnow",
           "JOB_KINDS", "JOB_STATES", "ACTIVE_STATES", "FINAL_STATES"]
