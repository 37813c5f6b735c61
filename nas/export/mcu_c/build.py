"""Building and running a generated `c/` folder with the real toolchains: the host check against the int8 ONNX
model's outputs, the Cortex-M7 image's section sizes and stack, and the check on an emulated Cortex-M7 (QEMU).
Each step says why it did not run where its tool is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nas.export.errors import ExportError

TOOLS = {"host": "cc", "cortex-m7": "arm-none-eabi-gcc", "qemu": "qemu-system-arm"}
_SUMMARY = re.compile(r"equal (\d+)/(\d+) max_diff (\d+) top1_mismatches (\d+)")
# The frames on the deepest call chain of the model image: startup, main, nas_infer, the op loop; the runtime's
# other functions nest at most once each below the op loop, so their frames are added whole (an upper bound).
_CHAIN = ("nas_reset", "main", "nas_infer", "nas_run_ops")


def missing_tools(*steps: str) -> list[str]:
    """The tools of `steps` (host, cortex-m7, qemu) not on PATH, plus make."""
    need = ["make"] + [TOOLS[s] for s in steps]
    return [t for t in need if shutil.which(t) is None]


def _make(folder: Path, target: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(folder), target, *args], capture_output=True, text=True,
                          timeout=timeout)


@dataclass(frozen=True)
class CheckResult:
    """The generated C code against the int8 ONNX model on `images` validation images."""

    images: int
    outputs: int
    equal: int
    max_diff_lsb: int
    top1_mismatches: int
    tolerance_lsb: int
    passed: bool

    @property
    def equal_share(self) -> float:
        return self.equal / self.outputs if self.outputs else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "equal_share": self.equal_share}


def _summary(text: str, images: int, tolerance: int, passed: bool) -> CheckResult:
    m = _SUMMARY.search(text)
    if m is None:
        raise ExportError(f"the C check printed no summary:\n{text[-2000:]}")
    equal, total, diff, bad = map(int, m.groups())
    return CheckResult(images, total, equal, diff, bad, tolerance, passed)


def host_check(folder: Path, images: int, tolerance: int) -> CheckResult:
    """`make check` with the host compiler; raises ExportError if it does not build."""
    proc = _make(folder, "check", f"TOLERANCE={tolerance}")
    out = (folder / "build" / "host" / "check.out")
    text = out.read_text() if out.is_file() else ""
    if not _SUMMARY.search(text):
        raise ExportError(f"the generated C code did not build or run on this machine:\n{proc.stderr[-2000:]}")
    return _summary(text, images, tolerance, proc.returncode == 0)


def _stack_bytes(build: Path) -> int:
    frames: dict[str, int] = {}
    runtime = 0
    for name in ("model.su", "nas_runtime.su", "startup_model.su"):
        for line in (build / name).read_text().splitlines():
            parts = line.split("\t")
            if len(parts) < 2:
                continue
            fn, size = parts[0].rsplit(":", 1)[-1], int(parts[1])
            frames[fn] = max(frames.get(fn, 0), size)
            if name == "nas_runtime.su" and fn not in _CHAIN:
                runtime += size
    return sum(frames.get(fn, 0) for fn in _CHAIN) + runtime


def cortex_m7_sizes(folder: Path) -> dict[str, int]:
    """`make cortex-m7`: the model image's sections, its stack, and Flash (.text + .rodata + .data) and SRAM
    (.data + .bss + stack) in bytes."""
    proc = _make(folder, "cortex-m7")
    if proc.returncode != 0:
        raise ExportError(f"the Cortex-M7 build failed:\n{proc.stderr[-2000:]}")
    sizes = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    sec = {k: sizes.get(f".{k}", 0) for k in ("text", "rodata", "data", "bss")}
    sec["text"] += sizes.get(".ARM.exidx", 0)
    stack = _stack_bytes(folder / "build" / "m7")
    return {**{f"{k}_bytes": v for k, v in sec.items()}, "stack_bytes": stack,
            "flash_bytes": sec["text"] + sec["rodata"] + sec["data"],
            "sram_bytes": sec["data"] + sec["bss"] + stack}


def qemu_check(folder: Path, images: int, tolerance: int) -> dict[str, Any]:
    """`make qemu`: the check harness on an emulated Cortex-M7; its printed outputs against the host build's."""
    proc = _make(folder, "qemu", f"TOLERANCE={tolerance}", timeout=300)
    out = folder / "build" / "m7" / "qemu.out"
    text = out.read_text() if out.is_file() else ""
    if not _SUMMARY.search(text):
        raise ExportError(f"the Cortex-M7 check did not run in QEMU:\n{proc.stderr[-2000:]}")
    host = (folder / "build" / "host" / "check.out").read_text()
    return {"board": "mps2-an500 (Cortex-M7)", "same_as_host": text == host,
            **_summary(text, images, tolerance, proc.returncode == 0).to_dict()}
