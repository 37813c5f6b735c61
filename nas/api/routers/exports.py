"""POST /exports (202 + id), GET /exports/{id}, GET /exports/{id}/download: export bundles built by a worker
process and served as a zip, only ever from the store's own exports folder."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse

from nas.api.deps import get_runner, get_settings, get_store
from nas.api.errors import ApiError, Conflict, FieldError
from nas.api.openapi import error_responses
from nas.api.queue import get_with_job, list_with_jobs, queue_job
from nas.service.resolve import inside, load_device, resolve_run_dir
from nas.api.schemas import Accepted, ExportOut, ExportRequest
from nas.service.jobs import JobRunner
from nas.service.settings import Settings
from nas.service.store import Experiment, Export, Job, Store
from supernet.errors import InvalidArchError, NasError

router = APIRouter(prefix="/exports", tags=["exports"])


def export_out(ex: Export, job: Job) -> ExportOut:
    return ExportOut(id=ex.id, run=ex.run_id, device=ex.device, arch=ex.arch, experiment=ex.experiment_id,
                     files=list(ex.files or []), status=job.status, progress=job.progress, message=job.message,
                     error=job.error, attempts=job.attempts, interruptions=job.interruptions,
                     created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
                     download=f"/exports/{ex.id}/download" if job.status == "succeeded" else None)


def _get(store: Store, export_id: str) -> tuple[Export, Job]:
    return get_with_job(store, Export, export_id, "export")


@router.post("", status_code=202, response_model=Accepted)
def create_export(body: ExportRequest, response: Response, store: Store = Depends(get_store),
                  settings: Settings = Depends(get_settings), runner: JobRunner = Depends(get_runner)) -> Accepted:
    run_id, arch = body.run, body.arch.model_dump() if body.arch is not None else None
    if body.experiment is not None:
        with store.session() as s:
            exp = s.get(Experiment, body.experiment)
            if exp is None:
                raise FieldError(("body", "experiment"), f"unknown experiment '{body.experiment}'")
            best, exp_run = dict(exp.best or {}), exp.run_id
        if arch is None:
            found = (best.get(body.device) or {}).get("arch")
            if not found:
                raise FieldError(("body", "device"), f"experiment '{body.experiment}' has no best arch for "
                                                     f"device '{body.device}' (yet)", allowed=sorted(best))
            arch = found
        run_id = run_id or exp_run
    if run_id is None:
        raise FieldError(("body", "run"), "give the trained run to export from (or an experiment that names one)")
    run_dir = resolve_run_dir(store, settings, run_id, ("body", "run"))
    load_device(store, body.device, ("body", "device"))
    if arch is None:
        raise FieldError(("body", "arch"), "give an arch, or an experiment whose best arch for the device to export")
    from supernet import SearchSpace
    from supernet.run import read_run_info

    info = read_run_info(run_dir)
    try:
        SearchSpace.from_dict(info.space).arch_from_dict(arch)
    except InvalidArchError as exc:
        raise FieldError(("body", "arch"), str(exc), type_="invalid_arch") from None
    try:
        from nas.export.finetune import finetune_steps

        finetune_steps(body.finetune, info.extra.get("steps"))
    except NasError as exc:
        raise FieldError(("body", "finetune"), str(exc)) from None
    return queue_job(store, runner, response, "export", lambda job: Export(
        run_id=run_id, device=body.device, arch=arch, experiment_id=body.experiment, job_id=job.id,
        options={"formats": body.formats, "finetune": body.finetune}), "/exports")


@router.get("", response_model=list[ExportOut])
def list_exports(store: Store = Depends(get_store)) -> list[ExportOut]:
    return [export_out(ex, job) for ex, job in list_with_jobs(store, Export)]


@router.get("/{export_id}", response_model=ExportOut)
def get_export(export_id: str, store: Store = Depends(get_store)) -> ExportOut:
    return export_out(*_get(store, export_id))


@router.get("/{export_id}/download", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}, **error_responses(409, 410)})
def download_export(export_id: str, store: Store = Depends(get_store),
                    settings: Settings = Depends(get_settings)) -> FileResponse:
    ex, job = _get(store, export_id)
    if job.status != "succeeded" or not ex.bundle_dir:
        raise Conflict(f"export '{export_id}' is {job.status}; its bundle can be downloaded once it succeeded")
    root = settings.exports_dir
    bundle = Path(ex.bundle_dir)
    if not inside(bundle, root) or not bundle.is_dir():
        raise ApiError(410, f"export '{export_id}' bundle is no longer in the store's exports folder")
    archive = root / f"{export_id}.zip"
    if not archive.is_file():
        _zip_whole(bundle, archive)
    return FileResponse(archive, media_type="application/zip", filename=f"{export_id}-{ex.device}.zip")


def _zip_whole(folder: Path, archive: Path) -> None:
    """Zip `folder` (regular files only, no links followed out of it) to a temp name, then rename."""
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(folder.rglob("*")):
                if p.is_file() and not p.is_symlink() and inside(p, folder):
                    zf.write(p, p.relative_to(folder).as_posix())
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
