"""Experiments: a YAML spec (run, devices with their constraints, objectives, strategy, budget, seed) and
`run_experiment`, which runs one search per device on the predictors and writes, per device, the trials table,
the Pareto front, the best feasible arch and a Pareto plot.

    spec = ExperimentSpec.from_yaml("experiments/search-tiny.yaml")
    summary = run_experiment(spec, "runs/search-tiny")
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from supernet._io import read_yaml, write_via_path
from supernet import SearchSpace
from supernet.errors import NasError

# Objectives and constraints a device search can use: the columns of `predictors.Predictors.predict`.
METRICS = ("accuracy", "latency_ms", "sram_bytes", "flash_bytes", "macs", "params")
CONSTRAINTS = ("latency_ms", "sram_bytes", "flash_bytes", "macs", "params")
# Bounds on a spec's numbers: the whole budget (per device × devices) fits a 32-bit column on every database,
# a seed is what NumPy's and Optuna's generators take, a name fits the store's columns and is a path component.
MAX_BUDGET, MAX_DEVICES, MAX_SEED, MAX_NAME = 1_000_000, 32, 2**32 - 1, 128
MAX_BUDGET_SECONDS = 7 * 24 * 3600.0  # a week: past it a time limit is a typo
# Strategy options that choose where a search's work goes (a network address): the server's to set, never a
# client's (`nas serve --ray-address`); a spec sent to a server asks for the server's cluster by leaving them out.
SERVER_OPTIONS = ("ray_address",)
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class SpecError(NasError):
    """An experiment spec is malformed or asks for something impossible; says which field and what is allowed."""


class DeviceSpec(BaseModel):
    """One target device (a profile name from `nas devices`, or a profile YAML path) and its budget: per
    constraint an upper bound, or a share of the largest subnet's predicted figure on that device ("60%")."""

    model_config = ConfigDict(extra="forbid")
    name: str
    constraints: dict[str, float | str] = Field(default_factory=dict)

    @field_validator("constraints")
    @classmethod
    def _known(cls, value: dict[str, float | str]) -> dict[str, float | str]:
        out: dict[str, float | str] = {}
        for key, bound in value.items():
            if key not in CONSTRAINTS:
                raise ValueError(f"unknown constraint '{key}'; allowed: {', '.join(CONSTRAINTS)}")
            if isinstance(bound, str):
                share = relative_percent(bound)
                if share is None:
                    try:
                        bound = float(bound)
                    except ValueError:
                        raise ValueError(f"constraint '{key}' must be a number or a share of the largest "
                                         f"subnet's figure like '60%', got {bound!r}") from None
                elif not share > 0:
                    raise ValueError(f"constraint '{key}' must be a share above 0%, got {bound!r}")
                else:
                    out[key] = bound.strip()
                    continue
            if not bound > 0 or math.isinf(bound):
                raise ValueError(f"constraint '{key}' must be a positive finite upper bound, got {bound}")
            out[key] = bound
        return out


def relative_percent(bound: Any) -> float | None:
    """A relative budget's percentage of the largest subnet's figure ("60%" -> 60.0), or None for an absolute one."""
    m = _RELATIVE.match(bound) if isinstance(bound, str) else None
    return None if m is None else float(m.group(1))


class ExperimentSpec(BaseModel):
    """A search experiment: which supernet, which devices under which budgets, what to optimise, how long."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME)
    run: Path | None = None  # a training run folder: its space and its fitted accuracy predictor
    space: str | None = None  # a space preset or YAML, when searching without a trained run
    devices: list[DeviceSpec] = Field(min_length=1, max_length=MAX_DEVICES)
    objectives: dict[str, Literal["minimize", "maximize"]] = Field(min_length=1)
    strategy: str | None = None
    strategy_options: dict[str, Any] = Field(default_factory=dict)  # checked by check_spec against the strategy
    budget: int = Field(gt=0, le=MAX_BUDGET, description="trials per device")
    budget_seconds: float | None = Field(default=None, gt=0, le=MAX_BUDGET_SECONDS, allow_inf_nan=False,
                                          description="wall-time limit per device search")
    seed: int = Field(default=0, ge=0, le=MAX_SEED)

    @field_validator("objectives")
    @classmethod
    def _metrics(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in METRICS:
                raise ValueError(f"unknown objective '{key}'; allowed: {', '.join(METRICS)}")
        return value

    @classmethod
    def from_dict(cls, data: Any, source: str = "spec") -> "ExperimentSpec":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: an experiment spec must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "spec"
            msg = err["msg"].removeprefix("Value error, ")
            raise SpecError(f"{source}: field '{where}': {msg}", loc=err["loc"]) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ExperimentSpec":
        return cls.from_dict(read_yaml(path, SpecError, "experiment spec"), source=str(path))


def _space(spec: ExperimentSpec) -> SearchSpace:
    if spec.run is not None:
        from supernet.run import RUN_JSON, read_run_info

        if not (spec.run / RUN_JSON).is_file():
            raise SpecError(f"field 'run': '{spec.run}' is not a training run folder (no run.json)", loc=("run",))
        try:
            return SearchSpace.from_dict(read_run_info(spec.run).space)
        except NasError as exc:
            raise SpecError(f"field 'run': {exc}", loc=("run",)) from None
    if spec.space is None:
        raise SpecError("give field 'run' (a trained run folder) or field 'space' (a space preset)", loc=("run",))
    try:
        return SearchSpace.preset(spec.space)
    except NasError as exc:
        raise SpecError(f"field 'space': {exc}", loc=("space",)) from None


def _predictors(spec: ExperimentSpec, space: SearchSpace, device: str) -> Any:
    from predictors import Predictors

    return Predictors.for_run(spec.run, device) if spec.run is not None else Predictors(space, device)


def check_strategy(spec: ExperimentSpec, *, from_client: bool = False) -> None:
    """The spec's strategy and its options, checked as the strategy itself checks them (known names, types,
    ranges); `from_client`: the spec came to a server, which alone sets SERVER_OPTIONS. Raises SpecError."""
    from nas.search import available_strategies, get_strategy

    if spec.strategy is None:
        if spec.strategy_options:
            raise SpecError("field 'strategy_options': options need field 'strategy' (the default strategy "
                            f"takes none); allowed strategies: {', '.join(available_strategies())}",
                            loc=("strategy_options",))
        return
    if spec.strategy not in available_strategies():
        raise SpecError(f"field 'strategy': unknown strategy '{spec.strategy}'; "
                        f"allowed: {', '.join(available_strategies())}", loc=("strategy",))
    for key in SERVER_OPTIONS:
        if from_client and key in spec.strategy_options:
            raise SpecError(f"field 'strategy_options.{key}': set by the server (nas serve --{key.replace('_', '-')}"
                            "); leave it out to search on the server's cluster", loc=("strategy_options", key))
    try:
        get_strategy(spec.strategy, **spec.strategy_options)
    except NasError as exc:
        raise SpecError(f"field 'strategy_options': {exc}", loc=("strategy_options",)) from None


def check_spec(spec: ExperimentSpec, *, from_client: bool = False) -> dict[str, Any]:
    """Everything that can be known wrong before searching: unknown devices, strategies and their options,
    objectives the predictors cannot give, constraints no subnet can meet. The one check of a spec, for the CLI,
    the API (at creation) and the worker alike. Returns the predictors per device name; raises SpecError."""
    space = _space(spec)
    if "accuracy" in spec.objectives and spec.run is None:
        raise SpecError("field 'objectives': 'accuracy' needs field 'run' (a trained run with a fitted accuracy "
                        "predictor); without one use latency_ms, sram_bytes, flash_bytes, macs or params",
                        loc=("objectives",))
    check_strategy(spec, from_client=from_client)
    names = [d.name for d in spec.devices]
    if len(set(names)) != len(names):
        raise SpecError(f"field 'devices': each device may appear once, got {names}", loc=("devices",))
    found: dict[str, Any] = {}
    smallest = space.encode([space.smallest(r) for r in space.resolutions])
    for i, dev in enumerate(spec.devices):
        from hw_profiles import ProfileError, list_profiles, load_profile

        try:
            load_profile(dev.name)
        except ProfileError as exc:
            raise SpecError(f"field 'devices.{i}.name': unknown device '{dev.name}'; allowed: "
                            f"{', '.join(list_profiles())} (or a profile YAML path) ({exc})",
                            loc=("devices", i, "name")) from None
        try:
            preds = _predictors(spec, space, dev.name)
        except NasError as exc:
            raise SpecError(f"field 'devices.{i}' ({dev.name}): {exc}", loc=("devices", i)) from None
        floor = preds.predict(smallest).min()
        for key, bound in _bounds(dev, preds).items():
            if bound < floor[key]:
                given = dev.constraints[key]
                shown = f"{bound:g}" if given == bound else f"{given} (= {bound:g})"
                raise SpecError(f"field 'devices.{i}.constraints.{key}' = {shown} is impossible on "
                                f"{dev.name}: the smallest subnet already needs {floor[key]:g}",
                                loc=("devices", i, "constraints", key))
        found[dev.name] = preds
    return found


def _bounds(dev: DeviceSpec, preds: Any) -> dict[str, float]:
    """A device's constraints as absolute upper bounds: a share ("60%") of the largest subnet's predicted
    figure on the device (at the space's largest resolution), a number as it is."""
    percent = {k: relative_percent(v) for k, v in dev.constraints.items() if relative_percent(v) is not None}
    largest = preds.predict([preds.space.largest()], columns=list(percent)).iloc[0] if percent else None
    return {k: float(largest[k]) * percent[k] / 100.0 if k in percent else float(v)
            for k, v in dev.constraints.items()}


def resolve_budgets(spec: ExperimentSpec, predictors: dict[str, Any] | None = None) -> ExperimentSpec:
    """The spec with every relative budget ("60%") replaced by its absolute figure on its device (see
    `check_spec`, which checks them; `predictors`: what it returned, to not load them again)."""
    predictors = predictors if predictors is not None else check_spec(spec)
    devices = [dev.model_copy(update={"constraints": _bounds(dev, predictors[dev.name])}) for dev in spec.devices]
    return spec.model_copy(update={"devices": devices})


class PredictorObjective:
    """The search's batch objective on predictors: `evaluate_batch(codes)` -> their columns for those archs.

    With a `recipe` (run folder or None, space dict, device) it pickles as the recipe and rebuilds its
    predictors where it lands (a Ray worker), since fitted predictors need not be picklable themselves."""

    source = "predicted"

    def __init__(self, predictors: Any, names: list[str], recipe: tuple[Any, dict, str] | None = None):
        self.predictors, self.names, self.recipe = predictors, names, recipe

    def evaluate_batch(self, codes: np.ndarray, columns: list[str] | None = None) -> dict[str, np.ndarray]:
        return self.predictors.predict_columns(codes, columns=columns)

    def evaluate_constraints(self, codes: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The constraint columns alone (latency, memory: no accuracy predictor), for screening candidates."""
        return self.predictors.predict_columns(codes, columns=names)

    def __getstate__(self) -> dict[str, Any]:
        if self.recipe is None:
            return self.__dict__
        return {"names": self.names, "recipe": self.recipe}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "predictors" not in state:
            from predictors import Predictors

            run_dir, space, device = self.recipe
            self.predictors = (Predictors.for_run(run_dir, device) if run_dir is not None
                               else Predictors(SearchSpace.from_dict(space), device))


def _plot(path: Path, trials: pd.DataFrame, pareto: pd.DataFrame, best: pd.Series | None,
          objectives: dict[str, str], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(objectives)
    y = names[0]
    x = names[1] if len(names) > 1 else ("latency_ms" if names[0] != "latency_ms" else "macs")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    feas = trials["feasible"].to_numpy(bool)
    ax.scatter(trials.loc[~feas, x], trials.loc[~feas, y], s=6, c="#cccccc", label="infeasible")
    ax.scatter(trials.loc[feas, x], trials.loc[feas, y], s=6, c="#4c72b0", alpha=0.6, label="feasible")
    if len(pareto) and x in pareto:
        front = pareto.sort_values(x)
        ax.plot(front[x], front[y], "-o", c="#dd8452", ms=4, label="Pareto front")
    if best is not None:
        ax.scatter([best[x]], [best[y]], marker="*", s=260, c="#c44e52", edgecolors="k", zorder=5,
                   label="chosen (best feasible)")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()

    def save(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    try:
        return write_via_path(path, save)
    finally:
        plt.close(fig)


def run_experiment(spec: ExperimentSpec, out_dir: str | Path, *, storage: str | None = None,
                   progress: Callable[[str, int, int, dict[str, float] | None], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, ray_address: str | None = None,
                   from_client: bool = False, study_name: str | None = None) -> dict[str, Any]:
    """Run one search per device of `spec` into `out_dir` (laid out as `nas.search.output` says); return a
    summary (per device: files and best figures).

    storage: Optuna storage URL (default: SQLite `out_dir/search.db`); started again on the same storage, an
      experiment resumes each device's study where it stopped.
    progress: `progress(device, done, budget, best_values)` after each recorded batch.
    should_stop: polled between batches; True ends the experiment early (`summary["stopped"]`), trials kept.
    ray_address: a Ray cluster for the `ray-tune` strategy.
    from_client: the spec came from a server's client (see `check_spec`).
    study_name: the Optuna studies are named `output.study_name(study_name, device)` (default: the spec's name).
    """
    from nas.search import Constraint, get_strategy, run
    from nas.search.output import SearchOutput, study_name as device_study

    if not isinstance(spec, ExperimentSpec):
        raise SpecError(f"expected an ExperimentSpec, got {type(spec).__name__}")
    predictors = check_spec(spec, from_client=from_client)
    resolved = resolve_budgets(spec, predictors)
    options = dict(spec.strategy_options)
    strategy_name = spec.strategy
    if ray_address:
        if strategy_name not in (None, "ray-tune"):
            raise SpecError(f"a Ray address needs field 'strategy' to be ray-tune (or unset), got '{spec.strategy}'")
        strategy_name, options["ray_address"] = "ray-tune", ray_address
        try:
            get_strategy(strategy_name, **options)
        except NasError as exc:
            raise SpecError(f"ray address: {exc}") from None
    out = SearchOutput(out_dir)
    out.write_spec(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    storage = storage or out.default_storage()
    study_name = study_name or spec.name
    summary: dict[str, Any] = {"name": study_name, "storage": storage, "stopped": False, "devices": {}}
    for dev in resolved.devices:
        if should_stop is not None and should_stop():
            summary["stopped"] = True
            break
        preds = predictors[dev.name]
        names = list(spec.objectives)
        strategy = get_strategy(strategy_name, **options) if strategy_name else None
        recipe = (spec.run.resolve() if spec.run else None, preds.space.to_dict(), dev.name)
        objective = PredictorObjective(preds, names, recipe)
        res = run(preds.space, objective, directions=dict(spec.objectives),
                  budget=spec.budget, seed=spec.seed, strategy=strategy,
                  constraints=[Constraint(k, v) for k, v in dev.constraints.items()], storage=storage,
                  study_name=device_study(study_name, dev.name),
                  progress=None if progress is None else (lambda d, t, b, _n=dev.name: progress(_n, d, t, b)),
                  should_stop=should_stop, budget_seconds=spec.budget_seconds)
        summary["devices"][dev.name] = _write_device(out, dev, spec, preds, res)
        if res.stopped:
            summary["stopped"] = True
            break
    out.write_summary(summary)
    return summary


# the predicted columns in the order `Predictors.predict` gives them, for the trials table's columns
_PREDICTED_ORDER = ("macs", "params", "latency_ms", "sram_bytes", "flash_bytes", "fits", "sram_margin_bytes",
                    "flash_margin_bytes", "accuracy", "accuracy_std")


def _trials_table(res: Any, preds: Any) -> pd.DataFrame:
    """The search's trials with every predicted figure beside the searched ones (so the table answers "what
    else does this arch cost") and the arch as JSON: the figures the search's objective returned are kept as
    they were; the predictors run only for those it did not (counting, memory: never accuracy twice)."""
    trials = res.trials
    if not len(trials):
        return trials
    frame = res.frame if res.frame is not None else pd.DataFrame(index=trials.index)
    known = set(trials) | set(frame)
    wanted = [c for c in (*CONSTRAINTS, "fits") if c not in known]
    if preds.accuracy is not None and not {"accuracy", "accuracy_std"} <= known:
        wanted.append("accuracy")
    more = preds.predict(res.codes, columns=wanted) if wanted else pd.DataFrame(index=trials.index)
    extra = pd.concat([frame[[c for c in frame if c not in trials]],
                       more[[c for c in more if c not in known]]], axis=1)
    extra = extra[sorted(extra, key=lambda c: _PREDICTED_ORDER.index(c) if c in _PREDICTED_ORDER else 99)]
    if "fits" in extra:
        extra["fits"] = extra["fits"].astype(bool)
    trials = pd.concat([trials, extra.reset_index(drop=True)], axis=1)
    trials["arch"] = [a.to_json() for a in preds.space.decode(res.codes)]
    return trials


def _write_device(out: Any, dev: DeviceSpec, spec: ExperimentSpec, preds: Any, res: Any) -> dict[str, Any]:
    space: SearchSpace = preds.space
    trials = _trials_table(res, preds)
    pareto = trials[trials["trial"].isin(res.pareto["trial"])].sort_values(list(spec.objectives)[0])
    best_row = None if res.best_trial is None else trials.iloc[res.best_trial]
    meta = None
    if best_row is not None:
        meta = {"device": dev.name, "space": space.name, "constraints": dev.constraints,
                "predicted": {k: _num(best_row[k]) for k in (*METRICS, "fits") if k in best_row},
                "trial": int(best_row["trial"])}
    files = out.write_device(dev.name, trials, pareto, best=res.best, meta=meta,
                             plot=lambda path: _plot(path, trials, pareto, best_row, spec.objectives,
                                                     f"{spec.name} on {dev.name}"))
    return {**files, "constraints": dev.constraints, "n_trials": int(len(trials)),
            "n_feasible": int(trials["feasible"].sum()) if len(trials) else 0,
            "pareto_size": int(len(pareto)), "best": res.best_values, "strategy": res.strategy,
            "study_name": res.study_name, "stopped": res.stopped, "resumed_from": res.resumed_from}


def _num(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
