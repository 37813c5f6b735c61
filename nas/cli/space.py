"""`nas space show|sample|stats`: inspect search spaces and archs."""

from __future__ import annotations

import typer

from nas.cli._common import emit, emit_lines, read_archs
from supernet import SearchSpace, available_spaces
from supernet.counting import arch_stats

app = typer.Typer(help="Inspect search spaces: show a space, sample archs, count an arch's cost.",
                  no_args_is_help=True)


@app.command("list")
def list_spaces() -> None:
    """List the available spaces (JSON lines)."""
    for name in available_spaces():
        sp = SearchSpace.preset(name)
        emit({"name": name, "description": sp.description, "size": str(sp.size()), "blocks": sp.num_blocks})


@app.command("show")
def show(space: str = typer.Argument(..., help="space name or YAML path")) -> None:
    """Print a space as JSON, with its number of distinct subnets."""
    sp = SearchSpace.preset(space)
    emit({**sp.to_dict(), "size": str(sp.size()), "num_blocks": sp.num_blocks})


@app.command("sample")
def sample(space: str = typer.Argument(...), n: int = typer.Option(1, "-n", min=1, help="number of archs"),
           seed: int = typer.Option(0, "--seed")) -> None:
    """Print N random archs as JSON lines (OFA keys ks, e, d, r)."""
    sp = SearchSpace.preset(space)
    emit_lines(a.to_dict() for a in sp.sample_many(n, seed))


@app.command("stats")
def stats(space: str = typer.Argument(...), arch: str = typer.Option(..., "--arch", help="arch JSON file")) -> None:
    """MACs, params and peak activation bytes of each arch in FILE (one JSON object per arch)."""
    sp = SearchSpace.preset(space)
    emit_lines({"arch": a.to_dict(), **arch_stats(sp, a)} for a in read_archs(sp, arch))
