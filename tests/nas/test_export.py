"""nas.export: bundles exported from the tiny recipe for cpu-host and stm32f746, every file checked against an
independent computation; failures and bad input leave nothing behind."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from hw_profiles import load_profile
from nas.export import ExportError, export_bundle, load_bundle_net
from nas.export.bundle import _publish
from nas.export.check import check_onnx
from nas.export.finetune import FinetuneRecipe, finetune_steps, finetune_subnet
from nas.export.mcu_c import check_tolerance
from nas.export.runtime import ort_predict, ort_session
from predictors import McuCostModel, Predictors
from supernet import ArchConfig
from supernet.counting import count_macs, count_params
from supernet.data import make_loader
from supernet.errors import CheckpointError, InvalidArchError, NasError
from supernet.evaluate import evaluate, recalibrate_bn, resize_to
from supernet.run import load_run
from supernet.train import FrozenTeacher

ROOT = Path(__file__).resolve().parents[2]
# Two archs of the tiny space at different resolutions (r=28 for the CPU, r=24 for the MCU).
# In canonical form (inactive slots copy their stage's last active block), as arch.json stores them.
CPU_ARCH = ArchConfig.from_dict({"ks": [7, 3, 5, 3, 5, 3, 7, 3, 3, 5, 3, 3, 5, 7, 3, 3], "d": [3, 2, 4, 2], "r": 28,
                                 "e": [6, 4, 3, 3, 4, 6, 4, 3, 3, 4, 6, 3, 4, 3, 6, 3]}).to_dict()
MCU_ARCH = ArchConfig.from_dict({"ks": [3] * 16, "e": [4, 3, 3, 3, 6, 3, 3, 3, 4, 4, 3, 3, 3, 3, 3, 3],
                                 "d": [2, 2, 3, 2], "r": 24}).to_dict()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(trained_tiny_run) -> Path:
    """experiments/tiny.yaml trained once per session (the shared fixture; tests/nas's `tiny_run` is untrained)."""
    return trained_tiny_run


@pytest.fixture(scope="module")
def run(trained):
    return load_run(trained)


@pytest.fixture(scope="module")
def cpu_bundle(trained, tmp_path_factory) -> Path:
    calls = []
    out = tmp_path_factory.mktemp("exports")
    bundle = export_bundle(trained, ArchConfig.from_dict(CPU_ARCH), "cpu-host", out,
                           formats=["safetensors", "torchscript", "int8"], progress=lambda f, m: calls.append((f, m)))
    assert calls and calls[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in calls)
    return bundle


@pytest.fixture(scope="module")
def mcu_bundle(trained, tmp_path_factory) -> Path:
    return export_bundle(trained, MCU_ARCH, "stm32f746", tmp_path_factory.mktemp("exports"), finetune="30%")


def card(bundle: Path) -> dict:
    return json.loads((bundle / "card.json").read_text())


def loader(run, split: str):
    return make_loader(getattr(run.splits(), split), 97, shuffle=False)


def val_images(run, r: int, n: int = 128) -> torch.Tensor:
    x, _ = next(iter(make_loader(run.splits().val, n, shuffle=False)))
    return resize_to(x, r)


# ---------------------------------------------------------------------------------------------------- files
def test_cpu_bundle_has_every_file_and_a_manifest_that_matches(cpu_bundle):
    names = {p.name for p in cpu_bundle.iterdir()}
    assert names == {"arch.json", "weights.safetensors", "model.pt", "model.onnx", "model.int8.onnx", "card.json",
                     "card.md"}
    assert json.loads((cpu_bundle / "arch.json").read_text()) == CPU_ARCH
    c = card(cpu_bundle)
    for name, entry in c["files"].items():
        data = (cpu_bundle / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert set(c["files"]) == names - {"card.json", "card.md"}
    assert not [p for p in cpu_bundle.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_mcu_bundle_defaults_to_int8_a_c_header_and_c_code(mcu_bundle):
    names = {p.name for p in mcu_bundle.iterdir()}
    assert names == {"arch.json", "weights.safetensors", "model.pt", "model.onnx", "model.int8.onnx", "model.h",
                     "c", "card.json", "card.md"}
    assert card(mcu_bundle)["formats"] == ["safetensors", "torchscript", "onnx", "int8", "c-header", "c"]
    c_files = {p.name for p in (mcu_bundle / "c").iterdir()}
    assert {"model.c", "model.h", "nas_runtime.c", "nas_runtime.h", "test_vectors.h", "Makefile"} <= c_files
    assert "c/model.c" in card(mcu_bundle)["files"]
    assert card(mcu_bundle)["quantization"]["activations"].startswith("int8")
    assert card(mcu_bundle)["quantization"]["format"] == "QOperator"  # integer ops the C code reproduces exactly


def test_exported_weights_are_the_subnet_with_recalibrated_bn(cpu_bundle, run):
    arch = ArchConfig.from_dict(CPU_ARCH)
    raw = run.net.extract(arch)
    expected = run.net.extract(arch)
    recalibrate_bn(expected, arch, make_loader(run.splits().train, 200, shuffle=True, seed=run.data.seed), 2000)
    got = load_bundle_net(cpu_bundle).state_dict()
    for k, v in expected.state_dict().items():
        torch.testing.assert_close(got[k], v, msg=k)
    moved = [k for k in got if k.endswith("running_mean") and not torch.equal(got[k], raw.state_dict()[k])]
    assert moved, "BN statistics were not recalibrated"


def test_torchscript_model_computes_the_same_logits(cpu_bundle, run):
    x = val_images(run, 28, 16)
    scripted = torch.jit.load(str(cpu_bundle / "model.pt"))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), load_bundle_net(cpu_bundle)(x), atol=1e-5, rtol=1e-5)
        assert scripted(x[:3]).shape == (3, 10)  # any batch size


@pytest.mark.parametrize("which", ["cpu", "mcu"])
def test_onnx_agrees_with_pytorch_on_validation_images(which, cpu_bundle, mcu_bundle, run):
    bundle, r = (cpu_bundle, 28) if which == "cpu" else (mcu_bundle, 24)
    model = onnx.load(str(bundle / "model.onnx"))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == card(bundle)["onnx_opset"]
    x = val_images(run, r, 200)
    with torch.no_grad():
        expected = load_bundle_net(bundle)(x).numpy()
    got = ort_session(bundle / "model.onnx").run(None, {"image": x.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()
    check = card(bundle)["onnx_check"]
    assert check["ok"] and check["max_abs_diff"] <= 1e-4 and check["images"] > 0


def test_a_disagreeing_onnx_model_is_an_export_error(cpu_bundle, run):
    net = load_bundle_net(cpu_bundle)
    with torch.no_grad():
        net.head.classifier.bias.add_(1e-2)
    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        check_onnx(cpu_bundle / "model.onnx", net, val_images(run, 28, 32))


# ---------------------------------------------------------------------------------------------------- figures
def test_card_accuracy_is_measured_not_copied(cpu_bundle, run):
    c = card(cpu_bundle)
    arch = ArchConfig.from_dict(CPU_ARCH)
    net = load_bundle_net(cpu_bundle)
    for split in ("val", "test"):
        acc = c["measured"]["accuracy"][split]
        assert acc["images"] == len(getattr(run.splits(), split))
        assert acc["torch_fp32"] == pytest.approx(evaluate(net, arch, loader(run, split)), abs=1e-9)
        for key, path in (("onnx_fp32", "model.onnx"), ("onnx_int8", "model.int8.onnx")):
            logits, labels = ort_predict(ort_session(cpu_bundle / path), loader(run, split), 28)
            assert acc[key] == pytest.approx(float((logits.argmax(1) == labels).mean()), abs=1e-9)
        assert acc["onnx_fp32"] == pytest.approx(acc["torch_fp32"], abs=2 / acc["images"])


def test_int8_model_is_quantized_and_close_to_fp32(cpu_bundle, run):
    model = onnx.load(str(cpu_bundle / "model.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8) >= 10  # every conv weight
    x = val_images(run, 28, 200)
    fp32 = ort_session(cpu_bundle / "model.onnx").run(None, {"image": x.numpy()})[0]
    q = ort_session(cpu_bundle / "model.int8.onnx").run(None, {"image": x.numpy()})[0]
    # quantization changes the logits a little, not a lot (the tiny run's logits are nearly flat, so the bounds
    # are relative to their spread)
    assert 0 < np.abs(q - fp32).mean() < 0.5 * fp32.std()
    assert np.corrcoef(q.ravel(), fp32.ravel())[0, 1] > 0.8
    assert (q.argmax(1) == fp32.argmax(1)).mean() >= 0.5
    # x86 onnxruntime runs u8 activations × s8 weights fast; MCU runtimes expect s8 activations
    inits = {t.name: t for t in model.graph.initializer}
    act_zero_points = {inits[n.input[2]].data_type for n in model.graph.node
                       if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    assert act_zero_points == {onnx.TensorProto.UINT8}
    assert card(cpu_bundle)["quantization"]["activations"].startswith("uint8")


def test_card_figures_are_computed(cpu_bundle, run, trained):
    c = card(cpu_bundle)
    arch = ArchConfig.from_dict(CPU_ARCH)
    assert c["macs"] == int(count_macs(run.space, [arch])[0])
    assert c["params"] == int(count_params(run.space, [arch])[0])
    net = load_bundle_net(cpu_bundle)
    assert c["params"] == sum(p.numel() for p in net.parameters())
    assert c["macs"] == onnx_macs(cpu_bundle / "model.onnx")
    assert c["checkpoint_hash"] == hashlib.sha256((trained / "supernet.pt").read_bytes()).hexdigest()
    assert c["weights_sha256"] == hashlib.sha256((cpu_bundle / "weights.safetensors").read_bytes()).hexdigest()
    expected = Predictors(run.space, "cpu-host").predict([arch]).iloc[0]
    for key in ("macs", "params", "latency_ms", "sram_bytes", "flash_bytes"):
        assert c["predicted"][key] == pytest.approx(float(expected[key]))
    lat = c["measured"]["latency"]
    assert set(lat) == {"torch", "onnxruntime_fp32", "onnxruntime_int8"}
    assert all(v["median_ms"] > 0 and v["repeats"] > 0 and v["threads"] >= 1 for v in lat.values())
    argv = c["command"].split()
    assert argv[:3] == ["nas", "export", str(trained.resolve())]
    assert argv[argv.index("--device") + 1] == "cpu-host"
    assert argv[argv.index("--arch") + 1] == str((cpu_bundle / "arch.json").resolve())
    md = (cpu_bundle / "card.md").read_text()
    assert f"{c['macs']:,}" in md and c["checkpoint_hash"] in md and "onnxruntime_int8" in md


def onnx_macs(path: Path) -> int:
    """Multiply-accumulates of the Conv and Gemm/MatMul nodes of an ONNX model at batch 1 (shape inference)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]
            out = shapes[node.output[0]]
            total += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            w = inits[node.input[1]]
            total += int(np.prod(w))
    return total


def test_mcu_card_has_memory_verdict_and_no_host_latency(mcu_bundle, run):
    c = card(mcu_bundle)
    arch = ArchConfig.from_dict(MCU_ARCH)
    expected = Predictors(run.space, "stm32f746").predict([arch]).iloc[0]
    prof = load_profile("stm32f746")
    mem = c["memory"]
    assert mem["sram_bytes"] == pytest.approx(float(expected["sram_bytes"]))
    assert mem["flash_bytes"] == pytest.approx(float(expected["flash_bytes"]))
    assert mem["sram_capacity_bytes"] == prof.figure("sram") and mem["flash_capacity_bytes"] == prof.figure("flash")
    assert mem["sram_fits"] == (expected["sram_bytes"] <= prof.figure("sram"))
    header = mem["c_header"]
    assert header["fits_flash"] == (header["const_bytes"] + prof.figure("flash_runtime") <= prof.figure("flash"))
    assert mem["fits"] == (bool(expected["fits"]) and header["fits_flash"])
    assert mem["verdict"].startswith("fits") == mem["fits"]
    assert c["measured"]["latency"] is None and "stm32f746" in c["measured"]["latency_note"]
    assert c["predicted"]["latency_source"] == "mcu"
    assert 0 <= c["measured"]["accuracy"]["val"]["onnx_int8"] <= 1
    assert "Verdict" in (mcu_bundle / "card.md").read_text()


_ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\] = \{([^}]*)\};")


def test_c_header_holds_the_int8_weights_with_shapes_and_scales(mcu_bundle, tmp_path):
    text = (mcu_bundle / "model.h").read_text()
    arrays = {name: (ctype, np.array([float(v.strip().rstrip("f")) for v in body.replace("\n", " ").split(",")
                                      if v.strip()]))
              for ctype, name, n, body in _ARRAY.findall(text)}
    model = onnx.load(str(mcu_bundle / "model.int8.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = {k: v for k, v in inits.items() if k.endswith("_quantized")}
    scales = {}  # QOperator (int8 activations): weight scales are inputs; a bias's is input scale * weight scale
    for n in model.graph.node:
        if n.op_type in ("QLinearConv", "QGemm"):
            w_scale = inits[n.input[4]].reshape(-1)
            scales[n.input[3]] = w_scale
            bias = 8 if n.op_type == "QLinearConv" else 6
            if len(n.input) > bias and n.input[bias]:
                scales[n.input[bias]] = inits[n.input[1]].reshape(-1) * w_scale
    assert weights and set(weights) == set(scales)
    total = 0
    for name, q in weights.items():
        ident = re.sub(r"\W+", "_", name[:-len("_quantized")]).strip("_").lower()
        ctype, data = arrays[f"{ident}_data"]
        assert ctype == {np.int8: "int8_t", np.int32: "int32_t"}[q.dtype.type]
        np.testing.assert_array_equal(data, q.reshape(-1))
        np.testing.assert_array_equal(arrays[f"{ident}_shape"][1], q.shape)
        np.testing.assert_allclose(arrays[f"{ident}_scale"][1], scales[name], rtol=1e-6)
        total += q.nbytes
    header = card(mcu_bundle)["memory"]["c_header"]
    assert header["weight_bytes"] == total and header["tensors"] == len(weights)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:  # the header is valid C99
        src = tmp_path / "main.c"
        src.write_text('#include "model.h"\nint main(void) { return (int)NAS_STM32F746_MODEL_NUM_TENSORS > 0 ? 0 : 1; }\n')
        subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-Wno-unused-const-variable", "-I", str(mcu_bundle),
                        str(src), "-o", str(tmp_path / "a.out")], check=True)
        subprocess.run([str(tmp_path / "a.out")], check=True)


def test_finetuned_bundle_records_its_training_beside_the_supernets_accuracy(mcu_bundle, run):
    c = card(mcu_bundle)
    ft = c["finetune"]
    # 30% of the tiny recipe's 11 training steps
    assert run.info.extra["steps"] == 11 and ft["steps"] == 3 and ft["budget"] == "30%"
    assert ft["supernet_steps"] == 11 and ft["share_of_supernet_steps"] == pytest.approx(3 / 11, abs=1e-4)
    assert ft["images"] == 3 * run.config.train.batch_size and ft["history"][-1]["step"] == 3
    assert mcu_bundle.name.endswith("-ft3") and "--finetune-steps 3" in c["command"]
    arch = ArchConfig.from_dict(MCU_ARCH)
    untouched = run.net.extract(arch)
    got = load_bundle_net(mcu_bundle)
    # the bundle holds the fine-tuned weights unless fine-tuning lowered the validation top-1
    moved = not torch.equal(got.state_dict()["blocks.0.expand.0.weight"], untouched.state_dict()["blocks.0.expand.0.weight"])
    assert moved == (ft["kept"] == "fine-tuned")
    assert (ft["finetuned_accuracy"]["val"] >= ft["supernet_accuracy"]["val"]) == moved
    acc = c["measured"]["accuracy"]["val"]
    assert acc["torch_fp32"] == pytest.approx(evaluate(got, arch, loader(run, "val")))
    # the subnet's accuracy in the (untouched) supernet, as measured before fine-tuning
    recalibrate_bn(untouched, arch, make_loader(run.splits().train, 200, shuffle=True, seed=run.data.seed), 2000)
    assert ft["supernet_accuracy"]["val"] == pytest.approx(evaluate(untouched, arch, loader(run, "val")))
    md = (mcu_bundle / "card.md").read_text()
    assert "## Fine-tuning" in md and "| split | in the supernet | after fine-tuning | change (pp) |" in md


def test_finetuning_that_lowers_the_validation_top1_is_not_shipped(trained, run, tmp_path, monkeypatch):
    """Model selection on the validation split: a fine-tune that hurts (here one that wipes the classifier) leaves
    the bundle with the subnet as the supernet has it, and the card says so."""
    import nas.export.bundle as bundle

    def harmful(student, arch, train, **kw):
        with torch.no_grad():
            student.head.classifier.weight.zero_()
        return {"steps": kw["steps"], "seconds": 0.1, "steps_per_s": 10.0, "images": 0, "history": []}

    monkeypatch.setattr(bundle, "finetune_subnet", harmful)
    out = export_bundle(trained, MCU_ARCH, "cpu-host", tmp_path, formats="safetensors", finetune=2)
    ft = card(out)["finetune"]
    assert ft["kept"] == "supernet" and ft["finetuned_accuracy"]["val"] < ft["supernet_accuracy"]["val"]
    arch = ArchConfig.from_dict(MCU_ARCH)
    got = load_bundle_net(out)
    assert float(got.state_dict()["head.classifier.weight"].abs().sum()) > 0
    assert card(out)["measured"]["accuracy"]["val"]["torch_fp32"] == pytest.approx(ft["supernet_accuracy"]["val"])
    assert evaluate(got, arch, loader(run, "val")) == pytest.approx(ft["supernet_accuracy"]["val"])
    assert "Shipped: the supernet's weights" in (out / "card.md").read_text()


def _finetuned_copy(run, arch, steps, optimizer="sgd"):
    net = copy.deepcopy(run.net)
    bn = make_loader(run.splits().train, 64, shuffle=True, seed=0)
    teacher = FrozenTeacher.copy_of(net, bn, 64)
    calls = []

    def counting_teacher(x):
        calls.append((len(x), x.shape[-1]))
        return teacher(x)

    recipe = FinetuneRecipe(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.003, batch_size=32)
    done = finetune_subnet(net, arch, run.splits().train, steps=steps, recipe=recipe, teacher=counting_teacher)
    return net, done, calls


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])  # the tiny recipe's and the demo recipe's
def test_finetuning_through_the_supernet_moves_only_the_subnets_weights(run, optimizer):
    arch = ArchConfig.from_dict(MCU_ARCH)  # k3 everywhere, expand 3-6, depth 2,2,3,2
    before = {k: v.clone() for k, v in run.net.state_dict().items()}
    net, done, calls = _finetuned_copy(run, arch, steps=4, optimizer=optimizer)
    after = net.state_dict()
    assert all(torch.equal(before[k], v) for k, v in run.net.state_dict().items())  # the copy was trained
    assert net.active == run.space.largest()  # the active arch is restored
    active = set(arch.active_blocks())
    for i, block in enumerate(net.blocks):
        prefix = f"blocks.{i}."
        if i not in active:  # a block the subnet skips: not one number moved, buffers included
            assert all(torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)), i
            continue
        mid = block.mid_channels(arch.e[i])
        w0, w1 = before[prefix + "expand_conv.weight"], after[prefix + "expand_conv.weight"]
        assert not torch.equal(w0[:mid], w1[:mid])  # the subnet's own channels trained
        assert torch.equal(w0[mid:], w1[mid:])  # the wider subnets' channels did not move
        for name in ("dw_weight", "expand_bn.weight", "expand_bn.running_mean", "dw_bn.running_var"):
            assert torch.equal(before[prefix + name][mid:], after[prefix + name][mid:]), (i, name)
        assert torch.equal(before[prefix + "project_conv.weight"][:, mid:], after[prefix + "project_conv.weight"][:, mid:])
        d0, d1 = before[prefix + "dw_weight"][:mid], after[prefix + "dw_weight"][:mid]
        ring = torch.ones(7, 7, dtype=torch.bool)
        ring[1:6, 1:6] = False  # a k3 subnet reads the 7x7 kernel's centre 5x5 only (7to5, then 5to3)
        assert torch.equal(d0[..., ring], d1[..., ring]) and not torch.equal(d0, d1)


def test_the_step_budget_is_honoured(run):
    arch = ArchConfig.from_dict(MCU_ARCH)
    _, done, calls = _finetuned_copy(run, arch, steps=5)
    loaded = run.splits().train[0][0].shape[-1]
    assert done["steps"] == 5 and done["images"] == 160
    assert calls == [(32, max(arch.r, loaded))] * 5  # the teacher sees the images at their loaded size if larger
    small = ArchConfig.from_dict({**MCU_ARCH, "r": min(run.space.resolutions)})
    assert _finetuned_copy(run, small, steps=1)[2] == [(32, max(small.r, loaded))]
    assert [h["step"] for h in done["history"]] == [1, 2, 3, 4, 5]
    _, none, calls = _finetuned_copy(run, arch, steps=0)
    assert none["steps"] == 0 and calls == []


def test_the_extracted_net_equals_the_finetuned_supernets_subnet(run):
    arch = ArchConfig.from_dict(MCU_ARCH)
    net, _, _ = _finetuned_copy(run, arch, steps=3)
    bn = make_loader(run.splits().train, 64, shuffle=True, seed=0)
    recalibrate_bn(net, arch, bn, 128)
    static = net.extract(arch).eval()
    x = val_images(run, arch.r)
    with torch.no_grad(), net.activated(arch):
        want = net.eval()(x)
    assert torch.allclose(static(x), want, atol=1e-5)
    # and the fine-tune changed what the subnet computes
    fresh = copy.deepcopy(run.net)
    recalibrate_bn(fresh, arch, bn, 128)
    with torch.no_grad(), fresh.activated(arch):
        assert not torch.allclose(fresh.eval()(x), want, atol=1e-3)


@pytest.mark.parametrize("budget, supernet_steps, steps", [
    (0, 960, 0), (None, None, 0), (25, None, 25), ("25", 960, 25), ("10%", 960, 96), (" 2.5 % ", 960, 24),
    ("100%", 11, 11), ("1%", 11, 1),  # rounds to the nearest step, at least one
])
def test_a_budget_resolves_to_steps(budget, supernet_steps, steps):
    assert finetune_steps(budget, supernet_steps) == steps


@pytest.mark.parametrize("budget, supernet_steps, words", [
    (-1, 960, [">= 0"]), (True, 960, ["10%"]), ("ten", 960, ["'ten'", "10%"]), ("0%", 960, ["above 0%"]),
    ("101%", 960, ["at most 100%"]), ("-5%", 960, ["10%"]), ("10%", None, ["run.json", "steps"]),
    (10**7, 960, ["at most 1,000,000 steps"]),
])
def test_a_bad_budget_is_refused_naming_the_field(budget, supernet_steps, words):
    with pytest.raises(ExportError) as info:
        finetune_steps(budget, supernet_steps)
    assert "field 'finetune'" in str(info.value)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------------------------------- failures
def test_a_failure_midway_leaves_nothing(trained, tmp_path, monkeypatch):
    import nas.export.bundle as bundle_mod

    def broken(*args, **kwargs):
        raise ExportError("simulated failure after the weights were written")

    monkeypatch.setattr(bundle_mod, "write_onnx", broken)
    out = tmp_path / "exports"
    with pytest.raises(ExportError, match="simulated"):
        export_bundle(trained, CPU_ARCH, "cpu-host", out, formats=["safetensors", "onnx"])
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ExportError):
        export_bundle(trained, CPU_ARCH, "cpu-host", out, formats=["safetensors", "onnx"])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_publish_replaces_an_older_bundle_whole(tmp_path):
    final = tmp_path / "b"
    for version in ("old", "new"):
        tmp = tmp_path / f".b.{version}.tmp"
        tmp.mkdir()
        (tmp / "card.json").write_text(version)
        _publish(tmp, final)
    assert (final / "card.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


@pytest.mark.parametrize("kwargs, error, words", [
    ({"device": "toaster"}, NasError, ["toaster", "cpu-host", "stm32f746"]),
    ({"arch": {**CPU_ARCH, "ks": [4] * 16}}, InvalidArchError, ["ks[0]", "allowed", "[3, 5, 7]", "tiny-mbv3"]),
    ({"arch": {**CPU_ARCH, "d": [2, 2, 2]}}, InvalidArchError, ["'d'", "tiny-mbv3"]),
    ({"formats": ["onnx", "tflite"]}, ExportError, ["formats", "tflite", "safetensors", "c-header"]),
    ({"finetune": -1}, ExportError, ["finetune", ">= 0"]),
    ({"finetune": "150%"}, ExportError, ["finetune", "150%", "at most 100%"]),
    ({"finetune": "3 epochs"}, ExportError, ["finetune", "10%"]),
])
def test_bad_input_is_a_typed_error_and_writes_nothing(kwargs, error, words, trained, tmp_path):
    args = {"arch": CPU_ARCH, "device": "cpu-host", **kwargs}
    out = tmp_path / "exports"
    with pytest.raises(error) as info:
        export_bundle(trained, args["arch"], args["device"], out, formats=kwargs.get("formats"),
                      finetune=kwargs.get("finetune", 0))
    assert isinstance(info.value, NasError)
    for word in words:
        assert word in str(info.value)
    assert not out.exists()


def test_an_arena_larger_than_the_devices_sram_is_refused_with_both_figures(trained, tmp_path):
    small = tmp_path / "tiny-mcu.yaml"
    text = (ROOT / "hw_profiles" / "devices" / "stm32f746.yaml").read_text()
    small.write_text(text.replace("name: stm32f746", "name: tiny-mcu").replace(
        "sram: {value: 320, unit: KB", "sram: {value: 4, unit: KB"))
    space = load_run(trained).space
    arena = McuCostModel.from_profile(space, str(small)).arena_bytes(space.encode([ArchConfig.from_dict(MCU_ARCH)]))
    out = tmp_path / "exports"
    with pytest.raises(ExportError) as info:
        export_bundle(trained, MCU_ARCH, str(small), out)
    msg = str(info.value)
    assert f"arena is {int(arena[0]):,} B" in msg and "has 4,096 B" in msg and "tiny-mcu" in msg
    assert not out.exists()


def test_mcu_bundle_c_code_equals_the_int8_model_and_its_measured_memory_is_predicted(mcu_bundle, tmp_path):
    c = card(mcu_bundle)
    code = c["c_code"]
    assert code["check"]["images"] == 16 and code["check"]["outputs"] == 16 * c["num_classes"]
    if check_tolerance()[0] == 0:  # onnxruntime here is exact integer arithmetic: equal, not close
        assert code["check"]["passed"] and code["check"]["equal"] == code["check"]["outputs"]
        assert code["check"]["max_diff_lsb"] == 0 and code["check"]["top1_mismatches"] == 0
    else:
        assert code["tolerance_reason"]
    assert "Generated C" in (mcu_bundle / "card.md").read_text()
    folder = tmp_path / "c"
    shutil.copytree(mcu_bundle / "c", folder)  # the shipped folder builds and checks on its own
    if shutil.which("make") and shutil.which("cc") and check_tolerance()[0] == 0:
        proc = subprocess.run(["make", "-s", "-C", str(folder), "check"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    if "skipped" in code["cortex_m7"]:
        pytest.skip(f"Cortex-M7 build: {code['cortex_m7']['skipped']}")
    measured = c["memory"]["measured"]
    assert abs(measured["flash_diff_pct"]) <= 3 and abs(measured["sram_diff_pct"]) <= 3
    assert measured["sram_bytes"] == code["cortex_m7"]["sram_bytes"]
    assert "measured: Cortex-M7 build" in (mcu_bundle / "card.md").read_text()
    if "skipped" not in code["qemu"]:
        assert code["qemu"]["same_as_host"] and (code["qemu"]["passed"] or check_tolerance()[0] > 0)


def test_a_run_without_finished_weights_is_refused(trained, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(trained, broken)
    (broken / "supernet.pt").unlink()
    with pytest.raises(CheckpointError, match="supernet.pt"):
        export_bundle(broken, CPU_ARCH, "cpu-host", tmp_path / "out")
    with pytest.raises(CheckpointError, match="run.json"):
        export_bundle(tmp_path / "nowhere", CPU_ARCH, "cpu-host", tmp_path / "out")
    assert not (tmp_path / "out").exists()
