"""`nas profile cpu-host|cuda`: measure this machine and write its calibrated device profile."""

from __future__ import annotations

from pathlib import Path

import typer

from hw_profiles import load_profile, save_profile, user_profiles_dir
from hw_profiles.schema import ProfileError
from nas.cli._common import emit
from supernet import SearchSpace

app = typer.Typer(help="Measure this machine (per-op table, learned model, held-out fidelity) and write its profile.",
                  no_args_is_help=True)


def _resolutions(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise ProfileError(f"--resolutions must be comma-separated integers (px), got {text!r}") from None


class _Bar:
    """A tqdm progress bar on stderr per measuring stage."""

    def __init__(self) -> None:
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=f"measuring {stage}", unit=stage.rstrip("s"),
                                          leave=True, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _run(space: str, base_name: str, out: str | None, cfg, resolutions: str | None, n_fit: int, n_test: int,  # noqa: ANN001
         seed: int) -> None:
    from predictors.profiling import TARGET, calibrate_profile

    sp = SearchSpace.preset(space)
    out_path = Path(out) if out else user_profiles_dir() / f"{base_name}.yaml"
    base = load_profile(out_path) if out_path.is_file() else load_profile(base_name)
    bar = _Bar()
    try:
        prof, report = calibrate_profile(sp, base, cfg, resolutions=_resolutions(resolutions), n_fit=n_fit,
                                         n_test=n_test, seed=seed, progress=bar)
    finally:
        bar.close()
    path = save_profile(prof, out_path)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    emit({"profile": str(path), "device": prof.name, "space": sp.name, "backend": cfg.backend,
          "threads": cfg.threads, "batch_size": cfg.batch_size, "clock": report.clock,
          "preempted": {k: round(v, 3) for k, v in report.preempted.items()}, "resolutions": report.resolutions,
          "ops_measured": report.ops, "subnets_fit": report.fit_archs, "subnets_held_out": report.test_archs,
          "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
          "fidelity": {k: {m: round(v, 4) for m, v in f.items()} for k, f in report.fidelity.items()},
          "noise_ceiling": {m: round(v, 4) for m, v in report.noise_ceiling.items()},
          "target": TARGET, "remeasured_subnets": report.remeasured, "rejected_bursts": report.rejected,
          "warnings": report.warnings})


@app.command("cpu-host")
def cpu_host(space: str = typer.Option(..., "--space", help="space name or YAML"),
             threads: int = typer.Option(1, "--threads", min=1, help="CPU threads (latency is for this many)"),
             backend: str = typer.Option("torch", "--backend", help="torch or onnxruntime"),
             out: str = typer.Option(None, "--out", help="profile YAML to write (default runs/profiles/cpu-host.yaml)"),
             resolutions: str = typer.Option(None, "--resolutions", help="comma-separated px to measure "
                                             "(default: all of the space's; others are predicted)"),
             n_test: int = typer.Option(100, "--n-test", min=2, help="held-out subnets measured for fidelity"),
             n_fit: int = typer.Option(20, "--n-fit", min=3, help="subnets measured to fit the end-to-end correction"),
             repeats: int = typer.Option(3, "--repeats", min=1, help="timed runs per burst (after a warm-up run)"),
             rounds: int = typer.Option(12, "--rounds", min=1, help="interleaved rounds: one burst per subnet "
                                        "each, in a fresh random order (ops, ten times cheaper, get twice as many)"),
             seed: int = typer.Option(0, "--seed")) -> None:
    """Measure this CPU at batch 1 and write its profile (preferred by `--device cpu-host` afterwards)."""
    from hw_profiles.measure import TimingConfig

    if backend not in ("torch", "onnxruntime"):
        raise ProfileError(f"--backend must be torch or onnxruntime, got {backend!r}")
    cfg = TimingConfig(backend=backend, threads=threads, repeats=repeats, rounds=rounds)
    _run(space, "cpu-host", out, cfg, resolutions, n_fit, n_test, seed)


@app.command("cuda")
def cuda(space: str = typer.Option(..., "--space", help="space name or YAML"),
         device: str = typer.Option(..., "--device", help="the GPU's profile to calibrate, e.g. nvidia-h100"),
         batch_size: int = typer.Option(None, "--batch-size", min=1, help="default: the profile's batch size"),
         dtype: str = typer.Option(None, "--dtype", help="fp32 or fp16 (default: the profile's)"),
         out: str = typer.Option(None, "--out", help="profile YAML to write (default runs/profiles/DEVICE.yaml)"),
         resolutions: str = typer.Option(None, "--resolutions"),
         n_test: int = typer.Option(100, "--n-test", min=2), n_fit: int = typer.Option(20, "--n-fit", min=3),
         repeats: int = typer.Option(20, "--repeats", min=1), rounds: int = typer.Option(2, "--rounds", min=1),
         seed: int = typer.Option(0, "--seed")) -> None:
    """Measure this machine's CUDA GPU (CUDA events) and write the calibrated profile of DEVICE."""
    from hw_profiles.measure import TimingConfig

    base = load_profile(device)
    if base.kind != "gpu":
        raise ProfileError(f"--device '{device}' is a {base.kind}; `nas profile cuda` calibrates a gpu profile")
    dt = dtype or (base.latency.dtype if base.latency.dtype in ("fp32", "fp16") else "fp32")
    cfg = TimingConfig(backend="cuda", batch_size=batch_size or base.latency.batch_size, dtype=dt,
                       repeats=repeats, rounds=rounds, warmup=5)
    _run(space, base.name, out, cfg, resolutions, n_fit, n_test, seed)
