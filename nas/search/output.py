"""A search's output folder (what `nas search` and the service's experiments write), written and read only here.

    OUT/
      spec.yaml             the experiment spec as it was given
      search.db             the default Optuna storage: one study per device, named `study_name(base, device)`
      summary.json          per device: its files (paths relative to OUT), trial counts, the best values
      <device_dir_name(device)>/
        trials.parquet      every trial (.csv without pyarrow): parameters, objectives, every predicted figure,
                            `feasible`, `source`, `arch` (the arch as JSON)
        pareto.csv          the feasible Pareto front: rows of the trials table, by the first objective
        arch.json           the best feasible arch alone, in OFA's keys: `ArchConfig.from_dict` reads it
        search.json         what the search knew of that arch: device, space, constraints (absolute), the
                            predicted figures, its trial number
        pareto.png          the front, the chosen arch starred

Folders written before `search.json` existed hold the metadata inside `arch.json`, and their `summary.json`
holds absolute paths or paths relative to the directory the search ran in; both are still read.

    out = SearchOutput("runs/search-tiny")
    out.best("stm32f746").arch            # {"ks": [...], "e": [...], "d": [...], "r": 32}
    out.pareto_rows("stm32f746", {"params": "maximize"}, ["latency_ms"])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nas.search._problem import SearchError
from supernet._io import write_via_path

SPEC, STORAGE, SUMMARY = "spec.yaml", "search.db", "summary.json"
TRIALS, PARETO, ARCH, META, PLOT = "trials", "pareto.csv", "arch.json", "search.json", "pareto.png"
ARCH_KEYS = ("ks", "e", "d", "r")
# the per-device entries of summary.json that name files, and the file each names when the entry is missing
FILE_KEYS = {"trials": None, "pareto": PARETO, "arch": ARCH, "meta": META, "plot": PLOT}


class SearchOutputError(SearchError):
    """A search output folder lacks what was asked of it (the folder, a device, a feasible arch) or is malformed."""


def device_dir_name(device: str) -> str:
    """The folder of a device's results: its profile name, or a profile YAML path's stem, made a safe name."""
    stem = Path(device).stem if device.endswith((".yaml", ".yml")) else device
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem) or "device"


def study_name(base: str, device: str) -> str:
    """The Optuna study of one device's search: `<base>:<device>` (base: the spec's name, or for the service's
    experiments `service_study_base`)."""
    return f"{base}:{device}"


def service_study_base(name: str, experiment_id: str) -> str:
    """The study base of a service experiment: per experiment, so two experiments never share trials."""
    return f"{name}-{experiment_id}"


def write_table(path: Path, df: pd.DataFrame) -> Path:
    """`df` as `path`.parquet (or .csv when pyarrow is missing), written whole."""
    try:
        import pyarrow  # noqa: F401

        return write_via_path(path.with_suffix(".parquet"), lambda tmp: df.to_parquet(tmp, index=False))
    except ImportError:
        return write_via_path(path.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _write_json(path: Path, data: Any) -> Path:
    return write_via_path(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, default=str)))


@dataclass(frozen=True)
class BestArch:
    """A device's best feasible arch (OFA keys, `ArchConfig.from_dict(arch)`) and what the search recorded of it
    (`meta`: device, space, constraints, predicted)."""

    arch: dict[str, Any]
    meta: dict[str, Any]

    @property
    def space(self) -> str | None:
        return self.meta.get("space")

    @property
    def predicted(self) -> dict[str, Any] | None:
        return self.meta.get("predicted")


class SearchOutput:
    """One search output folder: where each file of a device goes, writing them whole, and reading them back."""

    def __init__(self, root: str | Path, *, within: str | Path | None = None):
        """within: read no file outside this folder (a server's own folder; summary.json may name any path)."""
        self.root = Path(root)
        self.within = None if within is None else Path(within)

    def device_dir(self, device: str) -> Path:
        return self.root / device_dir_name(device)

    def default_storage(self) -> str:
        """The Optuna storage URL when none is given: SQLite `search.db` in the folder."""
        return f"sqlite:///{(self.root / STORAGE).resolve()}"

    # ---------------------------------------------------------------- writing
    def write_spec(self, text: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return write_via_path(self.root / SPEC, lambda tmp: Path(tmp).write_text(text))

    def write_device(self, device: str, trials: pd.DataFrame, pareto: pd.DataFrame, *, best: Any = None,
                     meta: Mapping[str, Any] | None = None,
                     plot: Callable[[Path], Path] | None = None) -> dict[str, str | None]:
        """Write a device's trials, front, best arch (an ArchConfig, or None when no trial was feasible) with its
        `meta` beside it, and its plot (`plot(path)` writes the figure whole); returns the files written."""
        folder = self.device_dir(device)
        files: dict[str, str | None] = {
            "trials": str(write_table(folder / TRIALS, trials)),
            "pareto": str(write_via_path(folder / PARETO, lambda tmp: pareto.to_csv(tmp, index=False)))}
        if best is not None:
            files["arch"] = str(_write_json(folder / ARCH, best.to_dict()))
            files["meta"] = str(_write_json(folder / META, dict(meta or {})))
        else:
            for stale in (ARCH, META):  # a resumed search that found nothing keeps no best of an older run
                (folder / stale).unlink(missing_ok=True)
            files["arch"] = files["meta"] = None
        files["plot"] = str(plot(folder / PLOT)) if plot is not None else None
        return files

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """Write `summary.json`, the devices' file paths made relative to the folder."""
        out = dict(summary)
        out["devices"] = {d: {k: self._relative(v) if k in FILE_KEYS and v else v for k, v in info.items()}
                          for d, info in (summary.get("devices") or {}).items()}
        return _write_json(self.root / SUMMARY, out)

    def _relative(self, path: str) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:  # outside the folder (never written so here): kept as it is
            return str(path)

    # ---------------------------------------------------------------- reading
    def summary(self) -> dict[str, Any] | None:
        """`summary.json` with each device's files as paths (to existing files where one exists), or None when
        the folder has none. Raises SearchOutputError when it is malformed."""
        path = self.root / SUMMARY
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            devices = data.get("devices") or {}
            if not isinstance(devices, dict):
                raise AttributeError("'devices' is not a mapping")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise SearchOutputError(f"{path} is malformed: {exc}") from None
        data["devices"] = {d: {k: str(self._resolve(d, v)) if k in FILE_KEYS and v else v
                               for k, v in info.items()} if isinstance(info, dict) else info
                           for d, info in devices.items()}
        return data

    def _resolve(self, device: str, recorded: str) -> Path:
        """A file path recorded in summary.json: relative to the folder (now), absolute, or relative to where
        the search ran (before); else the file of that name in the device's folder."""
        p = Path(recorded)
        tries = [p] if p.is_absolute() else [self.root / p, p]
        tries.append(self.device_dir(device) / p.name)
        return next((t for t in tries if t.is_file()), tries[0])

    def devices(self) -> list[str]:
        """The devices the folder has results for (from summary.json, else the device folders with an arch)."""
        summary = self.summary()
        if summary is not None:
            return sorted(summary["devices"])
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / ARCH).is_file())

    def file(self, device: str, key: str) -> Path | None:
        """The existing file `key` (trials, pareto, arch, meta, plot) of `device`, or None."""
        summary = self.summary()
        entry = (summary or {}).get("devices", {}).get(device)
        if isinstance(entry, dict) and key in entry:  # recorded (None: no feasible arch)
            found = [Path(entry[key])] if entry[key] else []
        else:
            folder, name = self.device_dir(device), FILE_KEYS.get(key)
            found = [folder / name] if name else [folder / f"{TRIALS}.parquet", folder / f"{TRIALS}.csv"]
        return next((p for p in found if p.is_file() and self._allowed(p)), None)

    def _allowed(self, path: Path) -> bool:
        if self.within is None:
            return True
        try:
            return path.resolve().is_relative_to(self.within.resolve())
        except OSError:
            return False

    def best(self, device: str) -> BestArch:
        """The best feasible arch the search found for `device`, and its metadata. Raises SearchOutputError when
        the folder, the device or a feasible arch is missing."""
        if not self.root.is_dir():
            raise SearchOutputError(f"search folder '{self.root}' does not exist")
        summary = self.summary()
        entry = (summary or {}).get("devices", {}).get(device)
        if isinstance(entry, dict) and not entry.get("arch"):
            raise SearchOutputError(f"the search in '{self.root}' found no feasible arch for device '{device}'")
        path = self.file(device, "arch")
        if path is None:
            raise SearchOutputError(f"the search in '{self.root}' has no best arch for '{device}'; devices "
                                    f"searched: {', '.join(self.devices()) or 'none'}")
        data = _read_json(path)
        missing = [k for k in ARCH_KEYS if k not in data]
        if missing:
            raise SearchOutputError(f"{path} lacks the arch field(s) {', '.join(missing)}")
        meta = {k: v for k, v in data.items() if k not in ARCH_KEYS}  # an arch.json written before search.json
        meta_path = self.file(device, "meta")
        if meta_path is not None:
            meta.update(_read_json(meta_path))
        return BestArch({k: data[k] for k in ARCH_KEYS}, meta)

    def trials(self, device: str) -> pd.DataFrame | None:
        """The device's trials table, or None when the search wrote none."""
        path = self.file(device, "trials")
        return None if path is None else read_table(path)

    def pareto_rows(self, device: str, objectives: Mapping[str, str],
                    constraints: Sequence[str] = ()) -> list[dict[str, Any]] | None:
        """The device's Pareto front as rows (`pareto_rows`), or None when the search wrote none."""
        path = self.file(device, "pareto")
        return None if path is None else pareto_rows(pd.read_csv(path), objectives, constraints)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SearchOutputError(f"{path} is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise SearchOutputError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------- rows: finished or live, one shape
def pareto_rows(front: pd.DataFrame, objectives: Mapping[str, str],
                constraints: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A Pareto front as rows of one shape, whether it comes from a finished search's `pareto.csv` or from a
    running search's study (`study_table` then `front_mask`): `trial` (its number), `arch` (OFA keys),
    `feasible`, then each objective's and each constraint's value by name (None where unknown). Rows keep the
    order they come in (by the first objective, ascending, as both sources give them)."""
    names = list(dict.fromkeys([*objectives, *constraints]))
    rows = []
    for rec in front.to_dict("records"):
        row: dict[str, Any] = {"trial": int(rec["trial"]), "arch": json.loads(rec["arch"]),
                               "feasible": bool(rec["feasible"])}
        for name in names:
            value = rec.get(name)
            row[name] = None if value is None or not np.isfinite(float(value)) else float(value)
        rows.append(row)
    return rows


def front_mask(trials: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """(N,) bool: the feasible, non-dominated rows of a trials table, an arch sampled twice on it once, as the
    search's own Pareto table has them."""
    from nas.search._pareto import nondominated_mask

    names = [o for o in objectives if o in trials]
    front = np.zeros(len(trials), bool)
    if not len(trials) or not names:
        return front
    values = trials[names].to_numpy(np.float64)
    rows = np.flatnonzero(trials["feasible"].to_numpy(bool) & np.isfinite(values).all(1))
    if len(rows):
        on_front = rows[nondominated_mask(values[rows], [objectives[o] for o in names])]
        if "arch" in trials:
            on_front = on_front[~trials["arch"].iloc[on_front].duplicated().to_numpy()]
        front[on_front] = True
    return front


def live_pareto_rows(trials: pd.DataFrame, objectives: Mapping[str, str],
                     constraints: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The Pareto front of the trials recorded so far (`study_table`), as `pareto_rows`."""
    front = trials[front_mask(trials, objectives)]
    if len(front) and objectives:
        front = front.sort_values(next(iter(objectives)), kind="stable")
    return pareto_rows(front, objectives, constraints)


def study_table(storage: Any, study: str, objectives: Sequence[str]) -> pd.DataFrame:
    """The finished trials of a running (or stopped) search's study as a trials table: `trial`, the
    objectives, the constraint values, `feasible` and `arch` (JSON), one row per trial in trial order."""
    from nas.search._store import study_trials

    trials = study_trials(storage, study) or []
    if not trials:
        return pd.DataFrame({"trial": pd.Series(dtype=int), "arch": pd.Series(dtype=str),
                             "feasible": pd.Series(dtype=bool), **{o: pd.Series(dtype=float) for o in objectives}})
    return pd.DataFrame([{"trial": t["trial"], **dict(zip(objectives, t["values"])), **t["constraints"],
                          "feasible": t["feasible"], "arch": _arch_json(t["params"])} for t in trials])


def _arch_json(params: Mapping[str, Any]) -> str:
    """A study trial's parameters (ks_i, e_i, d_j, r) as the arch JSON the trials tables hold."""
    from supernet import ArchConfig

    def seq(prefix: str) -> list[Any]:
        return [params[f"{prefix}_{i}"] for i in range(sum(k.startswith(prefix + "_") for k in params))]

    return ArchConfig.from_dict({"ks": seq("ks"), "e": seq("e"), "d": seq("d"), "r": params["r"]}).to_json()
