"""The main job end to end (`nas demo`): train once, fit predictors, profile this CPU, search per device, export
the best subnet per device, measure what can be measured here, and write the report.

Every stage reuses what an earlier run finished (trained run, predictor, profile, search trials, bundles) unless
`fresh`; an interrupted demo picks up where it stopped (training resumes from its checkpoint, the search from its
Optuna storage, accuracy measuring from its partial table).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas.experiment import ExperimentSpec
from supernet._io import read_yaml
from supernet.errors import NasError

# the demo's search stage is an experiment spec (nas.experiment.ExperimentSpec) named after the demo, on the
# trained run; these are its defaults where the stage leaves a field out
SEARCH_DEFAULTS = {"strategy": "evolution", "budget": 3000,
                   "objectives": {"accuracy": "maximize", "latency_ms": "minimize"}}
SEARCH_SET_BY_DEMO = ("name", "run", "space")


class DemoSpecError(NasError):
    """A demo spec is malformed: the message names the field and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccuracyStage(_Strict):
    samples: int = Field(250, ge=10)
    model: str = "auto"
    seed: int = 0
    bn_images: int = Field(2000, ge=1)       # training images for each subnet's BN recalibration
    val_images: int = Field(5000, ge=1)      # validation images each subnet is measured on
    holdout_val_images: int | None = Field(None, ge=1)  # for the held-out subnets (null: the whole split)


class ProfileStage(_Strict):
    device: str = "cpu-host"
    threads: int = Field(1, ge=1)
    backend: str = "torch"
    n_test: int = Field(100, ge=2)
    n_fit: int = Field(20, ge=3)
    repeats: int = Field(3, ge=1)
    rounds: int = Field(12, ge=1)  # hw_profiles.measure.TimingConfig's
    resolutions: list[int] | None = None


class ExportStage(_Strict):
    # Distillation fine-tuning of each exported net: steps, or a share of the supernet's steps like "10%"
    finetune: int | str = 0
    formats: list[str] | None = None

    @field_validator("finetune")
    @classmethod
    def _budget(cls, value: int | str) -> int | str:
        from nas.export.finetune import finetune_steps

        try:
            finetune_steps(value, 1)  # its form only: the run's steps resolve a share at the export stage
        except NasError as exc:
            raise ValueError(str(exc)) from None
        return value


class DemoSpec(_Strict):
    """experiments/demo.yaml: the training recipe and the settings of each later stage."""

    name: str = "demo"
    train: str
    run_dir: str
    # Data-parallel training processes (torchrun, gloo, one thread each); 1 trains in this process. On an idle
    # 2-core CPU both take the same time (measured side by side: 67-72 s vs 69-71 s for 80 steps).
    train_processes: int = Field(1, ge=1)
    out: str = "runs/demo"
    accuracy: AccuracyStage = Field(default_factory=AccuracyStage)
    profile: ProfileStage = Field(default_factory=ProfileStage)
    search: ExperimentSpec  # without name and run: the demo's name and its trained run
    export: ExportStage = Field(default_factory=ExportStage)
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _search_spec(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("search"), dict):
            data = {**data, "search": {**SEARCH_DEFAULTS, **data["search"], "name": data.get("name", "demo")}}
        return data

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DemoSpec":
        path = Path(path)
        data = read_yaml(path, DemoSpecError, "demo spec")
        search = data.get("search") if isinstance(data, dict) else None
        for key in SEARCH_SET_BY_DEMO:
            if isinstance(search, dict) and key in search:
                raise DemoSpecError(f"{path}: field 'search.{key}': set by the demo (its name, its trained run); "
                                    "leave it out")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "spec"
            raise DemoSpecError(f"{path}: field '{where}': {err['msg']}") from None
        spec.source = str(path)
        train = Path(spec.train)
        if not train.is_absolute():
            train = path.parent / train
        if not train.is_file():
            raise DemoSpecError(f"{path}: field 'train': recipe {train} does not exist")
        spec.train = str(train)
        return spec


class Stages:
    """Times each stage and logs one line per start and end on stderr."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.rows = log, []

    def run(self, name: str, fn: Callable[[], tuple[str, Any]]) -> Any:
        self.log(f"[demo] {name} ...")
        t0 = time.perf_counter()
        status, value = fn()
        seconds = time.perf_counter() - t0
        self.rows.append({"stage": name, "status": status, "seconds": round(seconds, 1)})
        self.log(f"[demo] {name}: {status} in {seconds:.1f} s")
        return value


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ stages
def _train(spec: DemoSpec, fresh: bool) -> tuple[str, Path]:
    from supernet.config import ExperimentConfig
    from supernet.run import read_run_info
    from supernet.train import train

    run_dir = Path(spec.run_dir)
    config = ExperimentConfig.from_yaml(spec.train)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if (run_dir / "run.json").is_file():
        info = read_run_info(run_dir)
        if info.finished and info.config_hash == config.config_hash():
            return "reused", run_dir
    resume = (run_dir / "checkpoint.pt").is_file()
    if spec.train_processes > 1:
        _train_data_parallel(spec, run_dir, resume)
    else:
        train(config, run_dir, resume=resume, progress=True)
    return ("resumed" if resume else "trained"), run_dir


def _train_data_parallel(spec: DemoSpec, run_dir: Path, resume: bool) -> None:
    """`torchrun --standalone --nproc-per-node K -m nas train RECIPE --out RUN_DIR [--resume]`, one thread each."""
    import os
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(spec.train_processes), "-m", "nas", "train", spec.train, "--out", str(run_dir)]
    if resume:
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)  # progress (rank 0) and errors on stderr
    if done.returncode != 0:
        raise NasError(f"data-parallel training ({spec.train_processes} processes) failed with exit code "
                       f"{done.returncode}; its error is printed above; `nas demo` again resumes from the checkpoint")


def _accuracy(spec: DemoSpec, run_dir: Path, fresh: bool) -> tuple[str, dict[str, Any]]:
    from predictors.accuracy import fit_run_predictor, load_accuracy_predictor
    from supernet.errors import CheckpointError

    if not fresh:
        try:
            predictor = load_accuracy_predictor(run_dir)
            return "reused", predictor.fidelity_report()
        except CheckpointError:
            pass
    a = spec.accuracy
    predictor = fit_run_predictor(run_dir, samples=a.samples, model=a.model, seed=a.seed, bn_images=a.bn_images,
                                  val_images=a.val_images, holdout_val_images=a.holdout_val_images, progress=True)
    return "fitted", predictor.fidelity_report()


def _profile(spec: DemoSpec, space_name: str, space: Any, fresh: bool) -> tuple[str, dict[str, Any]]:
    from hw_profiles import load_profile, save_profile, user_profiles_dir
    from hw_profiles.measure import TimingConfig
    from predictors.profiling import calibrate_profile

    p = spec.profile
    path = user_profiles_dir() / f"{p.device}.yaml"
    if path.is_file() and not fresh:
        prof = load_profile(path)
        if space_name in prof.latency.fidelity:
            fid = {f.predictor: {k: getattr(f, k) for k in ("n", "spearman", "kendall", "rmse", "mape",
                                                            "within_10pct")}
                   for f in prof.latency.fidelity[space_name]}
            return "reused", {"profile": str(path), "fidelity": fid,
                              "warnings": prof.latency.warnings.get(space_name, [])}
    base = load_profile(path) if path.is_file() and not fresh else load_profile(p.device)
    cfg = TimingConfig(threads=p.threads, backend=p.backend, repeats=p.repeats, rounds=p.rounds)
    prof, report = calibrate_profile(space, base, cfg, resolutions=p.resolutions, n_fit=p.n_fit, n_test=p.n_test,
                                     seed=0,
                                     progress=_bar_progress())
    save_profile(prof, path)
    fid = {**report.fidelity, **({"noise-ceiling": report.noise_ceiling} if report.noise_ceiling else {})}
    return "measured", {"profile": str(path), "fidelity": fid, "seconds": report.seconds,
                        "warnings": report.warnings}


def _bar_progress() -> Callable[[str, int, int], None]:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=f"profiling {stage}", leave=False))
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _search(spec: DemoSpec, run_dir: Path, out: Path, fresh: bool) -> tuple[str, dict[str, Any]]:
    from nas.experiment import resolve_budgets, run_experiment

    folder = out / "search"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    exp = resolve_budgets(spec.search.model_copy(update={"run": Path(run_dir)}))
    resumed = (folder / "search.db").is_file()
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(device: str, done: int, total: int, best: Any) -> None:
        bar = bars.get(device) or bars.setdefault(device, tqdm(total=total, desc=f"search {device}", leave=False))
        bar.update(done - bar.n)

    try:
        summary = run_experiment(exp, folder, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    return ("resumed" if resumed else "searched"), {"summary": summary, "spec": exp, "folder": folder}


def _export(spec: DemoSpec, run_dir: Path, out: Path, search: dict[str, Any], fresh: bool
            ) -> tuple[str, dict[str, dict[str, Any]]]:
    from nas.export import export_bundle
    from nas.export.bundle import bundle_name
    from nas.export.finetune import finetune_steps
    from nas.search.output import SearchOutput
    from supernet import ArchConfig
    from supernet.run import read_run_info

    folder = out / "exports"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    cards, statuses = {}, []
    steps = finetune_steps(spec.export.finetune, read_run_info(run_dir).extra.get("steps"))
    output = SearchOutput(search["folder"])
    for device, info in search["summary"]["devices"].items():
        if not info.get("arch"):
            _log(f"[demo] {device}: no feasible subnet within its budget; nothing to export")
            continue
        arch = ArchConfig.from_dict(output.best(device).arch)
        existing = folder / bundle_name(device, arch, steps)
        if (existing / "card.json").is_file():
            bundle, statuses = existing, statuses + ["reused"]
        else:
            bundle = export_bundle(run_dir, arch, device, folder, formats=spec.export.formats,
                                   finetune=steps,
                                   progress=lambda f, m, _d=device: _log(f"[demo] export {_d}: {m}"))
            statuses.append("exported")
        cards[device] = {"bundle": str(bundle), "card": json.loads((bundle / "card.json").read_text())}
    status = "reused" if statuses and all(s == "reused" for s in statuses) else "exported"
    return status, cards


# ------------------------------------------------------------------------------------------------ report
def _pct(v: Any) -> float | None:
    return None if v is None else round(100 * float(v), 2)


def build_report(spec: DemoSpec, out: Path, run_dir: Path, train_info: dict[str, Any], acc_fidelity: dict[str, Any],
                 profile_info: dict[str, Any], search: dict[str, Any], cards: dict[str, dict[str, Any]],
                 stages: list[dict[str, Any]]) -> tuple[Path, Path]:
    from nas.report import Report

    rep = Report(f"ofa-nas demo: one training run, {len(cards)} specialized nets")
    rep.text(f"Supernet trained once ({Path(spec.train).name}) in {run_dir}; then, per device, a search on the "
             "predictors and an export of the best feasible subnet. Every figure below was computed in this run.")
    rep.heading("Supernet")
    rep.table([{k: v for k, v in train_info.items()}])
    rep.heading("Per device")
    summary = search["summary"]
    exp = search["spec"]
    for dev in exp.devices:
        rep.heading(dev.name, 3)
        info = summary["devices"].get(dev.name, {})
        if info.get("plot"):
            rep.image(Path(info["plot"]).resolve(), f"Pareto front on {dev.name}")
        cons = ", ".join(f"{k} ≤ {v:,.4g}" for k, v in dev.constraints.items())
        card = cards.get(dev.name, {}).get("card")
        if card is None:
            rep.text(f"Constraints: {cons}. No feasible subnet found within the budget of {exp.budget} evaluations.")
            continue
        pred, meas = card["predicted"], card["measured"]
        acc = meas["accuracy"]
        lat = meas.get("latency") or {}
        row = {"constraints": cons, "arch": card["arch_json"], "MACs": card["macs"], "params": card["params"],
               "predicted acc (%)": _pct(pred.get("accuracy")),
               "measured val acc (%)": _pct(acc.get("val", {}).get("torch_fp32")),
               "measured test acc (%)": _pct(acc.get("test", {}).get("torch_fp32")),
               **_finetune_columns(card),
               "predicted latency (ms)": pred.get("latency_ms")}
        for label, entry in lat.items():
            row[f"measured latency {label} (ms)"] = entry.get("median_ms")
        if "onnx_int8" in acc.get("test", {}):
            row["int8 test acc (%)"] = _pct(acc["test"]["onnx_int8"])
        mem = card.get("memory") or {}
        if card["device"]["kind"] == "mcu":
            row.update({"SRAM (B)": mem.get("sram_bytes"), "Flash (B)": mem.get("flash_bytes"),
                        "fits": mem.get("fits", mem.get("sram_fits"))})
        rep.table([row])
        rep.text(f"Search: {info.get('n_trials')} trials ({info.get('n_feasible')} feasible), strategy "
                 f"{info.get('strategy')}; bundle: {cards[dev.name]['bundle']}.")
    rep.heading("Predictor fidelity")
    rows = [{"predictor": "accuracy", **{k: v for k, v in acc_fidelity.items() if not isinstance(v, dict)}}]
    for kind, fid in (profile_info.get("fidelity") or {}).items():
        rows.append({"predictor": f"latency {spec.profile.device} ({kind})", **fid})
    rep.table(rows)
    for warning in profile_info.get("warnings") or []:
        rep.text(f"**Warning:** {warning}")
    rep.heading("Time per stage")
    rep.table(stages)
    total = sum(r["seconds"] for r in stages)
    rep.text(f"Total: {total:.0f} s ({total / 60:.1f} min).")
    return rep.write(out)


def _finetune_columns(card: dict[str, Any]) -> dict[str, Any]:
    """A fine-tuned net's test top-1 in the supernet beside its fine-tuned one's, the steps it took, and which of
    the two the bundle holds (chosen on the validation split)."""
    ft = card.get("finetune") or {}
    if not ft.get("steps"):
        return {}
    before = ft["supernet_accuracy"]["test"]
    after = ft.get("finetuned_accuracy", {}).get("test", card["measured"]["accuracy"].get("test", {}).get("torch_fp32"))
    return {"in-supernet test acc (%)": _pct(before), "fine-tune gain (pp)": _pct(after - before),
            "fine-tune steps": ft["steps"], "fine-tune s": ft["seconds"],
            "shipped": "supernet's (fine-tuning lowered val)" if ft.get("kept") == "supernet" else "fine-tuned"}


def _train_summary(run_dir: Path) -> dict[str, Any]:
    from supernet.run import read_run_info

    info = read_run_info(run_dir)
    out = {"run": str(run_dir), "space": info.space.get("name"), "checkpoint_hash": str(info.checkpoint_hash)[:12]}
    for name, figures in (info.extra.get("final") or {}).items():
        for split in ("val", "test"):
            if figures.get(f"{split}_top1") is not None:
                out[f"{name} {split} acc (%)"] = _pct(figures[f"{split}_top1"])
    out["steps"] = info.extra.get("steps")
    if info.extra.get("train_seconds") is not None:
        out["train seconds"] = round(float(info.extra["train_seconds"]), 1)
    return out


def run_demo(spec_path: str | Path = "experiments/demo.yaml", *, fresh: bool = False, out: str | None = None,
             log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run the whole demo; return where the report is and the headline figures."""
    spec = DemoSpec.from_yaml(spec_path)
    out_dir = Path(out or spec.out)
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = Stages(log)
    run_dir = stages.run("train supernet", lambda: _train(spec, fresh))
    from supernet.run import load_run

    trained = load_run(run_dir)
    space = trained.space
    acc_fid = stages.run("fit accuracy predictor", lambda: _accuracy(spec, run_dir, fresh))
    prof = stages.run(f"profile {spec.profile.device}", lambda: _profile(spec, space.name, space, fresh))
    search = stages.run("search per device", lambda: _search(spec, run_dir, out_dir, fresh))
    cards = stages.run("export and measure", lambda: _export(spec, run_dir, out_dir, search, fresh))
    t0 = time.perf_counter()
    md, page = build_report(spec, out_dir, run_dir, _train_summary(run_dir), acc_fid, prof, search, cards,
                            stages.rows)
    log(f"[demo] report written in {time.perf_counter() - t0:.1f} s")
    headline = {dev: {"arch": c["card"]["arch_json"], "macs": c["card"]["macs"],
                      "test_accuracy": c["card"]["measured"]["accuracy"].get("test", {}).get("torch_fp32")}
                for dev, c in cards.items()}
    return {"report": str(md), "report_html": str(page), "devices": headline, "stages": stages.rows}
