"""nas.export.mcu_c: generated int8 C inference against onnxruntime's int8 model, its arena against the SRAM
predictor's plan, and (where the toolchains exist) its Cortex-M7 build and QEMU run against the host build.

Two random-weight subnets of a micro space with odd widths and an odd resolution run every kernel size with both
strides, every expand ratio, squeeze-excite (also in the first block), hard-swish and ReLU, residual adds, pooling
and the classifier; each is generated, compiled once and checked on random images."""

from __future__ import annotations

import re
import shutil
import subprocess
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


def mcu_c_exact() -> bool:
    """Whether this machine's onnxruntime runs the x86 kernels the C code reproduces exactly."""
    from nas.export.mcu_c import check_tolerance

    return check_tolerance()[0] == 0


# the C code reproduces onnxruntime's x86 kernels with VNNI (see nas.export.mcu_c.check_tolerance)
x86_reference = pytest.mark.skipif(not mcu_c_exact(), reason="onnxruntime here is not exact integer arithmetic "
                                                             "(not x86 with VNNI)")


# ------------------------------------------------------------------------------------------------ numerics
@x86_reference
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
    assert q["same_as_host"] and (q["passed"] or not mcu_c_exact())


def test_check_is_exact_on_x86_with_vnni_and_says_why_not_elsewhere(monkeypatch):
    from nas.export import mcu_c

    monkeypatch.setattr(mcu_c.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(mcu_c, "_has_vnni", lambda: True)
    assert mcu_c.check_tolerance() == (0, None)
    monkeypatch.setattr(mcu_c, "_has_vnni", lambda: False)
    tolerance, reason = mcu_c.check_tolerance()
    assert tolerance > 0 and "VNNI" in reason and "saturating" in reason
    monkeypatch.setattr(mcu_c.platform, "machine", lambda: "arm64")
    tolerance, reason = mcu_c.check_tolerance()
    assert tolerance > 0 and "arm64" in reason and "fixed point" in reason


def test_write_c_bundle_reports_what_it_checked(built, micro, tmp_path):
    arch = micro.validate(ArchConfig.from_dict(ARCHS["a"]))
    path, images = models["a"]
    report = write_c_bundle(path, micro, arch, tmp_path / "c", images[:3], run_qemu=False)
    assert report["check"]["images"] == 3
    if mcu_c_exact():
        assert report["check"]["passed"] and "tolerance_reason" not in report
        assert report["check"]["tolerance_lsb"] == 0 and report["check"]["equal"] == report["check"]["outputs"]
        assert "#define NAS_CHECK_TOLERANCE 0\n" in (tmp_path / "c" / "test_vectors.h").read_text()
    assert report["qemu"] == {"skipped": "not asked for"}
    assert not (tmp_path / "c" / "build").exists()
    assert {"model.c", "model.h", "Makefile", "test_vectors.h", "nas_runtime.c"} <= set(report["files"])


# ------------------------------------------------------------------------------------------------ kernels one by one
def _session(nodes, inputs, outputs, inits):  # noqa: ANN001, ANN202
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "op", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    return model, ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_kernels(calls: list, tmp: Path) -> list[np.ndarray]:
    """Each (op, inputs, out_bytes) of `calls` run by the C runtime (one program, one op table): `op` (a KernelOp)
    on its int8 `inputs`, laid out one after another in the arena with its output after them; their outputs."""
    from nas.export.mcu_c.codegen import HERE, PlacedOp, _array, _descriptor

    consts, rows, data, outs, base = [], [], [], [], 0
    for i, (op, inputs, out_bytes) in enumerate(calls):
        offsets = base + np.cumsum([0] + [x.size for x in inputs])
        out = int(offsets[0]) if op.type in ("lut", "scale") else int(offsets[-1])  # those work in place
        rows.append(_descriptor(i, PlacedOp(op, int(offsets[0]), out, aux=int(offsets[1]) if len(inputs) > 1 else 0)))
        if op.weight is not None:
            consts += [_array("int8_t", f"w_{i}", op.weight), _array("int32_t", f"b_{i}", op.bias),
                       _array("int32_t", f"m_{i}", op.mult), _array("int8_t", f"s_{i}", op.shifts)]
        data += [np.ascontiguousarray(x, np.int8).tobytes() for x in inputs] + [bytes(out_bytes)]
        outs.append((out, out_bytes))
        base = int(offsets[-1]) + out_bytes
    (tmp / "main.c").write_text(
        '#include "nas_runtime.h"\n#include <stdio.h>\n' + "".join(consts)
        + f"static const nas_op_t ops[{len(rows)}] = {{\n" + ",\n".join(rows) + "\n};\n"
        f"static int8_t arena[{base}], scratch[{base}];\n"
        "int main(void) {\n"
        f"    if (fread(arena, 1, {base}, stdin) != {base}) return 2;\n"
        f"    nas_run_ops(ops, {len(rows)}, arena, scratch);\n"
        f"    fwrite(arena, 1, {base}, stdout);\n    return 0;\n}}\n")
    exe = tmp / "ops"
    subprocess.run([shutil.which("cc"), "-std=c99", "-O1", "-I", str(HERE), "-o", str(exe), str(tmp / "main.c"),
                    str(HERE / "nas_runtime.c")], check=True)
    arena = np.frombuffer(subprocess.run([str(exe)], input=b"".join(data), capture_output=True, check=True).stdout,
                          np.int8)
    return [arena[o:o + n] for o, n in outs]


def _qparams(rng) -> list:  # noqa: ANN001
    return [(np.float32(rng.uniform(0.003, 0.3)), np.int8(rng.integers(-128, 100))) for _ in range(3)]


@x86_reference
@pytest.mark.parametrize("op_type", ["QLinearAdd", "QLinearMul"])
def test_add_and_scale_kernels_equal_onnxruntime_on_every_int8_pair(op_type, tmp_path):
    from onnx import TensorProto, helper

    from nas.export.mcu_c.graph import QParams, binary_op

    needs("host")
    rng = np.random.default_rng(1 if op_type == "QLinearAdd" else 2)
    values = np.arange(-128, 128, dtype=np.int8)
    if op_type == "QLinearAdd":  # every pair (a, b): a 256 x 256 map each
        a, b = np.repeat(values[:, None], 256, 1)[None, None], np.repeat(values[None, :], 256, 0)[None, None]
        shapes = {"a": (1, 256), "b": (1, 256)}
    else:  # squeeze-excite's shape: 256 channels of 16 x 16 (every int8 value) times one value per channel
        a, b = np.tile(values.reshape(1, 1, 16, 16), (1, 256, 1, 1)), values.reshape(1, 256, 1, 1)
        shapes = {"a": (256, 16), "b": (256, 1)}
    info = lambda n, x: helper.make_tensor_value_info(n, TensorProto.INT8, list(x.shape))  # noqa: E731
    node = helper.make_node(op_type, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
    calls, wanted = [], []
    for _ in range(30):  # a .5 tie that a wrong float32 order rounds the other way shows up about once in 10 trials
        (sa, za), (sb, zb), (sc, zc) = _qparams(rng)
        if op_type == "QLinearMul":  # products of up to 255 x 255 spread over the int8 range, few saturated
            sc = np.float32(sa * sb / rng.uniform(0.002, 0.004))
        inits = {"sa": sa, "za": za, "sb": sb, "zb": zb, "sc": sc, "zc": zc}
        _, sess = _session([node], [info("a", a), info("b", b)], [info("y", a)], inits)
        wanted.append(sess.run(None, {"a": a, "b": b})[0].reshape(-1))
        op = binary_op(op_type, "a", "b", "y", QParams(float(sa), int(za)), QParams(float(sb), int(zb)),
                       QParams(float(sc), int(zc)), shapes)
        calls.append((op, [a.reshape(-1), b.reshape(-1)], a.size))
    for trial, (got, want) in enumerate(zip(run_kernels(calls, tmp_path), wanted)):
        np.testing.assert_array_equal(got, want, err_msg=f"{op_type} trial {trial}")
        assert len(np.unique(want)) > 50  # not saturated: the rounding is exercised


# full conv (the stem), depthwise k x k at both strides, pointwise, pointwise on 1 x 1 (squeeze-excite, classifier)
CONVS = [("conv", 3, 2, 3, 7, 15), ("depthwise", 3, 1, 9, 9, 11), ("depthwise", 5, 2, 13, 13, 9),
         ("depthwise", 7, 1, 5, 5, 13), ("depthwise", 7, 2, 11, 11, 7), ("pointwise", 1, 1, 17, 11, 9),
         ("pointwise", 1, 1, 37, 13, 1)]


@x86_reference
@pytest.mark.parametrize("kind,k,stride,cin,cout,h", CONVS)
def test_conv_kernels_equal_onnxruntime_on_random_int8_tensors(kind, k, stride, cin, cout, h, tmp_path):
    from onnx import TensorProto, helper

    needs("host")
    rng = np.random.default_rng(k * 100 + stride * 10 + cin)
    (sx, zx), (_, _), (sy, zy) = _qparams(rng)
    sy = np.float32(sy * k * np.sqrt(cin if kind != "depthwise" else 1) * 0.5)  # outputs spread over the int8 range
    group = cin if kind == "depthwise" else 1
    w = rng.integers(-127, 128, (cout, cin // group, k, k)).astype(np.int8)
    w[:, 0, 0, 0] = 127  # full-range symmetric weights, as the quantizer makes them
    inits = {"sx": sx, "zx": zx, "w": w, "sw": rng.uniform(0.001, 0.02, cout).astype(np.float32),
             "zw": np.zeros(cout, np.int8), "sy": sy, "zy": zy,
             "bias": rng.integers(-3000, 3000, cout).astype(np.int32)}
    conv = helper.make_node("QLinearConv", ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"], ["yq"],
                            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)
    x = rng.integers(-128, 128, (4, cin, h, h)).astype(np.int8)
    ho = (h + 2 * (k // 2) - k) // stride + 1
    i8 = lambda n, s: helper.make_tensor_value_info(n, TensorProto.INT8, s)  # noqa: E731
    _, sess = _session([conv], [i8("xq", [1, cin, h, h])], [i8("yq", [1, cout, ho, ho])], inits)
    # the same node in a model from float to float, as read_graph reads it
    f32 = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    model, _ = _session([helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), conv,
                         helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])],
                        [f32("x", [1, cin, h, h])], [f32("y", [1, cout, ho, ho])], inits)
    (op,) = read_graph(model).ops
    assert (op.type, op.kernel, op.stride) == (kind, k, stride)
    wanted = [sess.run(None, {"xq": image[None]})[0].reshape(-1) for image in x]
    for got, want in zip(run_kernels([(op, [image.reshape(-1)], want.size) for image, want in zip(x, wanted)],
                                     tmp_path), wanted):
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(want)) > min(20, want.size // 2)  # the outputs spread: rounding is exercised


@x86_reference
def test_requantization_equals_onnxruntime_on_every_accumulator(tmp_path):
    """A 1 x 1 conv of two channels with weights (127, 1) sums every pair of int8 values to a different int32:
    65,536 accumulators from -32,385 to 32,385, requantized with 24 different per-channel scales."""
    from onnx import TensorProto, helper

    needs("host")
    rng = np.random.default_rng(3)
    values = np.arange(-128, 128, dtype=np.int8)
    x = np.stack([np.repeat(values[:, None], 256, 1), np.repeat(values[None, :], 256, 0)])[None]  # 1 x 2 x 256 x 256
    cout = 24
    w = np.tile(np.array([127, 1], np.int8).reshape(1, 2, 1, 1), (cout, 1, 1, 1))
    sx, sy = np.float32(0.05), np.float32(0.05 * 0.01 * 260)  # outputs spread over the int8 range
    inits = {"sx": sx, "zx": np.int8(0), "w": w, "sw": rng.uniform(0.005, 0.015, cout).astype(np.float32),
             "zw": np.zeros(cout, np.int8), "sy": sy, "zy": np.int8(-3), "bias": rng.integers(-99, 99, cout).astype(np.int32)}
    conv = helper.make_node("QLinearConv", ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"], ["yq"])
    i8 = lambda n, s: helper.make_tensor_value_info(n, TensorProto.INT8, s)  # noqa: E731
    _, sess = _session([conv], [i8("xq", [1, 2, 256, 256])], [i8("yq", [1, cout, 256, 256])], inits)
    want = sess.run(None, {"xq": x})[0].reshape(-1)
    f32 = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    model, _ = _session([helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), conv,
                         helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])],
                        [f32("x", [1, 2, 256, 256])], [f32("y", [1, cout, 256, 256])], inits)
    (op,) = read_graph(model).ops
    (got,) = run_kernels([(op, [x.reshape(-1)], want.size)], tmp_path)
    np.testing.assert_array_equal(got, want)
    assert (np.abs(want.astype(int)) < 127).mean() > 0.9  # mostly unsaturated: every rounding is exercised
