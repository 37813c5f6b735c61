"""Data parallel training under torchrun (2 CPU processes, gloo) matches one process at the same global batch."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from supernet import SearchSpace
from supernet.config import ExperimentConfig
from supernet.train import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipe(tmp_path):
    space = SearchSpace.preset("tiny-mbv3").to_dict()
    space["dropout"] = 0.0  # dropout masks are per process; everything else is drawn identically
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    exp = {"name": "ddp", "space": str(tmp_path / "space.yaml"), "seed": 0,
           "data": {"name": "digits", "val_size": 100, "seed": 0},
           "train": {"batch_size": 32, "checkpoint_every": 2, "bn_calib_images": 32, "eval_images": 32,
                     "final_eval": False, "kd_weight": 1.0},
           "phases": [{"name": "teacher", "steps_per_epoch": 3, "lr": 0.02, "kd_weight": 0},
                      {"name": "kernel", "steps_per_epoch": 2, "lr": 0.01, "kernel": [3, 5, 7],
                       "subnets_per_step": 2}]}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_match_one_at_the_same_global_batch(recipe, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "nas", "train", str(recipe),
           "--out", str(tmp_path / "two"), "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    config = ExperimentConfig.from_yaml(recipe)
    train(config, tmp_path / "one", progress=False, log=lambda m: None)

    two = torch.load(tmp_path / "two" / "supernet.pt", weights_only=True)
    one = torch.load(tmp_path / "one" / "supernet.pt", weights_only=True)
    torch.manual_seed(0)
    from supernet import Supernet

    init = Supernet(SearchSpace.from_yaml(tmp_path / "space.yaml")).state_dict()
    names = [k for k in one if k.endswith("weight") and "bn" not in k and one[k].is_floating_point()]
    moved = sum(float((one[k] - init[k]).norm() ** 2) for k in names) ** 0.5
    apart = sum(float((two[k] - one[k]).norm() ** 2) for k in names) ** 0.5
    assert moved > 0
    # Same data, subnets and augmentation; only BN batch statistics (per process: half the batch) differ.
    assert apart < 0.1 * moved, (apart, moved)
