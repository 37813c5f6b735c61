"""Generated MCU C code (`nas export`'s c/): predicted vs measured Flash and SRAM, agreement with onnxruntime's int8
model, and host latency of the C code vs onnxruntime int8.

For an MCU net and 20 random subnets of the run's space: the subnet (BN recalibrated on training images; the demo's
MCU net with its shipped, fine-tuned weights) is exported to ONNX and int8 as `nas export` does, its C code generated, checked on the host against onnxruntime's
int8 outputs on validation images, built for Cortex-M7 (`arm-none-eabi-gcc -Os`: Flash = .text + .rodata + .data,
SRAM = .data + .bss + stack) and run in QEMU; the MCU cost model of every shipped MCU predicts Flash and SRAM.
Host latency: median of batch-1 runs of `nas_infer` (cc -O2) against onnxruntime int8 (1 thread), same images.

    .venv/bin/python benchmarks/bench_mcu_c.py [--run runs/fashion-mnist] [--bundles runs/demo/exports] [--subnets 20]

The MCU net is the demo's (its stm32f746 bundle under --bundles: arch and weights.safetensors) where one exists,
else --mcu-arch, else the test suite's MCU arch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table, write_section  # noqa: E402

KEY, TITLE = "mcu-c", "MCU C code: predicted vs measured memory, agreement and host latency vs onnxruntime int8"
MCUS = ("stm32f746", "stm32h743", "stm32f412")
REPEATS = 200
BENCH_C = r"""
#include <stdio.h>
#include <time.h>
#include "model.h"
#include "test_vectors.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
#include <stdlib.h>
int main(void) {
    static int8_t out[NAS_OUTPUT_BYTES];
    static double ms[REPEATS];
    for (int i = 0; i < 10; i++) nas_infer(nas_test_inputs[i % NAS_TEST_COUNT], out);
    for (int i = 0; i < REPEATS; i++) {
        double t = now();
        nas_infer(nas_test_inputs[i % NAS_TEST_COUNT], out);
        ms[i] = 1e3 * (now() - t);
    }
    qsort(ms, REPEATS, sizeof(double), cmp);
    printf("%.6f\n", ms[REPEATS / 2]);
    return 0;
}
"""


def c_latency_ms(folder: Path) -> float:
    (folder / "bench.c").write_text(BENCH_C)
    exe = folder / "bench"
    subprocess.run(["cc", "-std=gnu99", "-O2", f"-DREPEATS={REPEATS}", "-o", str(exe), str(folder / "model.c"),
                    str(folder / "nas_runtime.c"), str(folder / "bench.c")], check=True, cwd=folder)
    return float(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)


def ort_latency_ms(model: Path, images) -> float:  # noqa: ANN001
    from nas.export.runtime import ort_session

    sess = ort_session(model, 1)
    feeds = [{"image": images[i % len(images)][None]} for i in range(REPEATS)]
    for f in feeds[:10]:
        sess.run(None, f)
    times = []
    for f in feeds:
        t = time.perf_counter()
        sess.run(None, f)
        times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def measure(run, arch, splits, folder: Path, seed: int, net=None) -> dict:  # noqa: ANN001
    from nas.export.formats import INPUT_NAME, write_onnx
    from nas.export.mcu_c import write_c_bundle
    from nas.export.bundle import _images
    from nas.export.quantize import quantize_int8
    from predictors import McuCostModel
    from supernet.data import make_loader
    from supernet.evaluate import recalibrate_bn

    if net is None:
        net = run.net.extract(arch).eval()
        recalibrate_bn(net, arch, make_loader(splits.train, 200, shuffle=True, seed=seed), 500)
    net.eval()
    check = _images(splits.val, 16, arch.r, seed + 1, batch_size=16)[0]
    folder.mkdir(parents=True)
    write_onnx(net, check[:2], folder / "model.onnx")
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", _images(splits.train, 128, arch.r, seed + 2),
                  INPUT_NAME, "int8")
    images = check.numpy()
    report = write_c_bundle(folder / "model.int8.onnx", run.space, arch, folder / "c", images, strict=False)
    m7 = report["cortex_m7"]
    row = {"r": arch.r, "blocks": len(arch.active_blocks()), "arena B": report["arena_bytes"],
           "equal %": 100 * report["check"]["equal_share"], "max Δ LSB": report["check"]["max_diff_lsb"],
           "top-1 mism.": report["check"]["top1_mismatches"],
           "QEMU = host": report["qemu"].get("same_as_host", "–"),
           "Flash B": m7.get("flash_bytes"), "SRAM B": m7.get("sram_bytes")}
    codes = run.space.encode([arch])
    for mcu in MCUS:
        _, sram, flash = McuCostModel.from_profile(run.space, mcu).evaluate(codes)[0]
        row[f"{mcu} Flash Δ%"] = 100 * (flash - m7["flash_bytes"]) / m7["flash_bytes"] if "flash_bytes" in m7 else None
        row[f"{mcu} SRAM Δ%"] = 100 * (sram - m7["sram_bytes"]) / m7["sram_bytes"] if "sram_bytes" in m7 else None
    row["C ms"] = c_latency_ms(folder / "c")
    row["ort int8 ms"] = ort_latency_ms(folder / "model.int8.onnx", images)
    row["C / ort"] = row["C ms"] / row["ort int8 ms"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/fashion-mnist", help="trained run folder (the demo's)")
    ap.add_argument("--bundles", default="runs/demo/exports", help="the demo's export folder")
    ap.add_argument("--mcu-arch", help="arch JSON of the MCU net where the demo has none (default: the test "
                                       "suite's MCU arch at r=24)")
    ap.add_argument("--subnets", type=int, default=20, help="random subnets besides the MCU net")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    ap.add_argument("--rows", help="a JSON-lines file of measured rows: rows already there (same net, same run) are "
                                   "reused, new ones appended (to measure the demo's net after the random ones)")
    args = ap.parse_args()

    import torch

    from supernet import ArchConfig
    from supernet.run import load_run

    torch.set_num_threads(1)
    run = load_run(args.run)
    splits = run.splits()
    from nas.export import load_bundle_net

    demo = sorted(Path(args.bundles).glob("stm32f746-*/weights.safetensors"))
    demo_net = None
    if demo:
        demo_net = load_bundle_net(demo[0].parent)
        mcu = ArchConfig.from_json((demo[0].parent / "arch.json").read_text())
        label = f"demo's MCU net ({demo[0].parent.name}, its shipped weights)"
    elif args.mcu_arch:
        mcu, label = ArchConfig.from_json(Path(args.mcu_arch).read_text()), f"MCU net ({args.mcu_arch})"
    else:
        mcu, label = ArchConfig.from_dict({"ks": [3] * 16, "e": [4, 3, 3, 3, 6, 3, 3, 3, 4, 4, 3, 3, 3, 3, 3, 3],
                                           "d": [2, 2, 3, 2], "r": 24}), "MCU net (tests' MCU_ARCH)"
    archs = [(label, run.space.validate(mcu))] + [(f"random {s}", run.space.sample(s)) for s in
                                                      range(args.subnets)]
    rows = []
    done = {}
    if args.rows and Path(args.rows).is_file():
        done = {(r["subnet"], r["arch"]): r for r in map(json.loads, Path(args.rows).read_text().splitlines())
                if r.get("checkpoint") == run.checkpoint_hash}
    with tempfile.TemporaryDirectory(prefix="bench-mcu-c-") as tmp:
        for i, (label, arch) in enumerate(archs):
            row = done.get((label, arch.to_json()))
            if row is None:
                row = {"subnet": label, **measure(run, arch, splits, Path(tmp) / str(i), seed=run.data.seed,
                                                  net=demo_net if i == 0 else None),
                       "arch": arch.to_json(), "checkpoint": run.checkpoint_hash}
                if args.rows:
                    with open(args.rows, "a") as f:
                        f.write(json.dumps(row) + "\n")
            rows.append(row)
            print(json.dumps(row), flush=True)
    cols = ["subnet", "r", "blocks", "arena B", "Flash B", "stm32f746 Flash Δ%", "SRAM B", "stm32f746 SRAM Δ%",
            "equal %", "max Δ LSB", "top-1 mism.", "QEMU = host", "C ms", "ort int8 ms", "C / ort"]
    worst = {m: (max(abs(r[f"{m} Flash Δ%"]) for r in rows), max(abs(r[f"{m} SRAM Δ%"]) for r in rows))
             for m in MCUS}
    ratio = [r["C / ort"] for r in rows]
    import onnxruntime as ort

    from nas.export.mcu_c import check_tolerance

    cpu = "x86 with VNNI: exact integer arithmetic" if check_tolerance()[0] == 0 else check_tolerance()[1]
    equal = sum(r["equal %"] == 100 for r in rows)
    top1 = sum(r["top-1 mism."] for r in rows)
    body = (f"Run `{args.run}` (space `{run.space.name}`, checkpoint `{run.checkpoint_hash[:12]}`): {archs[0][0]} and "
            f"{args.subnets} random subnets (`space.sample(0..{args.subnets - 1})`)"
            + ("" if demo else f" (no demo export under `{args.bundles}` on this machine)")
            + ", BN recalibrated on 500 training "
            "images, int8 calibrated on 128; 16 validation images per net. Measured: the Cortex-M7 model image of "
            "`c/` (arm-none-eabi-gcc -mcpu=cortex-m7 -mthumb -Os): Flash = .text + .rodata + .data, SRAM = .data + "
            ".bss + stack (-fstack-usage); Δ% = (predicted - measured) / measured. Latency: median of "
            f"{REPEATS} batch-1 runs on this machine (C: cc -O2; onnxruntime int8: 1 thread), shared with other "
            "jobs while measured: read the ratio.\n\n"
            + table(rows, cols) + "\n\n"
            + "Largest |Δ| over the nets, per shipped MCU (Flash / SRAM): "
            + "; ".join(f"{m} {f:.3f}% / {s:.3f}%" for m, (f, s) in worst.items()) + " (the goal: within 3%). "
            + f"Host C outputs equal to onnxruntime {ort.__version__} int8 (the QOperator model, graph as written; "
            + f"{cpu}) on every output for {equal} of {len(rows)} nets, {top1} top-1 mismatches over "
            + f"{16 * len(rows)} images; "
            + f"C latency / onnxruntime int8 latency: median {statistics.median(ratio):.2f}x "
            + f"(from {min(ratio):.2f} to {max(ratio):.2f}): the C kernels are plain portable loops, no SIMD, and "
            + "emulate onnxruntime's float32 requantization in integers per output.")
    print(body)
    if not args.no_write:
        write_section(KEY, TITLE, body)


if __name__ == "__main__":
    main()
