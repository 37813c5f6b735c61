"""`nas devices [show NAME]`: the device profiles this install knows (shipped and measured here)."""

from __future__ import annotations

import typer

from hw_profiles import list_profiles, load_profile
from nas.cli._common import emit, emit_lines

app = typer.Typer(help="List device profiles, or show one.", invoke_without_command=True)


@app.callback()
def devices(ctx: typer.Context) -> None:
    """List device profiles as JSON lines (name, kind, state, description, file)."""
    if ctx.invoked_subcommand is None:
        rows = []
        for name in list_profiles():
            p = load_profile(name)
            rows.append({"name": name, "kind": p.kind, "state": p.state, "description": p.description,
                         "path": p.path})
        emit_lines(rows)


@app.command("show")
def show(name: str = typer.Argument(..., help="device name or profile YAML path")) -> None:
    """Print one profile as JSON: every figure with its unit and source, tables summarised."""
    p = load_profile(name)
    data = p.to_yaml_dict()
    lut = p.latency.lookup_table
    if lut is not None:
        data["latency"]["lookup_table"] = {"source": lut.source,
                                           "entries": {str(r): len(t) for r, t in sorted(lut.tables.items())}}
    data["path"] = p.path
    emit(data)
