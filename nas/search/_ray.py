"""The Ray Tune strategy: trials run as Tune trials on this machine or on a Ray cluster (`ray_address`), with
Optuna's sampler choosing them (Tune's `OptunaSearch`); each finished trial is recorded by the driver into the
search's study as it completes.

Trainables, callbacks and stoppers are module-level so Ray can pickle them; the objective travels to the
workers with the problem, so it must be picklable too (a module-level function or object, or a closure
cloudpickle can carry).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import tempfile
from typing import Any

import numpy as np

from nas.search._session import Session
from nas.search._problem import Evaluation, Problem, SearchError

_PENALTY = 1e30  # what the sampler sees for an infeasible or failed trial: worse than any real value


def _evaluate_trial(config: dict[str, Any], problem: Problem) -> None:
    """One Tune trial: evaluate the candidate in `config` where Ray placed it, and report its figures."""
    from ray import tune

    idx = problem.canonical(problem.idx_from_params(config)[None])
    ev = problem.evaluate(idx)
    out: dict[str, Any] = {"nas_ok": bool(ev.ok[0]), "nas_feasible": bool(ev.feasible[0])}
    for j, d in enumerate(problem.directions):
        v = float(ev.values[0, j])
        out[f"nas_v{j}"] = v
        good = ev.feasible[0] and math.isfinite(v)
        out[f"nas_s{j}"] = v if good else (-_PENALTY if d == "maximize" else _PENALTY)
    for j in range(problem.n_con):
        out[f"nas_c{j}"] = float(ev.constraints[0, j])
    tune.report(out)


def _evaluation(problem: Problem, result: dict[str, Any]) -> Evaluation:
    values = np.array([[result.get(f"nas_v{j}", math.nan) for j in range(problem.n_obj)]], dtype=np.float64)
    cons = np.array([[result.get(f"nas_c{j}", math.inf) for j in range(problem.n_con)]],
                    dtype=np.float64).reshape(1, problem.n_con)
    ok = np.array([bool(result.get("nas_ok", False))])
    return Evaluation(values, cons, np.array([bool(result.get("nas_feasible", False))]) & ok, ok)


def _callback_classes():
    from ray.tune import Callback, Stopper

    class Record(Callback):
        """Record each finished Tune trial into the search's session (runs in the driver)."""

        def __init__(self, session: Session):
            self.session = session

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._record(trial)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._record(trial, failed=True)

        def _record(self, trial: Any, failed: bool = False) -> None:
            p = self.session.problem
            idx = p.canonical(p.idx_from_params(trial.config)[None])
            result = {} if failed else (trial.last_result or {})
            self.session.record(idx, _evaluation(p, result))

        def __reduce__(self):  # Tune snapshots its run config; the session stays in the driver
            return (_noop_callback, ())

    class Stop(Stopper):
        def __init__(self, session: Session):
            self.session = session

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.session.done

        def __reduce__(self):
            return (_noop_stopper, ())

    return Record, Stop


def _noop_callback():
    from ray.tune import Callback

    return Callback()


def _noop_stopper():
    from ray.tune.stopper import NoopStopper

    return NoopStopper()


class RayTune:
    """Ray Tune back end: `max_concurrent` trials at a time, each on `cpus_per_trial` CPUs of the cluster at
    `ray_address` (None: a local Ray started for this search and shut down after it). The sampler is
    Optuna's TPE (`sampler="tpe"`), NSGA-II (`"nsga2"`) or our GP `SurrogateSampler` (`"surrogate"`);
    infeasible trials are shown to it as the worst."""

    name = "ray-tune"

    def __init__(self, ray_address: str | None = None, max_concurrent: int = 2, cpus_per_trial: float = 1,
                 sampler: str = "tpe"):
        if sampler not in ("tpe", "nsga2", "surrogate"):
            raise SearchError(f"ray-tune: sampler must be 'tpe', 'nsga2' or 'surrogate', got {sampler!r}")
        if max_concurrent < 1:
            raise SearchError(f"ray-tune: max_concurrent must be >= 1, got {max_concurrent}")
        if not 0 < cpus_per_trial <= 1024:
            raise SearchError(f"ray-tune: cpus_per_trial must be > 0 (and at most 1024), got {cpus_per_trial}")
        self.ray_address, self.max_concurrent = ray_address, max_concurrent
        self.cpus_per_trial, self.sampler = cpus_per_trial, sampler

    def _sampler(self, seed: int):
        import optuna

        if self.sampler == "surrogate":
            from nas.search._surrogate import SurrogateSampler

            return SurrogateSampler(seed=seed)
        if self.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, 2 * self.max_concurrent))
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)

    def _warm_study(self, session: Session):
        """An in-memory study holding the trials already finished, for the sampler inside Tune to start from."""
        import optuna
        from optuna.distributions import CategoricalDistribution

        p = session.problem
        storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=storage, study_name="nas", directions=p.directions)
        dists = {n: CategoricalDistribution(c) for n, c in zip(p.names, p.choices)}
        h = session.history
        vals = p.values_of(h.idx)
        penal = [(-_PENALTY if d == "maximize" else _PENALTY) for d in p.directions]
        study.add_trials([optuna.trial.create_trial(
            params={n: vals[n][i] for n in p.names}, distributions=dists,
            values=[float(v) if h.evaluation.feasible[i] else pen for v, pen in zip(h.evaluation.values[i], penal)])
            for i in range(len(h))])
        return storage, dists

    def search(self, session: Session) -> None:
        try:
            import ray
            from ray import tune
            from ray.tune.search import ConcurrencyLimiter
            from ray.tune.search.optuna import OptunaSearch
        except ImportError as exc:
            raise SearchError(f"strategy 'ray-tune' needs ray[tune] installed: {exc}") from None
        p = session.problem
        started = not ray.is_initialized()
        if started:
            kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            if self.ray_address is None:
                kwargs["include_dashboard"] = False
            try:
                ray.init(address=self.ray_address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise SearchError(f"cannot reach the Ray cluster at '{self.ray_address}': {exc}") from None
        workdir = tempfile.mkdtemp(prefix="nas-tune-")
        try:
            storage, dists = self._warm_study(session)
            metrics = [f"nas_s{j}" for j in range(p.n_obj)]
            modes = ["max" if d == "maximize" else "min" for d in p.directions]
            searcher = OptunaSearch(space=dists, metric=metrics if p.n_obj > 1 else metrics[0],
                                    mode=modes if p.n_obj > 1 else modes[0],
                                    sampler=self._sampler(session.seed + session.prior),
                                    storage=storage, study_name="nas")
            Record, Stop = _callback_classes()
            trainable = tune.with_resources(tune.with_parameters(_evaluate_trial, problem=p),
                                            {"cpu": self.cpus_per_trial})
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, self.max_concurrent),
                                            num_samples=session.remaining, reuse_actors=True),
                run_config=tune.RunConfig(storage_path=workdir, name="nas", verbose=0, stop=Stop(session),
                                          callbacks=[Record(session)], log_to_file=False,
                                          checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
            with contextlib.redirect_stdout(sys.stderr):  # Tune's console tables; stdout is for results
                tuner.fit()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            if started:
                ray.shutdown()
