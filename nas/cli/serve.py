"""`nas serve`: the REST API (uvicorn) with its job runner, over the experiment store."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="port (0: any free port)"),
          db: str | None = typer.Option(None, "--db", help="store URL (default sqlite:///runs/nas.db; "
                                                          "postgresql://... for PostgreSQL) [env NAS_DB_URL]"),
          runs_dir: str | None = typer.Option(None, "--runs-dir", help="runs, experiments and exports folder "
                                                                       "[env NAS_RUNS_DIR, default runs]"),
          token: str | None = typer.Option(None, "--token", help="bearer token on the command line, where `ps` "
                                                                 "shows it: prefer --token-file or NAS_API_TOKEN"),
          token_file: str | None = typer.Option(None, "--token-file", help="file whose first line is the bearer "
                                                                           "token every route but /healthz requires "
                                                                           "[env NAS_API_TOKEN_FILE, or the token "
                                                                           "itself in NAS_API_TOKEN]"),
          ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster for searches with "
                                                                             "strategy ray-tune [env NAS_RAY_ADDRESS; "
                                                                             "default: a Ray per search]"),
          workers: int | None = typer.Option(None, "--workers", min=1, max=64,
                                             help="jobs run at once; more wait queued [env NAS_WORKERS, default 2]"),
          resume: bool | None = typer.Option(None, "--resume/--no-resume",
                                             help="re-queue jobs a killed server left running [default: resume]"),
          log_level: str = typer.Option("info", "--log-level", help="uvicorn log level")) -> None:
    """Serve the REST API (OpenAPI docs at /docs). Jobs run in worker processes; Ctrl-C stops cleanly."""
    import logging

    import uvicorn

    from nas.api import create_app
    from nas.cli._common import fail
    from nas.service.settings import Settings

    if token is not None:
        typer.echo("warning: --token shows the token to anyone who can list processes; use --token-file or "
                   "NAS_API_TOKEN", err=True)
    try:
        settings = Settings.from_env(db_url=db, runs_dir=runs_dir, token=token, token_file=token_file,
                                     workers=workers, resume_on_start=resume, ray_address=ray_address)
    except ValueError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else "invalid settings")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.echo(f"nas serve: store {settings.database_url.split('@')[-1]}, {settings.workers} worker(s), "
               f"token {'required' if settings.token else 'off'}"
               f"{', Ray cluster ' + settings.ray_address if settings.ray_address else ''}", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
