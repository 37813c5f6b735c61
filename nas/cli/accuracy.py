"""`nas accuracy fit|show|import-ofa`: measure subnets of a trained run, fit its accuracy predictor, inspect it, or
import once-for-all's trained one."""

from __future__ import annotations

import typer

from nas.cli._common import emit

app = typer.Typer(help="Accuracy predictor of a trained run: measure subnets (resumable), fit, show fidelity.",
                  no_args_is_help=True)


@app.command("fit")
def fit(run_dir: str = typer.Argument(..., help="training run folder (runs/<name>)"),
        samples: int = typer.Option(500, "--samples", min=10, help="subnets to measure (kept across restarts)"),
        model: str = typer.Option("auto", "--model", help="auto | mlp | gbr | rf | gp | ensemble, or a kind on "
                                  "another feature set, quoted: 'gbr[blocks]'"),
        seed: int = typer.Option(0, "--seed", help="seeds the subnet plan, the split and the models"),
        holdout: float = typer.Option(0.2, "--holdout", help="share of measured subnets held out for fidelity"),
        folds: int = typer.Option(3, "--folds", min=2, help="cross-validation folds for --model auto"),
        bn_images: int = typer.Option(2000, "--bn-images", min=1, help="training images for BN recalibration"),
        val_images: int = typer.Option(5000, "--val-images", min=1, help="validation images per measurement"),
        holdout_val_images: int | None = typer.Option(
            None, "--holdout-val-images", min=1,
            help="validation images per held-out subnet (default: the whole validation split)"),
        device: str = typer.Option("cpu", "--device", help="torch device for measuring (cpu, cuda)"),
        workers: int = typer.Option(0, "--workers", min=0,
                                    help="DataLoader worker processes decoding images (image folders)")) -> None:
    """Measure SAMPLES subnets (BN-recalibrated top-1 on the validation split), choose and fit a model, print
    its held-out fidelity as JSON. Progress goes to stderr; a killed job resumes where it stopped."""
    from predictors.accuracy import fit_run_predictor
    from predictors.accuracy.fit import check_model
    from predictors.accuracy.store import predictor_dir

    check_model(model, "--model")
    p = fit_run_predictor(run_dir, samples=samples, model=model, seed=seed, holdout=holdout, folds=folds,
                          bn_images=bn_images, val_images=val_images, holdout_val_images=holdout_val_images,
                          device=device, progress=True, workers=workers)
    emit({"run": run_dir, "predictor": str(predictor_dir(run_dir)), "checkpoint_hash": p.checkpoint_hash,
          **p.fidelity_report(), "selection": p.info.get("selection", []),
          "measure_seconds": p.info.get("measure_seconds"), "fit_seconds": p.info.get("fit_seconds"),
          **({"replaced": p.info["replaced"]} if p.info.get("replaced") else {})})


@app.command("show")
def show(run_dir: str = typer.Argument(..., help="training run folder")) -> None:
    """Print the stored predictor's kind, checkpoint hash and held-out fidelity as JSON."""
    from predictors.accuracy import load_accuracy_predictor

    p = load_accuracy_predictor(run_dir)
    emit({"run": run_dir, "checkpoint_hash": p.checkpoint_hash, **p.fidelity_report(),
          "params": p.model.params(), "selection": p.info.get("selection", [])})


@app.command("import-ofa")
def import_ofa(file: str = typer.Argument(..., help="OFA's predictor: the tutorial's acc_predictor.pth, or an "
                                                     "ofa.nas.accuracy_predictor.AccuracyPredictor state dict"),
               run_dir: str = typer.Option(..., "--run", help="the run folder (an imported OFA run of that space)"),
               resolutions: str = typer.Option(None, "--resolutions",
                                               help="ofa.nas format only: the encoder's image_size_list, comma-"
                                                    "separated (default inferred: 25 → 128..224 step 4, 4 → 128,"
                                                    "160,192,224, 1 → 224)")) -> None:
    """Make once-for-all's trained accuracy predictor this run's accuracy predictor (predictions as OFA's code)."""
    from predictors.accuracy.store import import_ofa_predictor
    from predictors.accuracy.store import predictor_dir

    res = None
    if resolutions:
        parts = [p.strip() for p in resolutions.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            from nas.cli._common import fail

            fail(f"--resolutions must be comma-separated integers (px), got {resolutions!r}")
        res = [int(p) for p in parts]
    p = import_ofa_predictor(file, run_dir, resolutions=res)
    emit({"run": run_dir, "predictor": str(predictor_dir(run_dir)), "checkpoint_hash": p.checkpoint_hash,
          "model": p.name, "format": p.model.format, "note": p.info["note"],
          "source_sha256": p.info["imported"]["source_sha256"]})
