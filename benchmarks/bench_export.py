"""Exported nets of the demo: fp32 vs int8 top-1, and PyTorch vs onnxruntime batch-1 latency on this machine.

For every bundle the demo exported (runs/demo/exports/*: the best subnet per device), the same arch is exported
again here for cpu-host with ONNX and int8, so every net is measured the same way: accuracy of the PyTorch net,
its ONNX model and its int8 model on the full validation and test splits, and batch-1 latency (median, one thread
as the cpu-host profile says) of PyTorch eager, onnxruntime fp32 and onnxruntime int8.

    .venv/bin/python benchmarks/bench_export.py [--run runs/fashion-mnist] [--bundles runs/demo/exports]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table, write_section  # noqa: E402

KEY, TITLE = "export", "Export: fp32 vs int8 accuracy, PyTorch vs onnxruntime latency"


def demo_archs(bundles: Path) -> list[tuple[str, dict]]:
    """(device, arch) of every bundle the demo exported."""
    out = []
    for card_path in sorted(bundles.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        out.append((card["device"]["name"], card["arch"]))
    return out


def summary(rows: list[dict]) -> str:
    """The figures' gist, computed: int8's accuracy change and the runtimes' speed ratios."""
    import statistics

    drop = [r["test int8 (ort)"] - r["test fp32 (ort)"] for r in rows]
    ort = [r["torch ms"] / r["ort fp32 ms"] for r in rows]
    q = [r["ort fp32 ms"] / r["ort int8 ms"] for r in rows]
    return (f"int8 vs fp32 test top-1: {statistics.fmean(drop):+.2f} points on average (from {min(drop):+.2f} to "
            f"{max(drop):+.2f}); onnxruntime fp32 is {statistics.median(ort):.1f}x faster than eager PyTorch "
            f"(median over nets), int8 {statistics.median(q):.2f}x the speed of onnxruntime fp32. The machine is "
            f"shared: read latencies as ratios measured side by side.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/fashion-mnist", help="trained run folder (the demo's)")
    ap.add_argument("--bundles", default="runs/demo/exports", help="the demo's export folder")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    args = ap.parse_args()

    from nas.export import export_bundle
    from supernet.errors import NasError
    from supernet.run import load_run

    run_dir, bundles = Path(args.run), Path(args.bundles)
    try:
        load_run(run_dir)
    except NasError as exc:
        body = (f"Not measured yet: the demo's run `{run_dir}` is not trained ({exc}). Run `make demo` (or "
                f"`nas demo`), then this script.")
        print(body)
        if not args.no_write:
            write_section(KEY, TITLE, body)
        return
    archs = demo_archs(bundles)
    if not archs:
        body = f"Not measured yet: no exported bundles under `{bundles}`. Run `make demo` first, then this script."
        print(body)
        if not args.no_write:
            write_section(KEY, TITLE, body)
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for device, arch in archs:
            t0 = time.perf_counter()
            bundle = export_bundle(run_dir, arch, "cpu-host", tmp, formats=["onnx", "int8"])
            card = json.loads((bundle / "card.json").read_text())
            acc, lat = card["measured"]["accuracy"], card["measured"]["latency"]
            row = {"searched for": device, "r": arch["r"], "MMACs": card["macs"] / 1e6,
                   "params (K)": card["params"] / 1e3,
                   "val fp32 (torch)": 100 * acc["val"]["torch_fp32"],
                   "val fp32 (ort)": 100 * acc["val"]["onnx_fp32"], "val int8 (ort)": 100 * acc["val"]["onnx_int8"],
                   "test fp32 (ort)": 100 * acc["test"]["onnx_fp32"],
                   "test int8 (ort)": 100 * acc["test"]["onnx_int8"],
                   "torch ms": lat["torch"]["median_ms"], "ort fp32 ms": lat["onnxruntime_fp32"]["median_ms"],
                   "ort int8 ms": lat["onnxruntime_int8"]["median_ms"],
                   "int8 MB": card["files"]["model.int8.onnx"]["bytes"] / 2 ** 20,
                   "fp32 MB": card["files"]["model.onnx"]["bytes"] / 2 ** 20,
                   "ort vs torch max Δlogit": card["onnx_check"]["max_abs_diff"]}
            rows.append(row)
            print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            threads = lat["torch"]["threads"]
    n_val, n_test = acc["val"]["images"], acc["test"]["images"]
    body = "\n\n".join([
        f"Run `{run_dir}` (checkpoint `{card['checkpoint_hash'][:12]}`); the arch of each bundle in `{bundles}`, "
        f"exported again for cpu-host with ONNX (opset {card['onnx_opset']}) and int8 (onnxruntime static "
        f"quantization, {card['quantization']['format']}: weights {card['quantization']['weights']}, activations "
        f"{card['quantization']['activations']} on {card['quantization']['calibration_images']} training images). "
        f"Top-1 in % on "
        f"the validation split ({n_val} images) and the test split ({n_test}); latency: median of 50 batch-1 runs, "
        f"{threads} thread(s), after 10 warm-up runs.",
        table(rows),
        summary(rows),
    ])
    print(body)
    if not args.no_write:
        write_section(KEY, TITLE, body)


if __name__ == "__main__":
    main()
