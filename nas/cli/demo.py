"""`nas demo`: the main job end to end on the embedded default data."""

from __future__ import annotations

import typer

from nas.cli._common import emit


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(spec: str = typer.Option("experiments/demo.yaml", "--spec", help="demo spec YAML"),
             fresh: bool = typer.Option(False, "--fresh", help="start over instead of reusing finished stages"),
             out: str = typer.Option(None, "--out", help="output folder (default: the spec's `out`)")) -> None:
        """Train once on Fashion-MNIST, fit predictors, profile this CPU, search per device, export, report."""
        from nas.demo import run_demo

        result = run_demo(spec, fresh=fresh, out=out)
        emit(result)
        typer.echo(f"report: {result['report']} (and {result['report_html']})", err=True)
        n = len(result["devices"])
        typer.echo(f"one training run -> {n} specialized net{'s' if n != 1 else ''}: "
                   + "; ".join(f"{d}: {v['macs'] / 1e6:.1f} MMACs, test top-1 "
                               + ("–" if v["test_accuracy"] is None else f"{100 * v['test_accuracy']:.2f}%")
                               for d, v in result["devices"].items()), err=True)
