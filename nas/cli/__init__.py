"""The `nas` command line. Machine-readable output is JSON on stdout; progress and logs go to stderr.

Each command (group) lives in its own module, imported only when that command runs, so `nas space show` does not
pay for torch, scikit-learn or Ray. Add yours to `_GROUPS` (a module with a Typer `app`, mounted as
`nas <group> ...`) or `_COMMANDS` (a module with `register(app)` adding top-level commands).
"""

from __future__ import annotations

import importlib
import importlib.util

import typer
from typer.core import TyperGroup
from typer.main import get_command

from nas.cli._common import main_guard

# group name -> module exposing a Typer `app`
_GROUPS: dict[str, str] = {
    "space": "nas.cli.space",
    "devices": "nas.cli.devices",
    "profile": "nas.cli.profile",
    "latency": "nas.cli.latency",
    "accuracy": "nas.cli.accuracy",
    "run": "nas.cli.run",
}
# command name -> module exposing `register(app)`
_COMMANDS: dict[str, str] = {
    "train": "nas.cli.train",
    "eval": "nas.cli.eval",
    "predict": "nas.cli.predict",
    "search": "nas.cli.search",
    "export": "nas.cli.export",
    "serve": "nas.cli.serve",
    "demo": "nas.cli.demo",
}
_ORDER = ["space", "train", "run", "eval", "profile", "devices", "latency", "accuracy", "predict", "search", "export",
          "serve", "demo"]


class LazyGroup(TyperGroup):
    """A command group whose subcommands are imported on first use."""

    def list_commands(self, ctx) -> list[str]:  # noqa: ANN001
        return [name for name in _ORDER if importlib.util.find_spec(_GROUPS.get(name) or _COMMANDS[name])]

    def get_command(self, ctx, name: str):  # noqa: ANN001, ANN201
        if name not in self.list_commands(ctx):
            return None
        if name in _GROUPS:
            cmd = get_command(importlib.import_module(_GROUPS[name]).app)
            cmd.name = name
            return cmd
        if name in _COMMANDS:
            holder = typer.Typer()
            importlib.import_module(_COMMANDS[name]).register(holder)
            cmd = get_command(holder)
            return cmd.get_command(ctx, name) if isinstance(cmd, TyperGroup) else cmd
        return None


app = LazyGroup(name="nas", no_args_is_help=True, rich_markup_mode=None,
                help="ofa-nas: train one elastic supernet, then find and ship the best subnet per device.")

main = main_guard(app)
