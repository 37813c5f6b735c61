import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Every test (and every process it starts) sees the shipped device profiles only, never a profile this machine
# measured into ./runs/profiles (e.g. by `make demo`); tests that measure one point this at their own folder.
os.environ["NAS_PROFILES_DIR"] = tempfile.mkdtemp(prefix="nas-test-profiles-")

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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on the shared 2-core test machines two threads contend and run several times slower.

    Opt in per file with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: on a 2-core machine shared with other jobs, two spinning OpenMP
    threads make the larger (224 px, ImageNet-width) nets several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
