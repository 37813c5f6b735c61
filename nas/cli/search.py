"""`nas search SPEC.yaml`: one search per device of an experiment spec, with a progress bar on stderr and the
summary (files and best figures per device) as JSON on stdout."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli._common import emit


def register(app: typer.Typer) -> None:
    app.command("search")(search)


def search(spec: str = typer.Argument(..., help="experiment spec YAML (see experiments/search-tiny.yaml)"),
           out: str = typer.Option(None, "--out", help="output folder (default: runs/<spec name>)"),
           ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster for strategy ray-tune"),
           storage: str = typer.Option(None, "--storage",
                                       help="Optuna storage URL (default: SQLite OUT/search.db); same URL resumes"),
           quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
           server: str = typer.Option(None, "--server", help="a `nas serve` URL: run there (token from $NAS_API_TOKEN)")) -> None:
    """Search each device of SPEC within its constraints; write trials, Pareto front, best arch and plot."""
    if server:
        from nas.service.client import remote_search

        def report(state: dict) -> None:
            if not quiet:
                typer.echo(f"{state['status']}: {state['message']}", err=True)

        emit(remote_search(server, spec, progress=report))
        return
    import optuna
    from tqdm import tqdm

    from nas.experiment import ExperimentSpec, run_experiment

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = ExperimentSpec.from_yaml(spec)
    bars: dict[str, tqdm] = {}

    def progress(device: str, done: int, total: int, best: dict | None) -> None:
        if quiet:
            return
        bar = bars.get(device)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[device] = tqdm(total=total, desc=device, unit="trial", leave=True, dynamic_ncols=True)
        bar.update(done - bar.n)
        if best:
            bar.set_postfix({k: f"{v:.4g}" for k, v in best.items()}, refresh=False)

    try:
        summary = run_experiment(exp, Path(out) if out else Path("runs") / exp.name, storage=storage,
                                 progress=progress, ray_address=ray_address)
    finally:
        for bar in bars.values():
            bar.close()
    emit(summary)
