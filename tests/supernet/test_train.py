"""Training on the tiny recipe (digits, a few steps per phase): run folder, exact resume, SIGKILL, refusals, CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from supernet import SearchSpace
from supernet.config import ConfigError, ExperimentConfig
from supernet._io import sha256_file
from supernet.errors import CheckpointError
from supernet.run import load_run
from supernet.train import phase_extremes, sample_subnets, step_subnets, train

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "experiments" / "tiny.yaml"


def _weights(run_dir):
    return torch.load(Path(run_dir) / "supernet.pt", weights_only=True)


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def tiny():
    return ExperimentConfig.from_yaml(TINY)


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    """One uninterrupted tiny run, shared by the tests below."""
    return train(tiny, tmp_path_factory.mktemp("runs") / "tiny", progress=False, log=lambda m: None)


def test_run_folder_holds_the_contract_files(tiny_run, tiny):
    for name in ("experiment.yaml", "checkpoint.pt", "supernet.pt", "run.json", "metrics.csv"):
        assert (tiny_run / name).is_file(), name
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["finished"] and info["steps"] == 11 and set(info["final"]) == {"largest", "smallest"}
    run = load_run(tiny_run)
    assert run.space.name == "tiny-mbv3" and run.config == tiny and run.data == tiny.data
    assert not run.net.training and len(run.checkpoint_hash) == 64
    lines = (tiny_run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("kind,phase,epoch,step,global_step,loss")
    assert sum(line.startswith("train,") for line in lines) == 11
    assert sum(line.startswith("eval,") for line in lines) == 2 * len(tiny.phases) + 2


def test_training_changes_the_weights_it_should(tiny_run, tiny):
    from supernet import Supernet

    torch.manual_seed(tiny.seed)
    init = Supernet(load_run(tiny_run).space).state_dict()
    trained = _weights(tiny_run)
    assert not torch.equal(init["stem.0.weight"], trained["stem.0.weight"])
    # kernel transforms are trained once elastic kernel is unlocked
    assert not torch.equal(trained["blocks.0.kernel_transforms.7to5"], torch.eye(25))


def test_resumed_run_ends_with_identical_weights(tiny_run, tiny, tmp_path):
    out = tmp_path / "resumed"
    train(tiny, out, progress=False, stop_at_step=5, log=lambda m: None)  # last checkpoint: step 4, mid-phase
    assert not (out / "supernet.pt").exists()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["progress"] == {"phase": 1, "epoch": 0, "step": 1, "global_step": 4}
    assert ckpt["optimizer"] is not None and ckpt["teacher"] is not None
    with pytest.raises(CheckpointError, match="no finished weights.*--from-checkpoint"):
        load_run(out)
    mid = load_run(out, from_checkpoint=True)  # the stopped run's latest weights, evaluable as they are
    assert mid.info.extra["checkpoint_progress"]["global_step"] == 4
    assert mid.checkpoint_hash == sha256_file(out / "checkpoint.pt")
    _assert_same_weights(mid.net.state_dict(), ckpt["model"])
    cli = subprocess.run([sys.executable, "-m", "nas", "eval", str(out), "--arch", "smallest", "--bn-images", "32",
                          "--from-checkpoint"], cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["checkpoint_step"] == 4
    train(tiny, out, resume=True, progress=False, log=lambda m: None)
    _assert_same_weights(_weights(out), _weights(tiny_run))
    assert (out / "metrics.csv").read_text() .count("\ntrain,") == 11  # no duplicated rows after resuming


def test_checkpoint_of_another_config_is_refused(tiny_run, tiny, tmp_path):
    changed = replace(tiny, phases=(replace(tiny.phases[0], lr=0.5),) + tiny.phases[1:])
    with pytest.raises(CheckpointError, match="another config"):
        train(changed, tiny_run, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        train(tiny, tiny_run, progress=False)


def test_sigkilled_training_resumes_and_finishes(tiny_run, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nas", "train", str(TINY), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (out / "checkpoint.pt").exists() and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "supernet.pt").exists()
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["finished"] is True
    _assert_same_weights(_weights(out), _weights(tiny_run))


def test_cli_eval_prints_json_lines(tiny_run, tmp_path):
    arch = SearchSpace.preset("tiny-mbv3").sample(1)
    (tmp_path / "a.json").write_text(arch.to_json())
    base = [sys.executable, "-m", "nas", "eval", str(tiny_run), "--bn-images", "64"]
    out = subprocess.run(base + ["--arch", "random:2", "--split", "test"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 2 and all(0 <= r["top1"] <= 1 and r["split"] == "test" for r in rows)
    one = subprocess.run(base + ["--arch", str(tmp_path / "a.json")], cwd=ROOT, capture_output=True, text=True)
    assert json.loads(one.stdout)["arch"] == arch.to_dict()
    bad = subprocess.run(base + ["--arch", "random:x"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "random:N" in bad.stderr
    unfinished = subprocess.run([sys.executable, "-m", "nas", "eval", str(tmp_path), "--arch", "largest"],
                                cwd=ROOT, capture_output=True, text=True)
    assert unfinished.returncode == 2 and "run.json" in unfinished.stderr


def test_sandwich_sampling_and_phase_extremes(tiny):
    space = SearchSpace.preset("tiny-mbv3")
    phase = tiny.phases[-1]
    import numpy as np

    archs = sample_subnets(space, phase, 28, np.random.default_rng(0))
    largest, smallest = phase_extremes(space, phase, 28)
    assert len(archs) == 3 and archs[:2] == [largest, smallest] and largest == space.largest(28)
    kernel_only = sample_subnets(space, tiny.phases[1], 24, np.random.default_rng(0))[0]
    assert set(kernel_only.e) == {6} and set(kernel_only.d) == {4} and kernel_only.r == 24


def test_resolution_per_subnet_puts_the_sandwich_at_its_resolutions(tiny):
    """AttentiveNAS: the largest at the largest resolution, the smallest at the smallest, the others drawn each;
    per step (the default) every subnet of a step shares one drawn resolution."""
    import numpy as np

    space = SearchSpace.preset("tiny-mbv3")
    phase = replace(tiny.phases[-1], subnets_per_step=6, resolution_per="subnet")
    seen = set()
    for seed in range(20):
        archs = step_subnets(space, phase, np.random.default_rng(seed))
        assert archs[0] == space.largest(28) and archs[1] == space.smallest(20)
        seen |= {a.r for a in archs[2:]}
    assert seen == set(space.resolutions)
    for seed in range(5):
        per_step = step_subnets(space, tiny.phases[-1], np.random.default_rng(seed))
        assert len({a.r for a in per_step}) == 1 and per_step[0] == space.largest(per_step[0].r)


def _joint_recipe(steps: int, subnets: int, **phase) -> ExperimentConfig:
    """One all-elastic phase with in-place distillation on digits (BigNAS-style), `steps` steps."""
    return ExperimentConfig.from_dict({
        "name": "joint", "space": "tiny-mbv3", "seed": 0,
        "data": {"name": "digits", "val_size": 100, "seed": 0},
        "train": {"batch_size": 32, "optimizer": "adamw", "kd_weight": 1.0, "checkpoint_every": 100,
                  "log_every": 1, "bn_calib_images": 64, "eval_images": 64, "final_eval": False, "device": "cpu"},
        "phases": [{"name": "joint", "steps_per_epoch": steps, "lr": 0.001, "kernel": [3, 5, 7], "depth": [2, 3, 4],
                    "expand": [3, 4, 6], "subnets_per_step": subnets, "sandwich": True, "kd_source": "inplace",
                    **phase}]})


def test_resolution_per_subnet_trains_each_subnet_at_its_own_resolution(tmp_path, monkeypatch):
    import supernet.train as tr

    cfg = _joint_recipe(steps=3, subnets=4, resolution_per="subnet")
    fed = []
    real_forward = tr.Supernet.forward
    monkeypatch.setattr(tr.Supernet, "forward",
                        lambda self, x: (fed.append((self.active, x.shape[-1])), real_forward(self, x))[1])
    train(cfg, tmp_path / "own-r", progress=False, log=lambda m: None)
    steps = [fed[i:i + 4] for i in range(0, 12, 4)]  # the training passes (evaluation comes after)
    assert all(arch.r == r for step in steps for arch, r in step)
    assert all(step[0][1] == 28 and step[1][1] == 20 for step in steps)
    assert len({r for step in steps for _, r in step}) > 2  # the random subnets at their own resolutions


def test_without_kernel_transform_the_smaller_kernels_are_plain_centres(tmp_path):
    """The ablation switch: the transformation matrices stay at identity while everything else trains."""
    cfg = ExperimentConfig.from_dict({
        "name": "no-kt", "space": "tiny-mbv3", "seed": 0,
        "data": {"name": "digits", "val_size": 100, "seed": 0},
        "train": {"batch_size": 32, "optimizer": "adamw", "checkpoint_every": 100, "bn_calib_images": 64,
                  "eval_images": 64, "final_eval": False, "device": "cpu", "kernel_transform": False},
        "phases": [{"name": "kernel", "steps_per_epoch": 3, "lr": 0.01, "kernel": [3, 5, 7], "subnets_per_step": 3,
                    "sandwich": True}]})
    assert cfg.config_hash() != replace(cfg, train=replace(cfg.train, kernel_transform=True)).config_hash()
    out = train(cfg, tmp_path / "no-kt", progress=False, log=lambda m: None)
    w = _weights(out)
    transforms = [k for k in w if "kernel_transforms" in k]
    assert transforms and all(torch.equal(w[k], torch.eye(len(w[k]))) for k in transforms)
    torch.manual_seed(cfg.seed)  # the weights training started from
    start = __import__("supernet").Supernet(load_run(out).space).state_dict()
    assert not torch.equal(w["blocks.0.dw_weight"], start["blocks.0.dw_weight"])


@pytest.mark.parametrize("patch,match", [
    ({"phases": []}, "phases"),
    ({"phases": [{"name": "a", "resolution_per": "batch"}]}, r"phases\[0\]\.resolution_per.*step, subnet"),
    ({"phases": [{"name": "a", "lr": -1}]}, r"phases\[0\]\.lr"),
    ({"phases": [{"name": "a", "sandwich": True}]}, r"phases\[0\]\.subnets_per_step"),
    ({"phases": [{"name": "a", "kernel": "big"}]}, r"phases\[0\]\.kernel"),
    ({"phases": [{"name": "a", "kd_source": "self"}]}, r"phases\[0\]\.kd_source.*teacher, inplace"),
    ({"phases": [{"name": "a", "kd_source": "inplace"}]}, r"phases\[0\]\.kd_source.*sandwich"),
    ({"train": {"optimizer": "lion"}}, "train.optimizer"),
    ({"train": {"batch": 3}}, "unknown key.*batch"),
    ({"data": {"name": "mnist"}}, "data.name"),
])
def test_bad_experiment_names_the_field(patch, match):
    base = {"name": "x", "space": "tiny-mbv3", "phases": [{"name": "a"}]}
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict({**base, **patch})


def test_config_hash_ignores_where_the_data_lives(tiny):
    assert tiny.with_data_dir("/elsewhere").config_hash() == tiny.config_hash()
    assert replace(tiny, seed=1).config_hash() != tiny.config_hash()
    assert ExperimentConfig.from_dict(__import__("yaml").safe_load(tiny.to_yaml())) == tiny


def test_config_hash_of_earlier_runs_unchanged_by_kd_source(tiny):
    """kd_source came later: at its default it stays out of the hash, so earlier runs still resume."""
    inplace = replace(tiny, phases=tuple(replace(p, kd_source="inplace") if p.sandwich else p for p in tiny.phases))
    assert inplace.config_hash() != tiny.config_hash()
    # the hash that the GPU run of this recipe wrote to its run.json before the field existed
    gpu = ExperimentConfig.from_yaml(ROOT / "experiments" / "fashion-mnist-full-gpu.yaml")
    assert gpu.config_hash() == "0958c3615be322da90a55457fdaafb3890e1d0885ac7049a675b9839ad0c6311"
    assert ExperimentConfig.from_dict(__import__("yaml").safe_load(inplace.to_yaml())) == inplace
    own = replace(tiny, phases=tuple(replace(p, resolution_per="subnet") for p in tiny.phases))
    assert own.config_hash() != tiny.config_hash()
    assert ExperimentConfig.from_dict(__import__("yaml").safe_load(own.to_yaml())) == own


def test_inplace_distillation_uses_the_steps_largest_subnet(tmp_path, monkeypatch):
    """BigNAS-style: every subnet trained from step 0, no frozen teacher; the sandwich's largest learns from the
    labels and its detached logits (same step, same batch) are the soft targets of the others."""
    import supernet.train as tr

    cfg = _joint_recipe(steps=2, subnets=3)
    calls, active = [], []
    real_kd, real_set = tr.distillation_loss, tr.Supernet.set_active
    monkeypatch.setattr(tr, "FrozenTeacher", lambda *a, **k: pytest.fail("in-place KD built a frozen teacher"))
    monkeypatch.setattr(tr.Supernet, "set_active", lambda self, arch: (active.append(arch), real_set(self, arch))[1])

    def spy(student, teacher):
        calls.append((active[-1], teacher.requires_grad))
        return real_kd(student, teacher)

    monkeypatch.setattr(tr, "distillation_loss", spy)
    out = train(cfg, tmp_path / "joint", progress=False, log=lambda m: None)
    space = load_run(out).space
    # 2 steps x (smallest + 1 random) distilled; never the largest, and the targets carry no gradient
    assert len(calls) == 4 and all(not grad for _, grad in calls)
    assert all(arch != space.largest(arch.r) for arch, _ in calls)
    assert any(arch == space.smallest(arch.r) for arch, _ in calls)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["teacher"] is None


def test_shipped_recipes_load():
    """Each shipped recipe loads, trains a teacher first and unlocks every elastic choice of its space by the end
    (progressive shrinking in six or more phases, or the demo's teacher then one all-elastic phase)."""
    from supernet import SearchSpace

    for name in ("tiny", "fashion-mnist", "fashion-mnist-full", "fashion-mnist-full-gpu"):
        cfg = ExperimentConfig.from_yaml(ROOT / "experiments" / f"{name}.yaml")
        space = SearchSpace.preset(cfg.space)
        first, last = cfg.phases[0], cfg.phases[-1]
        assert cfg.name == name and len(cfg.phases) >= 2
        assert first.kernel is None and first.depth is None and first.expand is None
        assert tuple(last.kernel) == space.kernel_choices and tuple(last.depth) == space.depth_choices
        assert tuple(last.expand) == space.expand_choices
    assert len(ExperimentConfig.from_yaml(ROOT / "experiments" / "fashion-mnist-full.yaml").phases) >= 6


def test_without_a_progress_bar_a_log_line_shows_the_run_is_alive(tiny, tmp_path, monkeypatch):
    import supernet.train as training

    monkeypatch.setattr(training, "HEARTBEAT_S", 0.0)
    lines: list[str] = []
    train(tiny, tmp_path / "beat", progress=False, stop_at_step=2, log=lines.append)
    beats = [m for m in lines if m.startswith("phase teacher epoch 1/1 step")]
    assert len(beats) == 2 and "(global 2): loss " in beats[1] and "img/s" in beats[1]


def test_from_checkpoint_needs_a_checkpoint_of_the_same_config(tiny_run, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_run / "run.json", bare / "run.json")
    with pytest.raises(CheckpointError, match="no checkpoint.pt"):
        load_run(bare, from_checkpoint=True)
    ckpt = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "config_hash": "other"}, bare / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="another config"):
        load_run(bare, from_checkpoint=True)


def test_frozen_teacher_normalises_each_resolution_with_its_own_statistics():
    """Soft targets at 20 px use BN statistics gathered at 20 px (not the 28 px ones), whichever resolution came
    before, and building them leaves the global RNG alone (a resumed run draws the same dropout masks)."""
    import copy

    from supernet import Supernet
    from supernet.evaluate import recalibrate_bn
    from supernet.train import FrozenTeacher

    space = SearchSpace.preset("tiny-mbv3")
    torch.manual_seed(0)
    net = Supernet(space)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(64, 1, 28, 28, generator=g) * 2 + 0.5
    calib = [(images[:32], torch.zeros(32)), (images[32:], torch.zeros(32))]
    teacher = FrozenTeacher.copy_of(net, calib, 64)
    x20, x28 = torch.randn(8, 1, 20, 20, generator=g), torch.randn(8, 1, 28, 28, generator=g)

    def reference(r, x):
        ref = copy.deepcopy(net)
        recalibrate_bn(ref, space.largest(r), calib, 64)
        with torch.no_grad(), ref.activated(space.largest(r)):
            return ref(x)

    torch.manual_seed(5)
    rng_before = torch.get_rng_state()
    first20 = teacher(x20)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.allclose(first20, reference(20, x20), atol=1e-5)
    assert torch.allclose(teacher(x28), reference(28, x28), atol=1e-5)
    assert torch.equal(teacher(x20), first20)  # back to 20 px: its own statistics again
    stale = copy.deepcopy(net)  # what the teacher did before: 28 px statistics for every resolution
    recalibrate_bn(stale, space.largest(28), calib, 64)
    with torch.no_grad():
        assert not torch.allclose(stale(x20), first20, atol=1e-3)
    assert not any(p.requires_grad for p in teacher.net.parameters()) and not teacher.net.training
