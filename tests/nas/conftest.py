"""Fixtures for the service's tests: a real PostgreSQL server on loopback, and real `nas serve` processes.

PostgreSQL: `initdb` into a temporary folder and `postgres -k <dir> -p <free port> -h 127.0.0.1`, run as the
`postgres` user (or `nobody`) when the suite runs as root, since PostgreSQL refuses to run as root. Tests that
need it skip only when the server binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that runs PostgreSQL as an unprivileged user, and that user's name."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", user, "--"], user
        return ["su", user, "-s", "/bin/sh", "-c"], user
    pytest.skip("running as root and no unprivileged user to run PostgreSQL as")


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the session; yields its base URL (without a database name)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")
    prefix, user = _as_user()
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if user:
        import pwd

        pw = pwd.getpwnam(user)
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "nas", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, env=env, cwd=base)
    port = free_port()
    log = open(base / "postgres.log", "wb")
    proc = subprocess.Popen([*prefix, str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p", str(port),
                             "-h", "127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base)
    import psycopg2

    url = f"postgresql+psycopg2://nas@127.0.0.1:{port}"
    for _ in range(300):
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="nas", dbname="postgres").close()
            break
        except psycopg2.OperationalError:
            if proc.poll() is not None:
                raise RuntimeError("postgres exited: " + (base / "postgres.log").read_text()[-2000:])
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("postgres did not accept connections: " + (base / "postgres.log").read_text()[-2000:])
    yield {"url": url, "port": port}
    # pg_ctl, not a signal: runuser does not pass every signal on to the server it started
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                   capture_output=True, env=env, cwd=base)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    import psycopg2

    name = "t_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(host="127.0.0.1", port=pg_server["port"], user="nas", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{pg_server['url']}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """Each store test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs' / 'nas.db'}"
    return request.getfixturevalue("pg_url")


@dataclass
class Server:
    """A `nas serve` process on 127.0.0.1 and a free port."""

    url: str
    proc: subprocess.Popen
    runs_dir: Path
    log_path: Path
    token: str | None = None
    extra: dict = field(default_factory=dict)

    def client(self, token: str | None = "default"):
        import httpx

        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(runs_dir: Path, *, db: str | None = None, token: str | None = None, workers: int = 2,
                 env: dict | None = None, args: list[str] | None = None) -> Server:
    import httpx

    port = free_port()
    runs_dir.mkdir(parents=True, exist_ok=True)
    log_path = runs_dir.parent / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "nas", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--runs-dir", str(runs_dir), "--workers", str(workers), "--log-level", "warning", *(args or [])]
    if db:
        cmd += ["--db", db]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    full_env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NAS_PROFILES_DIR": str(runs_dir / "profiles")})
    if token:
        full_env["NAS_API_TOKEN"] = token  # never on the command line, where `ps` shows it
    full_env.update(env or {})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=runs_dir.parent, env=full_env)
    server = Server(f"http://127.0.0.1:{port}", proc, runs_dir, log_path, token)
    for _ in range(600):  # up to a minute on a loaded machine
        if proc.poll() is not None:
            raise RuntimeError(f"nas serve exited with {proc.returncode}:\n{server.log()[-3000:]}")
        try:
            if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"nas serve did not answer /healthz:\n{server.log()[-3000:]}")


@pytest.fixture
def serve(tmp_path):
    """A factory of servers on this test's runs folder; every server started is stopped afterwards."""
    started: list[Server] = []

    def factory(**kwargs) -> Server:
        server = start_server(kwargs.pop("runs_dir", tmp_path / "runs"), **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server (token `secret`) for the read-only and bad-input tests of a module."""
    server = start_server(tmp_path_factory.mktemp("api") / "runs", token="secret")
    yield server
    server.stop()


def make_run(run_dir: Path, seed: int = 0, with_accuracy: bool = True) -> Path:
    """A finished run folder of the tiny recipe (digits, tiny-mbv3) with untrained weights: everything the service
    reads from a run (run.json, experiment.yaml, supernet.pt with its hash) without minutes of training."""
    import torch

    from supernet import Supernet
    from supernet._io import sha256_file
    from supernet.config import ExperimentConfig
    from supernet.data import load_splits
    from supernet.run import RunInfo, write_run_info
    from supernet.train import build_space

    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = ROOT / "experiments" / "tiny.yaml"
    config = ExperimentConfig.from_yaml(recipe)
    space = build_space(config, load_splits(config.data))
    torch.manual_seed(seed)
    torch.save(Supernet(space).state_dict(), run_dir / "supernet.pt")
    shutil.copy(recipe, run_dir / "experiment.yaml")
    write_run_info(run_dir, RunInfo(run_dir.name, space.to_dict(), config.data.to_dict(), finished=True,
                                    checkpoint_hash=sha256_file(run_dir / "supernet.pt"),
                                    config_hash=config.config_hash()))
    if with_accuracy:
        import numpy as np

        from predictors.accuracy import fit_predictor, save_accuracy_predictor

        # a stand-in for measured top-1 (more capacity, higher accuracy): the service only stores and serves it
        codes = space.sample_codes(60, np.random.default_rng(seed))
        from supernet.counting import count_params

        y = 0.5 + 0.4 * np.log(count_params(space, codes)) / np.log(count_params(space, codes)).max()
        save_accuracy_predictor(fit_predictor(space, codes, y, sha256_file(run_dir / "supernet.pt"), model="rf"),
                                run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "tiny")
