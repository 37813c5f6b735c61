"""Data parallel training under torchrun (2 CPU processes, gloo) computes what one process computes for the same
global batch split in two: the mean of the two halves' gradients.

BatchNorm normalises each process's half with that half's statistics (as DDP without SyncBN does), so the exact
one-process twin is "two half-batches, gradients averaged", computed here step by step; a one-process run on
the whole batch differs by BN's statistics alone.
"""

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from supernet import SearchSpace, Supernet
from supernet.config import ExperimentConfig
from supernet.data import load_splits, make_loader

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
STEPS, LR, BATCH = 2, 0.05, 32


@pytest.fixture
def recipe(tmp_path):
    space = SearchSpace.preset("tiny-mbv3").to_dict()
    space["dropout"] = 0.0  # dropout masks are drawn per process
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    exp = {"name": "ddp", "space": str(tmp_path / "space.yaml"), "seed": 0,
           "data": {"name": "digits", "val_size": 100, "seed": 0, "augment": False},
           "train": {"batch_size": BATCH, "momentum": 0.0, "weight_decay": 0.0, "label_smoothing": 0.1,
                     "bn_calib_images": 32, "eval_images": 32, "final_eval": False, "device": "cpu"},
           "phases": [{"name": "teacher", "steps_per_epoch": STEPS, "lr": LR, "kd_weight": 0, "resolutions": [28]}]}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def _reference(config: ExperimentConfig, space: SearchSpace) -> dict:
    """Plain SGD (the phase's cosine LR) on the mean of the two half-batches' gradients, largest net at 28 px."""
    splits = load_splits(config.data)
    torch.manual_seed(config.seed)
    net = Supernet(space).to(memory_format=torch.channels_last).train()  # as the trainer lays it out
    loader = make_loader(splits.train, BATCH, shuffle=True, seed=config.seed, epoch=0, max_batches=STEPS,
                         drop_last=True)
    for step, (x, y) in enumerate(loader):
        lr = LR * 0.5 * (1 + math.cos(math.pi * step / STEPS))
        net.zero_grad()
        for half in (slice(0, BATCH // 2), slice(BATCH // 2, BATCH)):
            xh = x[half].contiguous(memory_format=torch.channels_last)
            (F.cross_entropy(net(xh), y[half], label_smoothing=0.1) / 2).backward()
        with torch.no_grad():
            for p in net.parameters():
                if p.grad is not None:
                    p -= lr * p.grad
    return {k: v for k, v in net.state_dict().items() if k in dict(net.named_parameters())}


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_two_processes_match_one_process_on_the_same_global_batch(recipe, tmp_path):
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "nas", "train", str(recipe),
           "--out", str(tmp_path / "two"), "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    two = torch.load(tmp_path / "two" / "supernet.pt", weights_only=True)
    config = ExperimentConfig.from_yaml(recipe)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process: oneDNN's channels_last sums depend on the thread count
    try:
        reference = _reference(config, SearchSpace.from_yaml(tmp_path / "space.yaml"))
    finally:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    init = Supernet(SearchSpace.from_yaml(tmp_path / "space.yaml")).state_dict()
    moved = max(float((reference[k] - init[k]).abs().max()) for k in reference)
    assert moved > 1e-3  # training did move the weights
    for k, ref in reference.items():
        assert torch.allclose(two[k], ref, atol=1e-4, rtol=1e-3), (k, float((two[k] - ref).abs().max()))


def test_more_processes_than_gpus_is_refused_clearly(monkeypatch):
    from supernet import distributed as ddp
    from supernet.config import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"local rank 1 .* 1 CUDA device.*--nproc-per-node 1 or fewer"):
        ddp.setup("auto")
