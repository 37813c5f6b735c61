"""`nas export RUN_DIR --arch FILE | --from SEARCH_DIR --device NAME --out DIR`: write one bundle per (arch, device)
and print one JSON line per bundle (its folder and headline figures); progress goes to stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from nas.cli._common import emit, fail, read_archs


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def _summary(bundle: Path) -> dict[str, Any]:
    card = json.loads((bundle / "card.json").read_text())
    return {"bundle": str(bundle), "device": card["device"]["name"], "arch": card["arch"], "macs": card["macs"],
            "params": card["params"], "accuracy": card["measured"]["accuracy"],
            "predicted": {k: card["predicted"].get(k) for k in ("accuracy", "latency_ms", "sram_bytes",
                                                                 "flash_bytes", "fits")},
            "latency": {k: v["median_ms"] for k, v in (card["measured"]["latency"] or {}).items()},
            "memory_verdict": card["memory"]["verdict"], "files": sorted(card["files"])}


def export(run_dir: str = typer.Argument(..., help="trained run folder (nas train)"),
           arch: Optional[str] = typer.Option(None, "--arch", help="arch JSON file (one object, a list or JSON lines)"),
           from_: Optional[str] = typer.Option(None, "--from", help="search output folder (nas search): take the "
                                                                    "best feasible arch of each device"),
           device: list[str] = typer.Option(..., "--device", help="device profile name or YAML (repeatable)"),
           out: str = typer.Option(..., "--out", help="folder to write the bundles into"),
           finetune: Optional[str] = typer.Option(None, "--finetune", help="distillation fine-tuning for a share "
                                                   "of the supernet's training steps, like 10%"),
           finetune_steps: Optional[int] = typer.Option(None, "--finetune-steps", help="distillation fine-tuning "
                                                        "for this many steps"),
           formats: Optional[list[str]] = typer.Option(None, "--formats", help="comma list among safetensors, "
                                                       "torchscript, onnx, int8, c-header, c (default: by device)"),
           quiet: bool = typer.Option(False, "--quiet", help="no progress on stderr"),
           server: str = typer.Option(None, "--server", help="a `nas serve` URL: run there (token from $NAS_API_TOKEN)")) -> None:
    """Export subnets of a trained run for devices: weights, TorchScript, ONNX, int8, C header, model card."""
    budget = _finetune_budget(finetune, finetune_steps)
    if server:  # RUN_DIR is the server's run id, --from an experiment id there; bundles are unpacked into --out
        from nas.service.client import remote_export

        if (arch is None) == (from_ is None):
            fail("give exactly one of --arch FILE.json and --from EXPERIMENT_ID")
        picked = [f for item in formats for f in item.split(",") if f.strip()] if formats else None
        for row in remote_export(server, run_dir, device, out, arch_path=arch, experiment=from_, formats=picked,
                                 finetune=budget, progress=None if quiet else
                                 (lambda s: typer.echo(f"{s['status']}: {s['message']}", err=True))):
            emit(row)
        return
    from nas.export import export_bundle, resolve_formats
    from nas.search.output import SearchOutput
    from supernet import SearchSpace
    from supernet.run import read_run_info

    if (arch is None) == (from_ is None):
        fail("give exactly one of --arch FILE.json and --from SEARCH_DIR")
    chosen = [f for item in formats for f in item.split(",") if f.strip()] if formats else None
    if chosen is not None:
        resolve_formats(chosen, "cpu")  # unknown names fail here, before any work
    space = SearchSpace.from_dict(read_run_info(run_dir).space)
    jobs: list[tuple[Any, str]] = []
    for dev in device:
        if arch is not None:
            jobs += [(a, dev) for a in read_archs(space, arch)]
        else:
            best = SearchOutput(from_).best(dev)
            if (best.space or space.name) != space.name:
                fail(f"the search in '{from_}' was over another space than run '{run_dir}' ({space.name})")
            jobs.append((best.arch, dev))

    def progress(fraction: float, message: str) -> None:
        if not quiet:
            typer.echo(f"[{fraction:5.0%}] {message}", err=True)

    for a, dev in jobs:
        bundle = export_bundle(run_dir, a, dev, out, formats=chosen, finetune=budget, progress=progress)
        summary = _summary(bundle)
        if summary["memory_verdict"].startswith("DOES NOT FIT"):
            typer.echo(f"warning: {bundle.name}: {summary['memory_verdict']}", err=True)
        emit(summary)


def _finetune_budget(share: str | None, steps: int | None) -> int | str:
    """`--finetune P%` or `--finetune-steps N` (not both) as export_bundle's `finetune`. A bare number after
    --finetune is refused: it meant epochs before the budget became a share of the supernet's steps."""
    if share is not None and steps is not None:
        fail("give at most one of --finetune P% and --finetune-steps N")
    if steps is not None:
        if steps < 0:
            fail(f"--finetune-steps must be >= 0, got {steps}")
        return steps
    if share is None:
        return 0
    if not share.strip().endswith("%"):
        fail(f"--finetune takes a share of the supernet's training steps like '10%', got {share!r} (it took "
             f"epochs before); for a number of steps use --finetune-steps N")
    return share
