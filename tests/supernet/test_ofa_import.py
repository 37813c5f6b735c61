"""once-for-all's released supernets load into ours: OFA's own `OFAMobileNetV3` (random weights, BN statistics set
per subnet as OFA does) saved as OFA releases it, imported, gives the same logits through the supernet and through
`extract`; bad files are refused with one line and leave no run folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from supernet import SearchSpace, Supernet
from supernet.errors import CheckpointError
from supernet.ofa import canonical_ofa_key, convert_ofa_state_dict, read_ofa_checkpoint
from supernet.run import import_ofa_run, load_run, read_run_info

ofa_networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks",
                                   reason="the ofa package (dev dependency) is not installed")
ROOT = Path(__file__).resolve().parents[2]
WIDTHS = {"ofa-mbv3-w1.0": 1.0, "ofa-mbv3-w1.2": 1.2}


def ofa_net(width: float, seed: int = 0):
    torch.manual_seed(seed)
    net = ofa_networks.OFAMobileNetV3(n_classes=1000, dropout_rate=0, width_mult=width, ks_list=[3, 5, 7],
                                      expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    for m in net.modules():  # weights a trained net could have: BN affine away from 1/0, logits not tiny
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    torch.nn.init.normal_(net.classifier.linear.weight, 0, 0.5)
    return net.eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def w10_state() -> dict:
    return ofa_net(1.0).state_dict()


def set_bn_as_ofa(net, images: torch.Tensor) -> None:
    """OFA's `set_running_statistics`: the exact mean/var of each BN input over `images`, for the active subnet."""
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics

    set_running_statistics(net, [(images, torch.zeros(len(images), dtype=torch.long))])
    net.eval()


def subnets(space: SearchSpace) -> list:
    rs = [160, 176, 192, 208, 224]
    return [space.largest(224), space.smallest(160)] + [a.__class__(a.ks, a.e, a.d, rs[i % len(rs)])
                                                        for i, a in enumerate(space.sample_many(4, 7))]


@pytest.mark.parametrize("name", list(WIDTHS))
def test_imported_supernet_gives_ofa_logits_for_every_subnet(name, tmp_path):
    space = SearchSpace.preset(name)
    theirs = ofa_net(WIDTHS[name])
    gen = torch.Generator().manual_seed(1)
    for i, arch in enumerate(subnets(space)):
        theirs.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        x = torch.randn(4, 3, arch.r, arch.r, generator=gen)
        set_bn_as_ofa(theirs, x)
        if i == 0:  # the whole import once (OFA's released layout); the other subnets through the same conversion
            torch.save({"state_dict": theirs.state_dict()}, tmp_path / "ofa.pth.tar")
            run = load_run(import_ofa_run(tmp_path / "ofa.pth.tar", name, tmp_path / "run"))
            ours = run.net
            assert read_run_info(run.run_dir).imported["format"] == "state_dict"
        else:
            ours = Supernet(space)
            ours.load_state_dict(convert_ofa_state_dict(theirs.state_dict(), space))
            ours.eval()
        with torch.no_grad():
            want = theirs(x)
            with ours.activated(arch):
                got = ours(x)
            static = ours.extract(arch).eval()(x)
        assert want.abs().max() > 0.1  # a comparison of meaningful logits
        assert (got - want).abs().max() <= 1e-4, arch
        assert (static - want).abs().max() <= 1e-4, arch


def test_bare_and_legacy_state_dicts_import_the_same_weights(tmp_path, w10_state):
    space = SearchSpace.preset("ofa-mbv3-w1.0")
    state = w10_state
    want = convert_ofa_state_dict(state, space)
    # the older names OFA's load_state_dict still renames: mobile_inverted_conv, one level of bn/conv nesting
    legacy = {}
    for k, v in state.items():
        k = k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k
        legacy[k.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")] = v
    assert legacy.keys() != state.keys()
    torch.save(state, tmp_path / "bare.pth")
    torch.save({"state_dict": legacy, "epoch": 0}, tmp_path / "legacy.pth")
    for f, fmt in (("bare.pth", "bare state dict"), ("legacy.pth", "state_dict (legacy key names)")):
        got, _, read_fmt = read_ofa_checkpoint(tmp_path / f)
        assert read_fmt == fmt
        converted = convert_ofa_state_dict(got, space)
        assert converted.keys() == want.keys()
        assert all(torch.equal(converted[k], want[k]) for k in want)
    assert canonical_ofa_key("blocks.3.mobile_inverted_conv.depth_conv.bn.bn.weight") == \
        "blocks.3.conv.depth_conv.bn.weight"


class NeedsCode:  # a pickle that needs this module's code to load
    pass


def test_bad_files_are_refused_naming_the_key_and_leave_no_run_folder(tmp_path, w10_state):
    good = tmp_path / "w10.pth"
    torch.save({"state_dict": w10_state}, good)
    w12 = {k: v for k, v in w10_state.items() if k != "first_conv.conv.weight"}
    torch.save({**w12, "first_conv.conv.weight": torch.zeros(24, 3, 3, 3)}, tmp_path / "w12.pth")
    (tmp_path / "truncated.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "garbage.pth").write_bytes(b"not a torch file at all")
    torch.save({"state_dict": w10_state, "extra": NeedsCode()}, tmp_path / "code.pth")
    missing = dict(w10_state)
    missing.pop("blocks.7.conv.depth_conv.se.fc.reduce.weight")
    torch.save(missing, tmp_path / "missing.pth")
    torch.save({**w10_state, "blocks.99.conv.point_linear.conv.conv.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    cases = {"w12.pth": "first_conv.conv.weight' has shape [24, 3, 3, 3], ofa-mbv3-w1.0 needs [16, 3, 3, 3]",
             "truncated.pth": "not a complete torch file", "garbage.pth": "not a complete torch file",
             "code.pth": "needs code to load", "missing.pth": "missing key 'blocks.7.conv.depth_conv.se.fc.reduce",
             "extra.pth": "unexpected key 'blocks.99."}
    for name, message in cases.items():
        out = tmp_path / f"run-{name}"
        with pytest.raises(CheckpointError) as err:
            import_ofa_run(tmp_path / name, "ofa-mbv3-w1.0", out)
        assert message in str(err.value) and "\n" not in str(err.value), name
        assert not out.exists() and not list(tmp_path.glob(f".run-{name}*")), name


def test_the_cli_refuses_with_one_line_and_exit_2(tmp_path):
    """A released w1.2 file imported as w1.0: exit 2, the key named, nothing written."""
    torch.save({"state_dict": ofa_net(1.2).state_dict()}, tmp_path / "w12.pth")
    r = subprocess.run([sys.executable, "-m", "nas", "run", "import-ofa", str(tmp_path / "w12.pth"), "--space",
                        "ofa-mbv3-w1.0", "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "key 'first_conv.conv.weight' has shape [24, 3, 3, 3]" in lines[0], r.stderr
    assert not (tmp_path / "run").exists()
    with pytest.raises(CheckpointError, match="ofa-mbv3-w1.0, ofa-mbv3-w1.2"):
        convert_ofa_state_dict({}, SearchSpace.preset("tiny-mbv3"))


def test_an_imported_run_is_finished_never_trained_or_resumed(tmp_path, w10_state):
    torch.save({"state_dict": w10_state}, tmp_path / "w10.pth")
    run_dir = import_ofa_run(tmp_path / "w10.pth", "ofa-mbv3-w1.0", tmp_path / "run")
    info = read_run_info(run_dir)
    assert info.finished and info.imported["dataset"] == "ImageNet" and info.imported["classes"] == 1000
    assert info.data["name"] == "imagenet" and info.preprocessing["mean"] == [0.485, 0.456, 0.406]
    assert len(info.imported["source_sha256"]) == 64 and info.imported["phases"] == []
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        load_run(run_dir, from_checkpoint=True)
    with pytest.raises(CheckpointError, match="already exists"):
        import_ofa_run(tmp_path / "w10.pth", "ofa-mbv3-w1.0", run_dir)
    from supernet.config import ExperimentConfig
    from supernet.train import train

    with pytest.raises(CheckpointError, match="imported from once-for-all"):
        train(ExperimentConfig.from_yaml(ROOT / "experiments" / "tiny.yaml"), run_dir, resume=True, progress=False)
