"""The `nas` command line. Machine-readable output is JSON on stdout; progress and logs go to stderr.

Each command group lives in its own module; add yours to `_GROUPS` / `_COMMANDS` below.
"""

from __future__ import annotations

import importlib

import typer

from nas.cli._common import main_guard

app = typer.Typer(help="ofa-nas: train one elastic supernet, then find and ship the best subnet per device.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

# (module, group name): modules exposing a Typer `app` mounted as `nas <group> ...`
_GROUPS: list[tuple[str, str]] = [
    ("nas.cli.space", "space"),
    ("nas.cli.devices", "devices"),
    ("nas.cli.profile", "profile"),
    ("nas.cli.latency", "latency"),
]
# modules exposing `register(app)` that add top-level commands (`nas train`, `nas search`, ...)
_COMMANDS: list[str] = [
    "nas.cli.train",
    "nas.cli.predict",
    "nas.cli.serve",
    "nas.cli.search",
    "nas.cli.export",
    "nas.cli.demo",
]

for _module, _name in _GROUPS:
    app.add_typer(importlib.import_module(_module).app, name=_name)
for _module in _COMMANDS:
    importlib.import_module(_module).register(app)

main = main_guard(app)
