"""`memetic`: evolution plus local search for batch objectives (predictors), feasible candidates only.

What makes it fast where OFA's evolution is slow (BENCHMARKS.md, "Search (nas.search)"):
- candidates are screened by their constraint values alone (`Problem.screen`: latency and memory predictors,
  counted MACs, a constraint's `fn`) before the objective sees them, so the objective (the accuracy predictor)
  and the budget are spent on feasible candidates only;
- and few are screened in vain, even where almost no uniform sample is feasible: an additive estimate of the
  constraint values (`ConstraintEstimate`, fitted on the first uniform draws) keeps only the children and moves
  whose parent's exact value plus the estimated change fits, and walks fresh draws under the bounds before
  they are screened; what the estimate lets through and the screen refuses costs a screen, nothing more (the
  least-violating draws are still repaired one change at a time when the estimate cannot help);
- every candidate is new: duplicates (and a space's inactive genes) are dropped before evaluation;
- a generation is one batch of thousands: children of the population (mutation, uniform crossover), as many
  as make `children` new ones, together with the whole one-change neighbourhood and a sample of two-change
  moves (one gene up, another down is how a subnet stays under a latency bound) of the best candidate not yet
  searched around;
- when the best has not moved for `patience` generations the population restarts from fresh feasible samples,
  keeping its elite.
"""

from __future__ import annotations

import functools

import numpy as np

from nas.search._estimate import ConstraintEstimate
from nas.search._session import Session
from nas.search._pareto import selection_order
from nas.search._problem import SearchError
from supernet.space import changed_genes, crossover_rows


@functools.lru_cache(maxsize=16)
def _multipliers(words: int) -> np.ndarray:
    return np.random.default_rng(0x5EED).integers(1, 2 ** 62, (words, 2), dtype=np.uint64) * 2 + 1


def _hash(rows: np.ndarray) -> np.ndarray:
    """A 64-bit key per row of choice indices (a collision only skips a candidate as if seen)."""
    rows = np.asarray(rows)
    if rows.size and rows.max() > 255:
        words = np.ascontiguousarray(rows, dtype=np.int64).view(np.uint64)
    else:  # indices below 256 (every shipped space): eight to a word, an eighth of the products
        packed = np.zeros((len(rows), (rows.shape[1] + 7) // 8 * 8), np.uint8)
        packed[:, :rows.shape[1]] = rows
        words = packed.view(np.uint64)
    both = words @ _multipliers(words.shape[1])  # wraps mod 2**64
    return both[:, 0] ^ (both[:, 1] >> np.uint64(29))


def one_change_moves(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every single-gene change as (gene, offset): the new choice is (old + offset) mod size."""
    gene = np.repeat(np.arange(len(sizes)), np.maximum(sizes - 1, 0))
    offset = np.concatenate([np.arange(1, s) for s in sizes]) if len(gene) else np.empty(0, np.int64)
    return gene, offset.astype(np.int64)


def neighbourhood(row: np.ndarray, sizes: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """All one-change neighbours of `row` and `n_pairs` two-change neighbours (every pair when fewer exist)."""
    gene, offset = one_change_moves(sizes)
    m = len(gene)
    single = np.repeat(row[None], m, 0)
    single[np.arange(m), gene] = (row[gene] + offset) % sizes[gene]
    if n_pairs <= 0 or m < 2:
        return single
    if m * (m - 1) // 2 <= n_pairs:
        a, b = np.triu_indices(m, 1)
    else:
        a, b = rng.integers(0, m, n_pairs), rng.integers(0, m, n_pairs)
    keep = gene[a] != gene[b]
    a, b = a[keep], b[keep]
    pairs = single[a].copy()
    pairs[np.arange(len(b)), gene[b]] = single[b, gene[b]]
    return np.concatenate([single, pairs])


class Memetic:
    """Feasible-only evolution with whole-neighbourhood local search and restarts, in large batches.

    population: candidates kept between generations; children: new mutants and crossovers per generation (at
    most a sixteenth of the budget);
    pair_moves: two-change neighbours of the searched-around elite per generation; mutation_prob: per-gene
    probability that a child's gene moves to another choice (a mutant always moves one at least; default 2 /
    number of parameters);
    patience: generations without a better best before a restart.
    """

    name = "memetic"

    def __init__(self, population: int = 256, children: int = 1024, pair_moves: int = 512,
                 mutation_prob: float | None = None, patience: int = 6):
        for nm, v, lo in (("population", population, 2), ("children", children, 1), ("pair_moves", pair_moves, 0),
                          ("patience", patience, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise SearchError(f"memetic: {nm} must be an integer >= {lo}, got {v!r}")
        if mutation_prob is not None and not 0 < mutation_prob <= 1:
            raise SearchError(f"memetic: mutation_prob must be in (0, 1], got {mutation_prob}")
        self.population, self.children, self.pair_moves = int(population), int(children), int(pair_moves)
        self.mutation_prob, self.patience = mutation_prob, int(patience)

    # ---------------------------------------------------------------- candidates
    def _fresh(self, rows: np.ndarray) -> tuple[np.ndarray, float]:
        """Indices of the rows not seen before (nor twice in `rows`), in order, and their share of `rows`; they
        count as seen from now."""
        h, seen = _hash(rows), self._seen
        keys, first = np.unique(h, return_index=True)
        # the seen keys as one sorted array: a lookup per batch, not per key (a set cost a Python call a row)
        at = np.searchsorted(seen, keys)
        new = seen[np.minimum(at, len(seen) - 1)] != keys if len(seen) else np.ones(len(keys), bool)
        self._seen = np.insert(seen, at[new], keys[new])
        return np.sort(first[new]), new.sum() / max(len(rows), 1)

    def _offer(self, session: Session, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Evaluate the new, feasible (by screening) candidates of `rows` (in canonical form); the rows, values
        and constraint values of those feasible, and the share of `rows` that was new."""
        p = session.problem
        fresh, share = self._fresh(rows)
        rows = rows[fresh]  # an infeasible row counts as seen too: it will never be feasible
        cons = None
        if self._screened and len(rows):
            cons = p.screen(rows)
            ok = p.feasible_by(cons)
            rows, cons = rows[ok], cons[ok]
        if not len(rows) or session.done:
            return rows[:0], np.empty((0, p.n_obj)), np.empty((0, p.n_con)), share
        ev = session.evaluate(rows, canonical=True, constraints=cons)
        rows = rows[: len(ev)]
        return rows[ev.feasible], ev.values[ev.feasible], ev.constraints[ev.feasible], share

    def _feasible(self, session: Session, n: int, rng: np.random.Generator,
                  known: np.ndarray | None = None) -> np.ndarray:
        """About `n` candidates that meet the constraints by screening: the uniform draws screened at the start
        (the first time); then draws (from the per-parameter frequencies of `known` feasible rows, smoothed
        towards uniform, when given) walked under the bounds by the constraint estimate; without an estimate,
        such draws as they come; and what is still short, the least violating draws repaired one gene at a
        time."""
        p = session.problem
        if not self._screened:
            return p.sample(n, rng)
        got: list[np.ndarray] = []
        cand = cons = None
        if self._pool is not None:
            cand, cons = self._pool
            self._pool = None
            got.append(cand[p.feasible_by(cons)])
        draw = max(4 * n, 4096)
        for i in range(6):
            short = n - sum(map(len, got))
            if short <= 0:
                return np.concatenate(got)[:n]
            like = known is not None and len(known) and (i >= 2 or self._estimate.ready)
            if self._estimate.ready:
                start = self._sample_like(p, known, 2 * short, rng) if like else p.sample(2 * short, rng)
                cand = self._estimate.lower(start, p.canonical, rng, self._estimate.spread)
            elif i < 2 or like:
                cand = self._sample_like(p, known, draw, rng) if like else p.sample(draw, rng)
            else:
                break
            cons = p.screen(cand)
            got.append(cand[p.feasible_by(cons)])
        short = n - sum(map(len, got))
        if short <= 0:
            return np.concatenate(got)[:n]
        start = cand[np.argsort(p.violation(cons))[:short]]
        return np.concatenate(got + [self._repair(session, start, rng)])

    @staticmethod
    def _none_feasible(p, rng: np.random.Generator, n: int = 4096) -> str:
        """Why the search cannot start: no candidate meets the bounds, with the least value of each constraint
        among `n` uniform draws (screened ones do not count against the budget, so drawing on would never end)."""
        cons = p.screen(p.sample(n, rng))
        least = ", ".join(f"{c.name} >= {cons[:, j].min():.4g}" for j, c in enumerate(p.constraints))
        bounds = ", ".join(f"{c.name} <= {c.upper:g}" for c in p.constraints)
        return (f"constraints: no candidate meets {bounds} (screened uniform draws walked towards the bounds and "
                f"repaired gene by gene; among {n:,} uniform draws {least}); loosen the bound")

    @staticmethod
    def _sample_like(p, known: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Rows drawn gene by gene from the choice frequencies in `known` (plus one pseudo-count per choice)."""
        width = int(p.sizes.max())
        counts = np.bincount((known + width * np.arange(len(p.sizes))).ravel(), minlength=len(p.sizes) * width)
        counts = counts.reshape(len(p.sizes), width) + (np.arange(width)[None, :] < p.sizes[:, None])
        cdf = np.cumsum(counts, 1) / counts.sum(1, keepdims=True)
        cdf[:, -1] = 1.0
        u = rng.random((n, len(p.sizes)))
        return p.canonical((u[:, :, None] >= cdf[None, :, :]).sum(2))

    def _repair(self, session: Session, rows: np.ndarray, rng: np.random.Generator, tries: int = 16,
                rounds: int = 100) -> np.ndarray:
        """Walk each row to feasibility: per round, `tries` random one-gene changes, keep the least violating."""
        p, sizes = session.problem, session.problem.sizes
        rows = rows.copy()
        viol = p.violation(p.screen(rows))
        for _ in range(rounds):
            bad = np.nonzero(viol > 0)[0]
            if not len(bad):
                break
            prop = np.repeat(rows[bad], tries, 0)
            gene = rng.integers(0, len(sizes), len(prop))
            prop[np.arange(len(prop)), gene] = (prop[np.arange(len(prop)), gene]
                                                + rng.integers(1, np.maximum(sizes[gene], 2))) % sizes[gene]
            prop = p.canonical(prop)
            pv = p.violation(p.screen(prop)).reshape(len(bad), tries)
            pick = np.argmin(pv + rng.random(pv.shape) * 1e-12, axis=1)
            better = pv[np.arange(len(bad)), pick] <= viol[bad]  # equal moves too: walks across plateaus
            rows[bad[better]] = prop.reshape(len(bad), tries, -1)[better, pick[better]]
            viol[bad[better]] = pv[np.arange(len(bad)), pick][better]
        return rows[viol <= 0]

    def _children(self, session: Session, pop: np.ndarray, order: np.ndarray, n: int, rng: np.random.Generator,
                  judged: np.ndarray | None = None, new_share: float = 1.0, pass_rate: float = 1.0
                  ) -> tuple[np.ndarray, float]:
        """Mutants and uniform crossovers (half each, in random order) of the better half of `pop`, as many as
        make about `n` new ones by the last generation's share of new candidates (`new_share`); with `judged`
        (the constraint values of `pop`, transformed as the estimate models them) only those the estimate
        expects feasible, drawn in proportion (by the last generation's share that passed, `pass_rate`). The
        children, and the share of them the estimate expected feasible."""
        p = session.problem
        sizes = p.sizes
        parents = order[: max(2, len(order) // 2)]
        keep = int(np.ceil(n / max(new_share, 1 / 4)))
        m = keep if judged is None else min(8 * n, int(np.ceil(keep / max(pass_rate, 1 / 8))))
        pick = parents[rng.integers(0, len(parents), m)]
        # the rows in bytes where every choice index fits one: each pass over thousands of rows moves an eighth
        small = pop.astype(np.int8) if sizes.max() <= 127 else pop
        base = small[pick]
        is_mutant = rng.random(m) < 0.5
        mutant, cross = np.nonzero(is_mutant)[0], np.nonzero(~is_mutant)[0]
        kids = base.copy()
        kids[cross] = crossover_rows(small[parents[rng.integers(0, len(parents), len(cross))]], base[cross], rng)
        prob = self.mutation_prob or min(1.0, 2.0 / len(sizes))
        row, gene = changed_genes(kids.shape, prob, rng)
        free = np.nonzero(sizes > 1)[0]
        if len(free):  # and every mutant changes somewhere
            row = np.concatenate([row, mutant])
            gene = np.concatenate([gene, free[rng.integers(0, len(free), len(mutant))]])
        # another choice for each changed gene (a cost per changed gene)
        kids[row, gene] = (base[row, gene] + 1 + (rng.random(len(row)) * (sizes[gene] - 1)).astype(np.int64)
                           ) % sizes[gene]
        kids = p.canonical(kids)
        diff = kids != base
        # a crossover of like parents, or a change the canonical form undid: a clone, moved once (what is still a
        # clone is dropped as seen)
        same = np.nonzero(~diff.any(1))[0]
        if len(same):
            kids[same] = self._moved(p, kids[same], base[same], np.arange(len(same)), rng)
            diff[same] = kids[same] != base[same]
        if judged is None:
            return kids.astype(np.int64), 1.0
        likely = self._likely(judged[pick], kids, base, diff)
        # a sixteenth of what the estimate refuses is screened anyway: where a constraint is no sum (a peak of
        # memory), the estimate must not fence off what the screen would pass
        return kids[likely | (rng.random(m) < 1 / 16)][:keep].astype(np.int64), max(float(likely.mean()), 1e-3)

    @staticmethod
    def _moved(p, kids: np.ndarray, base: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`kids` (canonical form) with one random gene (of those with a choice) of each row in `which` moved
        from its `base` value to another choice."""
        sizes = p.sizes
        free = np.nonzero(sizes > 1)[0]
        if len(free) and len(which):
            gene = free[rng.integers(0, len(free), len(which))]
            kids[which, gene] = (base[which, gene] + 1 + (rng.random(len(which)) * (sizes[gene] - 1)).astype(
                np.int64)) % sizes[gene]
        return p.canonical(kids)

    def _likely(self, judged: np.ndarray, rows: np.ndarray, base: np.ndarray,
                diff: np.ndarray | None = None) -> np.ndarray:
        """(N,) bool: the estimate of each row (its relative's transformed constraint values plus the change the
        estimate sees between them; `diff`: `rows != base` when the caller has it) is within every bound."""
        est = judged + self._estimate.delta(rows, base, diff)
        return (est <= self._estimate.bounds).all(1)

    # ---------------------------------------------------------------- search
    def search(self, session: Session) -> None:
        p = session.problem
        rng = session.rng(0)
        self._screened = p.screen(p.sample(1, rng)) is not None
        self._estimate = ConstraintEstimate(p.sizes, [c.upper for c in p.constraints])
        done_idx, _, _ = session.finished()
        self._seen = np.unique(_hash(done_idx))
        explored: set[int] = set()
        pop, ev = session.feasible_population()
        vals, cons = ev.values, ev.constraints
        if len(pop):  # resumed: start from the best trials already found
            order = selection_order(vals, p.directions)[: self.population]
            pop, vals, cons = pop[order], vals[order], cons[order]
        self._pool = None
        if self._screened and p.n_con:  # uniform draws, screened: the estimate's data, and the first candidates
            draw = p.sample(2048, rng)
            self._pool = (draw, p.screen(draw))
            self._estimate.fit(*self._pool)
        if len(pop) < self.population:
            *new, _ = self._offer(session, self._feasible(session, self.population - len(pop), rng))
            pop, vals, cons = (np.concatenate([a, b]) for a, b in zip((pop, vals, cons), new))
        sign = -1.0 if p.directions[0] == "maximize" else 1.0
        best = np.min(sign * vals[:, 0]) if len(vals) else np.inf
        children = min(self.children, max(64, session.remaining // 16))  # a small budget: 16 generations at least
        stall, new_share, pass_rate = 0, 1.0, 1.0  # the last generation's shares of new and of likely children
        while not session.done:
            if not len(pop):  # nothing feasible yet: keep drawing
                rows = self._feasible(session, self.population, rng)
                if self._screened and not len(rows):
                    raise SearchError(self._none_feasible(p, rng))
                pop, vals, cons, _ = self._offer(session, rows)
                continue
            order = selection_order(vals, p.directions)
            judged = self._estimate.transform(cons) if self._estimate.ready else None
            kids, pass_rate = self._children(session, pop, order, children, rng, judged, new_share, pass_rate)
            batch = [kids]
            top = order[:8]
            centre = next((i for i, k in zip(top, _hash(pop[top]).tolist()) if k not in explored), None)
            if centre is not None:
                explored.add(int(_hash(pop[centre][None])[0]))
                near = p.canonical(neighbourhood(pop[centre], p.sizes, self.pair_moves, rng))
                if judged is not None:
                    near = near[self._likely(judged[centre][None], near, pop[centre][None])]
                batch.insert(0, near)
            *new, new_share = self._offer(session, np.concatenate(batch))
            pop, vals, cons = (np.concatenate([a, b]) for a, b in zip((pop, vals, cons), new))
            keep = selection_order(vals, p.directions)[: self.population]
            pop, vals, cons = pop[keep], vals[keep], cons[keep]
            now = np.min(sign * vals[:, 0])
            stall = 0 if now < best else stall + 1
            best = min(best, now)
            if stall >= self.patience:
                elite = max(1, self.population // 8)
                *fresh, _ = self._offer(session, self._feasible(session, self.population - elite, rng, known=pop))
                pop, vals, cons = (np.concatenate([a[:elite], b]) for a, b in zip((pop, vals, cons), fresh))
                stall = 0
