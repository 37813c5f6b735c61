import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory) -> Path:
    """A finished run of experiments/tiny.yaml (digits, seconds), trained once per test session.

    Treat it as read-only: tests that write into a run folder copy it first (shutil.copytree)."""
    from supernet.config import ExperimentConfig
    from supernet.train import train

    out = tmp_path_factory.mktemp("shared") / "tiny"
    train(ExperimentConfig.from_yaml(ROOT / "experiments" / "tiny.yaml"), out, progress=False, log=lambda _m: None)
    return out


@pytest.fixture(scope="session")
def tiny_run(trained_tiny_run) -> Path:
    """The trained tiny run (tests/nas overrides this name with a stand-in run that skips training)."""
    return trained_tiny_run
