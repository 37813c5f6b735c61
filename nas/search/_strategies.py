"""Search strategies behind one small protocol, and their registry.

A strategy gets a `Session` and drives it: it draws candidates (choice-index rows) and calls
`session.evaluate(idx)` until `session.done`. Strategies hold no global state; randomness comes from
`session.rng()`, seeded by the search's seed and the trials already done (so a resumed search goes on).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import optuna

from nas.search._session import Session
from nas.search._memetic import Memetic
from nas.search._pareto import selection_order
from nas.search._problem import SearchError
from nas.search._surrogate import SurrogateSampler
from supernet.registry import Registry
from supernet.space import crossover_rows, mutate_rows


@runtime_checkable
class Strategy(Protocol):
    """Drives a search: draws candidates, evaluates them through the session, until `session.done`."""

    name: str

    def search(self, session: Session) -> None: ...


STRATEGIES: Registry[Callable[..., Strategy]] = Registry("strategy", SearchError)


def register_strategy(name: str, factory: Callable[..., Strategy] | None = None) -> Any:
    """Make a strategy available by name to `run(..., strategy=name)` (factory: keyword options -> Strategy);
    without `factory`, a decorator."""
    return STRATEGIES.register(name, factory)


def available_strategies() -> list[str]:
    return STRATEGIES.names()


def _factory(name: str) -> Callable[..., Strategy]:
    return STRATEGIES[name]


def strategy_options(name: str) -> dict[str, Any]:
    """The options strategy `name` takes, with their defaults: its factory's keyword parameters, so an option a
    strategy gains is allowed (and type-checked from its annotation) everywhere specs are checked."""
    factory = _factory(name)
    params = inspect.signature(factory).parameters.values()
    return {p.name: (None if p.default is p.empty else p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _typed(name: str, factory: Callable[..., Strategy], options: dict[str, Any]) -> dict[str, Any]:
    """`options` checked against the factory's annotations (a JSON or YAML value converted where pydantic's lax
    mode would: 2.0 -> 2), each error naming the option."""
    from pydantic import TypeAdapter, ValidationError

    target = factory.__init__ if inspect.isclass(factory) else factory
    hints = typing.get_type_hints(target)
    out = {}
    for key, value in options.items():
        try:
            out[key] = TypeAdapter(hints.get(key, Any)).validate_python(value)
        except ValidationError as exc:
            raise SearchError(f"strategy '{name}': option '{key}': {exc.errors()[0]['msg']}, got {value!r}") from None
    return out


def get_strategy(strategy: str | Strategy, **options: Any) -> Strategy:
    """A Strategy from a registered name (with options, each checked: known, typed, in range) or the object itself."""
    if isinstance(strategy, str):
        factory = _factory(strategy)
        allowed = strategy_options(strategy)
        unknown = sorted(set(options) - set(allowed))
        takes_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
        if unknown and not takes_any:  # a factory with **options checks its own
            raise SearchError(f"strategy '{strategy}': unknown option(s) {', '.join(map(repr, unknown))}; allowed: "
                              f"{', '.join(allowed) or 'none'}")
        typed = _typed(strategy, factory, options)
        try:
            return factory(**typed)
        except SearchError:
            raise
        except (TypeError, ValueError) as exc:  # Optuna's own checks of its sampler's options
            raise SearchError(f"strategy '{strategy}': {exc}") from None
    if not isinstance(strategy, Strategy):
        raise SearchError(f"strategy must be a name ({', '.join(available_strategies())}) or an object with "
                          f"search(session), got {type(strategy).__name__}")
    return strategy


def _batch(session: Session, wanted: int) -> int:
    # Per-candidate objectives go one at a time so a stop request or a crash loses at most one trial.
    return max(1, min(wanted if session.problem.batched else 1, session.remaining))


class RandomSearch:
    """Uniform random sampling of every parameter, in batches."""

    name = "random"

    def __init__(self, batch_size: int = 512):
        if batch_size < 1:
            raise SearchError(f"random: batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def search(self, session: Session) -> None:
        salt = 0
        while not session.done:
            session.evaluate(session.problem.sample(_batch(session, self.batch_size), session.rng(salt)))
            salt += 1


class Evolution:
    """OFA's evolutionary search: a population of feasible candidates; each generation keeps the best
    `parents_ratio` as parents and fills the rest with mutants (`mutation_ratio` of the children, each gene
    resampled with `mutation_prob`) and uniform crossovers of two parents; infeasible children are re-drawn.
    With several objectives, "best" is by non-dominated rank, then crowding distance (as NSGA-II)."""

    name = "evolution"

    def __init__(self, population: int = 100, parents_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 mutation_prob: float = 0.1):
        if population < 2:
            raise SearchError(f"evolution: population must be >= 2, got {population}")
        for nm, v in (("parents_ratio", parents_ratio), ("mutation_ratio", mutation_ratio),
                      ("mutation_prob", mutation_prob)):
            if not 0 <= v <= 1:
                raise SearchError(f"evolution: {nm} must be between 0 and 1, got {v}")
        self.population, self.parents_ratio = population, parents_ratio
        self.mutation_ratio, self.mutation_prob = mutation_ratio, mutation_prob

    def _best(self, session: Session, idx: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        order = selection_order(values, session.problem.directions)[:n]
        return idx[order], values[order]

    def _fill(self, session: Session, n: int, make: Callable[[int, np.random.Generator], np.ndarray],
              salt: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` feasible candidates from `make`, re-drawing the infeasible ones while the budget lasts."""
        got_idx, got_val = [], []
        need, tries = n, 0
        while need > 0 and not session.done:
            idx = make(_batch(session, need), session.rng(salt * 7919 + tries))
            ev = session.evaluate(idx)
            idx = session.problem.canonical(idx)[: len(ev)]
            got_idx.append(idx[ev.feasible])
            got_val.append(ev.values[ev.feasible])
            need -= int(ev.feasible.sum())
            tries += 1
        p = session.problem
        return (np.concatenate(got_idx)[:n] if got_idx else np.empty((0, len(p.names)), np.int64),
                np.concatenate(got_val)[:n] if got_val else np.empty((0, p.n_obj)))

    def search(self, session: Session) -> None:
        p = session.problem
        idx, ev = session.feasible_population()
        values = ev.values
        if len(idx):  # resumed: start from the best trials already found
            idx, values = self._best(session, idx, values, self.population)
        gen = 0
        if len(idx) < self.population:
            new_idx, new_val = self._fill(session, self.population - len(idx), p.sample, salt=gen)
            idx, values = np.concatenate([idx, new_idx]), np.concatenate([values, new_val])
        n_parents = max(1, int(round(self.parents_ratio * self.population)))
        while not session.done and len(idx):
            gen += 1
            parents, pvals = self._best(session, idx, values, n_parents)
            n_children = self.population - len(parents)
            n_mut = int(round(self.mutation_ratio * n_children))

            def mutants(n: int, rng: np.random.Generator, parents=parents) -> np.ndarray:
                base = parents[rng.integers(0, len(parents), n)]
                return mutate_rows(base, p.sample(n, rng), rng, self.mutation_prob)

            def crossovers(n: int, rng: np.random.Generator, parents=parents) -> np.ndarray:
                a = parents[rng.integers(0, len(parents), n)]
                b = parents[rng.integers(0, len(parents), n)]
                return crossover_rows(a, b, rng)

            m_idx, m_val = self._fill(session, n_mut, mutants, salt=2 * gen)
            c_idx, c_val = self._fill(session, n_children - n_mut, crossovers, salt=2 * gen + 1)
            idx = np.concatenate([parents, m_idx, c_idx])
            values = np.concatenate([pvals, m_val, c_val])


class OptunaSampler:
    """An Optuna sampler driven by ask-and-tell over the space's categorical parameters; constraints reach the
    sampler through `trial.set_constraint` (Optuna's convention: feasible when <= 0)."""

    def __init__(self, name: str, make_sampler: Callable[[int], optuna.samplers.BaseSampler], batch_size: int):
        self.name, self.make_sampler, self.batch_size = name, make_sampler, batch_size

    def search(self, session: Session) -> None:
        from nas.search._store import TrialStore

        p = session.problem
        study = optuna.create_study(directions=p.directions, sampler=self.make_sampler(session.seed + session.prior))
        dists = TrialStore(p).distributions
        uppers = [c.upper for c in p.constraints]
        hist = session.history
        if len(hist):  # resumed: the sampler learns from the trials already in storage
            vals = p.values_of(hist.idx)
            study.add_trials([optuna.trial.create_trial(
                params={n: vals[n][i] for n in p.names}, distributions=dists,
                values=[float(v) for v in hist.evaluation.values[i]],
                constraints={c: float(min(v - u, 1e300)) for c, v, u in
                             zip(p.constraint_names, hist.evaluation.constraints[i], uppers)})
                for i in range(len(hist))])
        while not session.done:
            trials = [study.ask(dists) for _ in range(_batch(session, self.batch_size))]
            idx = np.array([p.idx_from_params(t.params) for t in trials], dtype=np.int64)
            ev = session.evaluate(idx)
            for i, t in enumerate(trials):
                if i >= len(ev) or not ev.ok[i]:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                    continue
                for name, v, u in zip(p.constraint_names, ev.constraints[i], uppers):
                    t.set_constraint(name, min(v - u, 1e300))
                study.tell(t, [float(v) for v in ev.values[i]])


def _sampler_strategy(name: str, make_sampler: Callable[[int], optuna.samplers.BaseSampler],
                      batch_size: int) -> OptunaSampler:
    if batch_size < 1:
        raise SearchError(f"{name}: batch_size must be >= 1, got {batch_size}")
    make_sampler(0)  # Optuna checks its own options here, before any search starts
    return OptunaSampler(name, make_sampler, batch_size)


def _tpe(batch_size: int = 16, n_startup_trials: int = 10, n_ei_candidates: int = 24,
         constant_liar: bool = False) -> OptunaSampler:
    # multivariate TPE is ~10x faster per trial than the independent one on many categorical parameters
    if n_startup_trials < 0 or n_ei_candidates < 1:
        raise SearchError(f"optuna-tpe: n_startup_trials must be >= 0 and n_ei_candidates >= 1, got "
                          f"{n_startup_trials} and {n_ei_candidates}")
    return _sampler_strategy("optuna-tpe", lambda seed: optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=n_startup_trials, n_ei_candidates=n_ei_candidates,
        constant_liar=constant_liar), batch_size)


def _nsga2(population_size: int = 50, mutation_prob: float | None = None, crossover_prob: float = 0.9,
           swapping_prob: float = 0.5) -> OptunaSampler:
    return _sampler_strategy("optuna-nsga2", lambda seed: optuna.samplers.NSGAIISampler(
        seed=seed, population_size=population_size, mutation_prob=mutation_prob, crossover_prob=crossover_prob,
        swapping_prob=swapping_prob), population_size)


def _surrogate(batch_size: int = 1, n_startup_trials: int = 10, n_candidates: int = 2048,
               n_samples: int = 64) -> OptunaSampler:
    options = dict(n_startup_trials=n_startup_trials, n_candidates=n_candidates, n_samples=n_samples)
    SurrogateSampler(seed=0, **options)  # its options checked now, not at the first ask
    return OptunaSampler("surrogate", lambda seed: SurrogateSampler(seed=seed, **options), batch_size)


def _ray(ray_address: str | None = None, max_concurrent: int = 2, cpus_per_trial: float = 1,
         sampler: str = "tpe") -> Strategy:
    from nas.search._ray import RayTune

    return RayTune(ray_address=ray_address, max_concurrent=max_concurrent, cpus_per_trial=cpus_per_trial,
                   sampler=sampler)


register_strategy("random", RandomSearch)
register_strategy("memetic", Memetic)
register_strategy("evolution", Evolution)
register_strategy("optuna-tpe", _tpe)
register_strategy("optuna-nsga2", _nsga2)
register_strategy("surrogate", _surrogate)
register_strategy("ray-tune", _ray)
