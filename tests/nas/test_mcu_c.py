"""nas.export.mcu_c: generated int8 C inference against onnxruntime's int8 model, its arena against the SRAM
predictor's plan, and (where the toolchains exist) its Cortex-M7 build and QEMU run against the host build.

Two random-weight subnets of a micro space with odd widths and an odd resolution run every kernel size with both
strides, every expand ratio, squeeze-excite (also in the first block), hard-swish and ReLU, residual adds, pooling
and the classifier; each is generated, compiled once and checked on random images."""

from __future__ import annotations

import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.export.formats import write_onnx
from nas.export.mcu_c import CHECK_TOLERANCE_LSB, int8_reference, quantize_input, read_graph, write_c_bundle
from nas.export.mcu_c.build import cortex_m7_sizes, host_check, missing_tools, qemu_check
from nas.export.mcu_c.codegen import subnet_plan, write_c_folder
from nas.export.mcu_c.graph import f32_round, float32_parts
from nas.export.quantize import quantize_int8
from predictors import McuCostModel
from predictors.mcu_memory import PlanError, arena_plan
from predictors.ops import arch_ops
from supernet import ArchConfig, SearchSpace, Supernet

pytestmark = pytest.mark.usefixtures("one_thread")

MICRO = {"name": "micro-c", "in_channels": 3, "num_classes": 5,
         "stem": {"width": 5, "kernel": 3, "stride": 2, "act": "h_swish"},
         "first_block": {"width": 5, "kernel": 3, "stride": 1, "act": "relu", "se": True},
         "stages": [{"width": 7, "stride": 2, "act": "relu", "se": False},
                    {"width": 7, "stride": 1, "act": "h_swish", "se": True},
                    {"width": 11, "stride": 2, "act": "h_swish", "se": True}],
         "final_expand": 13, "feature_mix": 17, "kernel_choices": [3, 5, 7], "expand_choices": [3, 4, 6],
         "depth_choices": [1, 2], "resolutions": [13], "channel_divisor": 1}
# Between them: kernels 3/5/7 at stride 2 (slots 0 and 4) and at stride 1, expand 3/4/6, residual blocks.
ARCHS = {"a": {"ks": [3, 5, 7, 3, 5, 7], "e": [3, 4, 6, 6, 4, 3], "d": [2, 2, 2], "r": 13},
         "b": {"ks": [7, 3, 3, 5, 3, 7], "e": [6, 3, 4, 3, 6, 4], "d": [2, 1, 2], "r": 13}}
IMAGES = 6


@pytest.fixture(scope="module")
def micro() -> SearchSpace:
    return SearchSpace.from_dict(MICRO)


def _randomise(net: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> None:
    """Random BN affines and biases, with BN statistics taken on `x`: a fresh supernet's are identities and zeros
    (which would hide kernel bugs), and random statistics would saturate a deep net."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.3, generator=gen)
                m.reset_running_stats()
                m.momentum = None
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.normal_(0, 0.3, generator=gen)
        net.train()
        net(x)
        net.eval()


def int8_model(space: SearchSpace, arch: ArchConfig, folder: Path, seed: int = 0) -> tuple[Path, np.ndarray]:
    """A random-weight subnet of `space` as int8 ONNX (calibrated on random images), and test images."""
    gen = torch.Generator().manual_seed(seed)
    net = Supernet(space).extract(arch).eval()
    x = torch.randn(16 + IMAGES, space.in_channels, arch.r, arch.r, generator=gen)
    _randomise(net, x[:16], gen)
    folder.mkdir(parents=True, exist_ok=True)
    write_onnx(net, x[:2], folder / "model.onnx")
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", [x[:8], x[8:16]], "image", "int8")
    return folder / "model.int8.onnx", x[16:].numpy()


def needs(*steps: str) -> None:
    missing = missing_tools(*steps)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


@pytest.fixture(scope="module")
def built(micro, tmp_path_factory) -> dict[str, tuple[Path, object, np.ndarray]]:
    """Each micro arch generated into c/ (compiled once each by the first test that checks it)."""
    needs("host")
    out = {}
    for key, d in ARCHS.items():
        arch = micro.validate(ArchConfig.from_dict(d))
        root = tmp_path_factory.mktemp(f"micro-{key}")
        path, images = int8_model(micro, arch, root)
        graph = read_graph(__import__("onnx").load(str(path)))
        expected = int8_reference(path, images, graph)
        program = write_c_folder(graph, subnet_plan(micro, arch), root / "c", quantize_input(images, graph), expected)
        out[key] = (root / "c", program, expected)
        models[key] = (path, images)
    return out


models: dict[str, tuple[Path, np.ndarray]] = {}  # the int8 models `built` made, by arch key


# ------------------------------------------------------------------------------------------------ numerics
@pytest.mark.parametrize("key", sorted(ARCHS))
def test_generated_c_equals_onnxruntime_int8_on_every_op(built, key):
    folder, program, expected = built[key]
    check = host_check(folder, IMAGES, CHECK_TOLERANCE_LSB)
    out = (folder / "build" / "host" / "check.out").read_text().splitlines()[:IMAGES]
    got = np.array([[int(v) for v in line.split(":")[1].split()] for line in out])
    assert CHECK_TOLERANCE_LSB == 0 and check.passed
    np.testing.assert_array_equal(got, expected)  # bit for bit, every logit of every image
    assert check.equal == check.outputs == IMAGES * MICRO["num_classes"]
    assert len(set(map(tuple, expected))) > 1  # the images give different outputs: the check is not vacuous
    kinds = {(p.op.type, p.op.kernel, p.op.stride) for p in program.placed}
    for k in (3, 5, 7):
        assert ("depthwise", k, 1) in kinds or key == "b"
    assert {"conv", "pointwise", "depthwise", "pool", "lut", "scale", "add"} <= {t for t, _, _ in kinds}


def test_every_kernel_and_stride_is_covered(built):
    kinds = {(p.op.type, p.op.kernel, p.op.stride) for _, program, _ in built.values() for p in program.placed}
    assert {("depthwise", k, s) for k in (3, 5, 7) for s in (1, 2)} <= kinds
    widths = {p.op.cout for _, program, _ in built.values() for p in program.placed}
    assert {5, 7, 11, 13, 17} <= widths  # odd channel counts


def test_check_fails_when_an_output_differs(built, tmp_path):
    folder = tmp_path / "c"
    shutil.copytree(built["a"][0], folder, ignore=shutil.ignore_patterns("build"))
    text = (folder / "test_vectors.h").read_text()
    head, tail = text.split("nas_test_expected", 1)
    first = re.search(r"-?\d+", tail.split("{", 2)[2])
    value = int(first.group())
    tail = tail.replace(first.group(), str(value + 20 if value < 100 else value - 20), 1)
    (folder / "test_vectors.h").write_text(head + "nas_test_expected" + tail)
    check = host_check(folder, IMAGES, CHECK_TOLERANCE_LSB)
    assert not check.passed and check.max_diff_lsb >= 19


def test_float32_constants_are_exact_mantissas_and_shifts():
    for real in (1e-9, 3.1e-5, 0.0123, 0.5, 0.999999, 1.0, 3.7, 1234.5, -0.75, -77.0):
        m, shift = float32_parts(real)
        assert abs(m) < 2 ** 24 and 0 <= shift <= 62
        assert Fraction(m, 2 ** shift) == Fraction(float(np.float32(real)))  # exactly the float32 value
    rng = np.random.default_rng(0)
    for v in rng.normal(0, 1e4, 2000).astype(np.float64):  # f32_round is numpy's float64 -> float32 rounding
        assert f32_round(Fraction(float(v))) == Fraction(float(np.float32(v)))
    assert f32_round(Fraction(2 ** 24 + 1)) == 2 ** 24 and f32_round(Fraction(2 ** 24 + 3)) == 2 ** 24 + 4  # ties to even


# ------------------------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("name", ["tiny-mbv3", "ofa-mbv3-w1.0"])
def test_arena_is_the_sram_predictors_plan_for_random_subnets(name):
    space = SearchSpace.preset(name)
    archs = [space.sample(seed) for seed in range(40)] + [space.largest(), space.smallest()]
    model = McuCostModel.from_profile(space, "stm32f746")
    predicted = model.arena_bytes(space.encode(archs))
    for arch, pred in zip(archs, predicted):
        plan = subnet_plan(space, arch)  # checks every live set for overlaps as it places
        assert plan.size == pred
        ops = arch_ops(space, list(arch.ks), list(arch.e), list(arch.active_blocks()), arch.r)
        assert len(plan.places) == sum(len(op.layers) for op in ops)


def test_plan_refuses_inconsistent_layers_and_overlaps(micro):
    from predictors.mcu_memory import Buffer, _check

    arch = micro.validate(ArchConfig.from_dict(ARCHS["a"]))
    ops = arch_ops(micro, list(arch.ks), list(arch.e), list(arch.active_blocks()), arch.r)
    blocks = [op.layers for op in ops]
    with pytest.raises(PlanError, match="reads"):
        arena_plan(blocks[:2] + [blocks[0]] + blocks[2:])  # the stem again: its input is not what is there
    with pytest.raises(PlanError, match="overlap"):
        _check(100, [Buffer(0, 60), Buffer(50, 20)], "test")
    with pytest.raises(PlanError, match="outside"):
        _check(100, [Buffer(90, 20)], "test")


def test_c_folder_uses_the_planned_arena(built, micro):
    for key, (folder, program, _) in built.items():
        header = (folder / "model.h").read_text()
        arch = micro.validate(ArchConfig.from_dict(ARCHS[key]))
        arena = McuCostModel.from_profile(micro, "stm32f746").arena_bytes(micro.encode([arch]))[0]
        assert f"#define NAS_ARENA_BYTES {int(arena)}\n" in header
        assert all(0 <= p.inp < arena and 0 <= p.out < arena for p in program.placed)
        assert "malloc" not in (folder / "model.c").read_text() + (folder / "nas_runtime.c").read_text()
        code = re.sub(r"/\*.*?\*/", "", (folder / "nas_runtime.c").read_text(), flags=re.S)  # without comments
        assert not re.search(r"\b(float|double)\b", code)  # integer-only kernels (float32 is emulated)


# ------------------------------------------------------------------------------------------------ Cortex-M7
def test_cortex_m7_build_and_qemu_match_the_host_and_the_predictor(built, micro):
    needs("host", "cortex-m7")
    folder = built["b"][0]
    sizes = cortex_m7_sizes(folder)
    arch = micro.validate(ArchConfig.from_dict(ARCHS["b"]))
    predicted = McuCostModel.from_profile(micro, "stm32f746").evaluate(micro.encode([arch]))[0]
    assert sizes["rodata_bytes"] > 0 and sizes["stack_bytes"] > 0
    assert abs(predicted[2] - sizes["flash_bytes"]) <= 0.03 * sizes["flash_bytes"]
    assert abs(predicted[1] - sizes["sram_bytes"]) <= 0.03 * sizes["sram_bytes"]
    needs("host", "cortex-m7", "qemu")
    host_check(folder, IMAGES, CHECK_TOLERANCE_LSB)
    q = qemu_check(folder, IMAGES, CHECK_TOLERANCE_LSB)
    assert q["same_as_host"] and q["passed"]


def test_write_c_bundle_reports_what_it_checked(built, micro, tmp_path):
    arch = micro.validate(ArchConfig.from_dict(ARCHS["a"]))
    path, images = models["a"]
    report = write_c_bundle(path, micro, arch, tmp_path / "c", images[:3], run_qemu=False)
    assert report["check"]["passed"] and report["check"]["images"] == 3
    assert report["qemu"] == {"skipped": "not asked for"}
    assert not (tmp_path / "c" / "build").exists()
    assert {"model.c", "model.h", "Makefile", "test_vectors.h", "nas_runtime.c"} <= set(report["files"])
