"""Generated int8 C inference for microcontrollers: the `c/` folder of a bundle.

    report = write_c_bundle(bundle / "model.int8.onnx", space, arch, bundle / "c", images)

`model.c` / `model.h` run the subnet with integer-only kernels (`nas_runtime.c`) in one static arena laid out by
the SRAM predictor's own plan; `make -C c check` compares it with the int8 ONNX model on shipped test vectors,
`make -C c cortex-m7` builds it for a Cortex-M7 and prints its sections, `make -C c qemu` runs the check there.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from nas.export.errors import ExportError
from nas.export.mcu_c.build import cortex_m7_sizes, host_check, missing_tools, qemu_check
from nas.export.mcu_c.codegen import Program, subnet_plan, write_c_folder
from nas.export.mcu_c.graph import KernelGraph, read_graph
from supernet import ArchConfig, SearchSpace

__all__ = ["write_c_bundle", "quantize_input", "int8_reference", "read_graph", "subnet_plan", "write_c_folder",
           "KernelGraph", "Program", "CHECK_TOLERANCE_LSB", "check_tolerance"]

# The int8 model is in the QOperator format: each op sums in integers and requantizes in float32 the way
# onnxruntime's x86 kernels do, which the C code reproduces bit for bit (nas_runtime.c). The check asks for equal
# outputs and the same top-1 on every image, where onnxruntime's own arithmetic is exact: on x86 CPUs with VNNI
# (int8 dot products in 32 bits). Elsewhere onnxruntime differs from exact integer arithmetic (x86 without VNNI
# adds u8 x s8 pairs in saturating 16 bits; ARM requantizes QLinearAdd in fixed point): there the check allows
# OTHER_CPU_TOLERANCE_LSB, says why, and a difference does not fail the export.
CHECK_TOLERANCE_LSB = 0
OTHER_CPU_TOLERANCE_LSB = 8


def check_tolerance() -> tuple[int, str | None]:
    """The check's tolerance on this machine's onnxruntime outputs, and the reason when it is not 0 (exact)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return OTHER_CPU_TOLERANCE_LSB, (f"the reference ran on {machine}, where onnxruntime's int8 kernels round "
                                         "differently (QLinearAdd in fixed point); the C code follows its x86 kernels")
    if not _has_vnni():
        return OTHER_CPU_TOLERANCE_LSB, ("the reference ran on an x86 CPU without VNNI (or one this machine cannot "
                                         "tell), where onnxruntime adds u8 x s8 pairs in saturating 16 bits; the C "
                                         "code sums exactly")
    return CHECK_TOLERANCE_LSB, None


def _has_vnni() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))


def quantize_input(images: np.ndarray, graph: KernelGraph) -> np.ndarray:
    """Float images (N, C, r, r) as the int8 model's QuantizeLinear makes them: (N, C*r*r) int8."""
    q = graph.input_q
    x = np.rint(np.asarray(images, np.float32) / np.float32(q.scale)) + q.zero_point
    return np.clip(x, -128, 127).astype(np.int8).reshape(len(images), -1)


def int8_reference(model_path: Path, images: np.ndarray, graph: KernelGraph) -> np.ndarray:
    """onnxruntime's outputs of the int8 model on float `images`, as the int8 values its last op made.

    Graph optimizations off: the QOperator graph as written (one kernel per node)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: np.asarray(images, np.float32)})[0]
    q = graph.output_q
    return np.clip(np.rint(logits / np.float32(q.scale)) + q.zero_point, -128, 127).astype(np.int8)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def write_c_bundle(int8_path: Path, space: SearchSpace, arch: ArchConfig, folder: Path, images: np.ndarray,
                   *, run_qemu: bool = True, strict: bool = True) -> dict[str, Any]:
    """Write `folder` (the bundle's `c/`) for the int8 model at `int8_path`, with `images` (float, at the model's
    resolution) as its test vectors; check it on this machine and build it for a Cortex-M7 where the tools exist.
    Returns the card's entry; raises ExportError if the code does not build or (`strict`) disagrees with the int8
    model."""
    import onnx

    graph = read_graph(onnx.load(str(int8_path)))
    plan = subnet_plan(space, arch)
    expected = int8_reference(int8_path, images, graph)
    tolerance, reason = check_tolerance()
    program = write_c_folder(graph, plan, folder, quantize_input(images, graph), expected, tolerance=tolerance,
                             comment=f"int8 inference of {arch.to_json()}\ngenerated by ofa-nas `nas export`")
    n = len(images)
    report: dict[str, Any] = {
        "files": sorted(p.name for p in folder.iterdir()), "ops": len(program.placed),
        "arena_bytes": plan.size, "scratch_bytes": plan.scratch, "test_images": n,
        "entry_point": "int nas_infer(const int8_t *input, int8_t *output)",
        "latency_note": "latency stays predicted: no emulator gives Cortex-M cycles",
        "reference": f"onnxruntime {_ort_version()} on {platform.machine()}, graph optimizations off: the "
                     "QOperator graph as written",
    }
    if reason:
        report["tolerance_reason"] = reason
    try:
        missing = missing_tools("host")
        if missing:
            report["check"] = {"skipped": f"{', '.join(missing)} not installed"}
        else:
            check = host_check(folder, n, tolerance)
            report["check"] = check.to_dict()
            if strict and not check.passed and not reason:
                raise ExportError(f"the generated C code disagrees with the int8 ONNX model on {n} validation "
                                  f"images: {check.outputs - check.equal} of {check.outputs} outputs differ (max "
                                  f"{check.max_diff_lsb} LSB), {check.top1_mismatches} top-1 mismatches")
        missing = missing_tools("cortex-m7")
        report["cortex_m7"] = {"skipped": f"{', '.join(missing)} not installed"} if missing else \
            {"flags": "-mcpu=cortex-m7 -mthumb -Os", **cortex_m7_sizes(folder)}
        missing = missing_tools("host", "cortex-m7", "qemu")
        if not run_qemu:
            report["qemu"] = {"skipped": "not asked for"}
        elif missing:
            report["qemu"] = {"skipped": f"{', '.join(missing)} not installed"}
        else:
            report["qemu"] = qemu_check(folder, n, tolerance)
            if not report["qemu"]["same_as_host"]:
                raise ExportError("the Cortex-M7 build's outputs in QEMU differ from the host build's")
    finally:
        shutil.rmtree(folder / "build", ignore_errors=True)
    return report
