"""One settings object for the service: where the store lives, who may call the API, how many workers run.

Read from the environment (`NAS_DB_URL`, `NAS_RUNS_DIR`, `NAS_API_TOKEN` or `NAS_API_TOKEN_FILE`, `NAS_WORKERS`,
`NAS_MAX_UPLOAD_BYTES`, `NAS_RESUME_ON_START`, `NAS_RAY_ADDRESS`) and overridden by `nas serve`'s options.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

_ENV = {
    "db_url": "NAS_DB_URL",
    "runs_dir": "NAS_RUNS_DIR",
    "token": "NAS_API_TOKEN",
    "workers": "NAS_WORKERS",
    "max_upload_bytes": "NAS_MAX_UPLOAD_BYTES",
    "resume_on_start": "NAS_RESUME_ON_START",
    "devices_dir": "NAS_PROFILES_DIR",
    "ray_address": "NAS_RAY_ADDRESS",
    "token_file": "NAS_API_TOKEN_FILE",
}


class Settings(BaseModel):
    """Everything the store, the job runner and the API need to know; nothing else reads the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs_dir: Path = Field(default=Path("runs"), description="trained runs, experiment outputs and exports")
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite:///<runs_dir>/nas.db")
    token: str | None = Field(default=None, description="bearer token every route but /healthz requires")
    workers: int = Field(default=2, ge=1, le=64, description="jobs run at once; the rest wait queued")
    max_upload_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="largest accepted upload")
    resume_on_start: bool = Field(default=True, description="re-queue jobs a killed server left running")
    devices_dir: Path | None = Field(default=None, description="device profiles added here (default "
                                                               "<runs_dir>/profiles)")
    poll_interval_s: float = Field(default=0.2, gt=0, description="how often the job runner looks at the store")
    ray_address: str | None = Field(default=None, description="the Ray cluster searches with strategy ray-tune run "
                                                              "on (None: a Ray started for each such search)")

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Settings from `NAS_*` variables, then `overrides` (None values are ignored)."""
        values: dict[str, object] = {}
        for field, var in _ENV.items():
            raw = os.environ.get(var)
            if raw not in (None, ""):
                values[field] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        token_file = values.pop("token_file", None)
        if token_file is not None and overrides.get("token") is None:  # --token, then a token file, then the variable
            values["token"] = read_token_file(str(token_file))
        return cls.model_validate(values)

    @property
    def database_url(self) -> str:
        """The store's URL; Optuna's storage uses the same database."""
        return self.db_url or f"sqlite:///{(self.runs_dir / 'nas.db').resolve()}"

    @property
    def experiments_dir(self) -> Path:
        return self.runs_dir.resolve() / "experiments"

    @property
    def exports_dir(self) -> Path:
        return self.runs_dir.resolve() / "exports"

    @property
    def profiles_dir(self) -> Path:
        """Device profiles uploaded or fitted through the service (where `hw_profiles` finds measured ones too)."""
        return (self.devices_dir or self.runs_dir / "profiles").resolve()


def read_token_file(path: str) -> str:
    """The token in file `path` (its first line, surrounding whitespace dropped); ValueError if there is none."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"the token file {path} is empty")
    return token
