"""`nas run import-ofa`: make a run folder from once-for-all's released ImageNet supernet weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nas.cli._common import emit

app = typer.Typer(help="Run folders: import once-for-all's published supernets as finished runs.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run folders: import once-for-all's published supernets as finished runs."""


@app.command("import-ofa")
def import_ofa(checkpoint: Path = typer.Argument(..., help="OFA's weight file (ofa_mbv3_d234_e346_k357_w1.0 or "
                                                             "_w1.2): {'state_dict': ...} or a bare state dict"),
               space: str = typer.Option(..., "--space", help="ofa-mbv3-w1.0 | ofa-mbv3-w1.2 (the file's width)"),
               out: Path = typer.Option(..., "--out", help="the new run folder (must not exist, or be empty)"),
               data_dir: Optional[str] = typer.Option(None, "--data-dir",
                                                      help="ImageNet folder with train/<wnid>/ and val/<wnid>/ "
                                                           "(else $NAS_DATA_DIR or $NAS_DATA_DIR/imagenet)"),
               val_size: int = typer.Option(10000, "--val-size", min=1,
                                            help="training images held out as the validation split (OFA: 10,000)")
               ) -> None:
    """Check every key and shape of CHECKPOINT against SPACE and write a finished run folder (JSON on stdout)."""
    import time

    from supernet.ofa import OFA_SPACES
    from supernet.run import import_ofa_run, read_run_info

    if space not in OFA_SPACES:
        from supernet.errors import CheckpointError

        raise CheckpointError(f"--space {space!r} is not allowed; allowed: {', '.join(OFA_SPACES)}")
    t0 = time.perf_counter()
    run_dir = import_ofa_run(checkpoint, space, out, data_dir=data_dir, val_size=val_size)
    info = read_run_info(run_dir)
    emit({"run_dir": str(run_dir), "space": space, "checkpoint_hash": info.checkpoint_hash,
          **{k: info.imported[k] for k in ("source_sha256", "format", "net_id")},
          "seconds": round(time.perf_counter() - t0, 2)})
