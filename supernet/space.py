"""SearchSpace: the elastic choices of a MobileNetV3-style supernet, loaded from YAML presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import yaml

from supernet._io import read_yaml
from supernet.arch import ArchConfig
from supernet.errors import InvalidArchError, SpaceError
from supernet.registry import Registry

MIN_RESOLUTION, MAX_RESOLUTION = 8, 4096  # px: the input sizes an arch's `r` may ask for

ACTIVATIONS = ("relu", "h_swish")
SPACES: Registry[Path | "SearchSpace"] = Registry("space", SpaceError)  # registered here; shipped ones are files


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10% (as MobileNet and OFA do)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def as_rng(seed_or_rng: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def mutate_rows(rows: np.ndarray, fresh: np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray],
                rng: np.random.Generator, prob: float) -> np.ndarray:
    """OFA's mutation, vectorised over rows of genes: each gene of `rows` takes the same gene of `fresh` (random
    rows drawn by the caller) with probability `prob`; or `fresh(r, c)` gives new genes at those positions only
    (the same mutation at a cost per changed gene, not per gene: a search mutating thousands of rows with
    `prob` ~ 2 / genes). The one mutation: `SearchSpace.mutate` and the search strategies both use it (on codes
    or on choice-index rows)."""
    if not callable(fresh):
        return np.where(rng.random(rows.shape) < prob, fresh, rows)
    out = np.array(rows, copy=True)
    r, c = changed_genes(out.shape, prob, rng)
    out[r, c] = fresh(r, c)
    return out


def changed_genes(shape: tuple[int, int], prob: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the genes a Bernoulli(`prob`) draw per gene picks, drawn as geometric gaps between them
    (a cost per pick)."""
    total = shape[0] * shape[1]
    if total == 0 or prob <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if prob >= 1:
        return np.divmod(np.arange(total), shape[1])
    pos = np.empty(0, np.int64)
    while not len(pos) or pos[-1] < total:  # almost always one draw: the mean plus six deviations
        more = int(total * prob + 6 * np.sqrt(total * prob) + 16)
        start = pos[-1] + 1 if len(pos) else 0
        pos = np.concatenate([pos, start + np.cumsum(rng.geometric(prob, more)) - 1])
    return np.divmod(pos[pos < total], shape[1])


def crossover_rows(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """OFA's uniform crossover, vectorised: each gene from `a` or `b` with equal probability (one random bit
    each)."""
    size = np.size(a)
    bits = np.unpackbits(np.frombuffer(rng.bytes((size + 7) // 8), np.uint8))[:size].reshape(np.shape(a))
    return np.where(bits.astype(bool), a, b)


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage: output `width`, stride of its first block, activation, squeeze-excite."""

    width: int
    stride: int
    act: str
    se: bool


@dataclass(frozen=True)
class ConvSpec:
    """A fixed (non-elastic) conv: the stem or the first block."""

    width: int
    kernel: int
    stride: int
    act: str
    se: bool = False


@dataclass(frozen=True)
class BlockSlot:
    """Static facts of one elastic block slot: where it sits and what it connects."""

    index: int
    stage: int
    position: int  # 0 = first block of its stage
    in_channels: int
    out_channels: int
    stride: int
    act: str
    se: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class SearchSpace:
    """An elastic MobileNetV3 space: stem, fixed first block, elastic stages, final expand, feature mix, classifier."""

    name: str
    in_channels: int
    num_classes: int
    stem: ConvSpec
    first_block: ConvSpec
    stages: tuple[StageSpec, ...]
    final_expand: int
    feature_mix: int
    kernel_choices: tuple[int, ...]
    expand_choices: tuple[int, ...]
    depth_choices: tuple[int, ...]
    resolutions: tuple[int, ...]
    dropout: float = 0.1
    se_reduction: int = 4
    channel_divisor: int = 8
    description: str = ""
    _slots: tuple[BlockSlot, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def check(cond: bool, msg: str) -> None:
            if not cond:
                raise SpaceError(f"space '{self.name}': {msg}")

        check(self.in_channels >= 1, "in_channels must be >= 1")
        check(self.num_classes >= 2, "num_classes must be >= 2")
        check(len(self.stages) >= 1, "stages must list at least one stage")
        check(all(k % 2 == 1 and k >= 1 for k in self.kernel_choices), "kernel_choices must be odd sizes, e.g. [3, 5, 7]")
        check(list(self.kernel_choices) == sorted(set(self.kernel_choices)), "kernel_choices must be sorted and unique")
        check(list(self.expand_choices) == sorted(set(self.expand_choices)) and min(self.expand_choices) > 0,
              "expand_choices must be sorted, unique and positive")
        check(list(self.depth_choices) == sorted(set(self.depth_choices)) and min(self.depth_choices) >= 1,
              "depth_choices must be sorted, unique and >= 1")
        check(list(self.resolutions) == sorted(set(self.resolutions)) and min(self.resolutions) >= 8,
              "resolutions must be sorted, unique and >= 8 px")
        for i, st in enumerate(self.stages):
            check(st.act in ACTIVATIONS, f"stages[{i}].act must be one of {ACTIVATIONS}, got {st.act!r}")
            check(st.stride in (1, 2), f"stages[{i}].stride must be 1 or 2, got {st.stride}")
        slots, cin, n = [], self.first_block.width, self.max_depth
        for s, st in enumerate(self.stages):
            for j in range(n):
                slots.append(BlockSlot(len(slots), s, j, cin if j == 0 else st.width, st.width,
                                       st.stride if j == 0 else 1, st.act, st.se))
            cin = st.width
        object.__setattr__(self, "_slots", tuple(slots))

    # ---------------------------------------------------------------- loading
    @classmethod
    def preset(cls, name: str) -> "SearchSpace":
        """A shipped or registered space by name (`ofa-mbv3-w1.0`, `ofa-mbv3-w1.2`, `tiny-mbv3`), or a YAML path."""
        if name in SPACES:
            found = SPACES[name]
            return found if isinstance(found, SearchSpace) else cls.from_yaml(found)
        shipped = resources.files("supernet") / "presets" / f"{name}.yaml"
        if shipped.is_file():
            return cls.from_dict(yaml.safe_load(shipped.read_text()))
        path = Path(name)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            return cls.from_yaml(path)
        raise SpaceError(f"unknown space '{name}'; available: {', '.join(available_spaces())} (or a path to a space YAML)")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SearchSpace":
        return cls.from_dict(read_yaml(path, SpaceError, "space YAML"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchSpace":
        if not isinstance(data, Mapping):
            raise SpaceError("a space must be a mapping")
        allowed = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SpaceError(f"space has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        kw = dict(data)
        try:
            kw["stem"] = ConvSpec(**kw["stem"])
            kw["first_block"] = ConvSpec(**kw["first_block"])
            kw["stages"] = tuple(StageSpec(**s) for s in kw["stages"])
            res = kw["resolutions"]
            if isinstance(res, Mapping):
                res = range(int(res["min"]), int(res["max"]) + 1, int(res.get("step", 4)))
            kw["resolutions"] = tuple(int(r) for r in res)
            for key in ("kernel_choices", "expand_choices", "depth_choices"):
                kw[key] = tuple(kw[key])
            return cls(**kw)
        except (KeyError, TypeError) as exc:
            raise SpaceError(f"space '{data.get('name', '?')}' is malformed: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("_slots", None)
        for key in ("stages", "kernel_choices", "expand_choices", "depth_choices", "resolutions"):
            out[key] = list(out[key]) if key != "stages" else [dict(s) for s in out[key]]
        return out

    # ---------------------------------------------------------------- structure
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def num_blocks(self) -> int:
        return self.num_stages * self.max_depth

    @property
    def slots(self) -> tuple[BlockSlot, ...]:
        return self._slots

    def mid_channels(self, in_channels: int, expand: float) -> int:
        """Expanded (hidden) channels of a block, as OFA computes them."""
        return make_divisible(round(in_channels * expand), self.channel_divisor)

    def se_channels(self, channels: int) -> int:
        return make_divisible(channels // self.se_reduction, self.channel_divisor)

    # ---------------------------------------------------------------- validation
    def validate(self, arch: ArchConfig) -> ArchConfig:
        """Return `arch` if it belongs to this space, else raise InvalidArchError naming field, index, allowed values."""
        if not isinstance(arch, ArchConfig):
            raise InvalidArchError(f"expected an ArchConfig, got {type(arch).__name__}")
        nb, ns = self.num_blocks, self.num_stages
        if len(arch.d) != ns:
            raise InvalidArchError(f"field 'd' must list {ns} depths (one per stage) for space '{self.name}', "
                                   f"got {len(arch.d)}", loc=("d",))
        for name, values, allowed in (("ks", arch.ks, self.kernel_choices), ("e", arch.e, self.expand_choices)):
            if len(values) != nb:
                raise InvalidArchError(f"field '{name}' must list {nb} block slots for space '{self.name}', "
                                       f"got {len(values)}", loc=(name,))
            for i, v in enumerate(values):
                if v not in allowed:
                    raise InvalidArchError(f"field '{name}[{i}]' = {v} is not allowed; allowed: {list(allowed)}",
                                           loc=(name, i), allowed=allowed)
        for i, v in enumerate(arch.d):
            if v not in self.depth_choices:
                raise InvalidArchError(f"field 'd[{i}]' = {v} is not allowed; allowed: {list(self.depth_choices)}",
                                       loc=("d", i), allowed=self.depth_choices)
        # Any plausible resolution is accepted (OFA publishes nets above its training range); nonsense is refused.
        if not MIN_RESOLUTION <= arch.r <= MAX_RESOLUTION:
            raise InvalidArchError(f"field 'r' = {arch.r} is out of range; resolutions must be between "
                                   f"{MIN_RESOLUTION} and {MAX_RESOLUTION} px "
                                   f"(trained: {self.resolutions[0]}..{self.resolutions[-1]})", loc=("r",))
        return arch

    def arch_from_dict(self, data: Mapping[str, Any]) -> ArchConfig:
        """An arch from OFA's JSON keys, validated against this space."""
        if isinstance(data, Mapping):
            # Lengths first, against this space: ArchConfig alone can only guess the slots per stage.
            for name, n, what in (("d", self.num_stages, "depths (one per stage)"),
                                  ("ks", self.num_blocks, "block slots"), ("e", self.num_blocks, "block slots")):
                value = data.get(name)
                if isinstance(value, (list, tuple)) and len(value) != n:
                    raise InvalidArchError(f"field '{name}' must list {n} {what} for space '{self.name}', "
                                           f"got {len(value)}", loc=(name,))
        arch = self.validate(ArchConfig.from_dict(data))
        # ArchConfig rewrites inactive slots (beyond a stage's depth) as copies of the last active block, so what
        # a user sent there is checked as sent: every slot, active or not, holds one of the choices (as in OFA).
        for name, allowed in (("ks", self.kernel_choices), ("e", self.expand_choices)):
            for i, v in enumerate(data[name]):
                if v not in allowed:
                    raise InvalidArchError(f"field '{name}[{i}]' = {v} is not allowed (an inactive slot still holds "
                                           f"one of the choices); allowed: {list(allowed)}",
                                           loc=(name, i), allowed=allowed)
        return arch

    # ---------------------------------------------------------------- sampling
    def largest(self, r: int | None = None) -> ArchConfig:
        nb = self.num_blocks
        return ArchConfig((max(self.kernel_choices),) * nb, (max(self.expand_choices),) * nb,
                          (self.max_depth,) * self.num_stages, r or max(self.resolutions))

    def smallest(self, r: int | None = None) -> ArchConfig:
        nb = self.num_blocks
        return ArchConfig((min(self.kernel_choices),) * nb, (min(self.expand_choices),) * nb,
                          (min(self.depth_choices),) * self.num_stages, r or min(self.resolutions))

    def sample(self, seed_or_rng: int | np.random.Generator | None = None) -> ArchConfig:
        """One arch drawn uniformly per choice (kernel, expand per block; depth per stage; resolution)."""
        return self.decode(self.sample_codes(1, seed_or_rng))[0]

    def sample_codes(self, n: int, seed_or_rng: int | np.random.Generator | None = None) -> np.ndarray:
        """`n` random archs in the compact integer encoding (vectorised)."""
        rng = as_rng(seed_or_rng)
        nb, ns = self.num_blocks, self.num_stages
        codes = np.empty((n, 2 * nb + ns + 1), dtype=np.int64)
        codes[:, :nb] = rng.integers(0, len(self.kernel_choices), (n, nb))
        codes[:, nb:2 * nb] = rng.integers(0, len(self.expand_choices), (n, nb))
        codes[:, 2 * nb:2 * nb + ns] = rng.integers(0, len(self.depth_choices), (n, ns))
        codes[:, -1] = np.asarray(self.resolutions)[rng.integers(0, len(self.resolutions), n)]
        return self.canonical_codes(codes)

    def sample_many(self, n: int, seed_or_rng: int | np.random.Generator | None = None) -> list[ArchConfig]:
        return self.decode(self.sample_codes(n, seed_or_rng))

    def mutate(self, arch: ArchConfig, seed_or_rng: int | np.random.Generator | None = None,
               prob: float = 0.1) -> ArchConfig:
        """Resample each gene (kernel, expand, depth, resolution) with probability `prob` (OFA's mutation)."""
        rng = as_rng(seed_or_rng)
        code = self.encode([arch])
        return self.decode(mutate_rows(code, self.sample_codes(1, rng), rng, prob))[0]

    def crossover(self, a: ArchConfig, b: ArchConfig,
                  seed_or_rng: int | np.random.Generator | None = None) -> ArchConfig:
        """Each gene from `a` or `b` with equal probability (OFA's crossover)."""
        rng = as_rng(seed_or_rng)
        ca, cb = self.encode([a, b])
        return self.decode(crossover_rows(ca, cb, rng)[None])[0]

    def size(self) -> int:
        """Number of distinct subnets (inactive slots don't count), resolutions included."""
        per_block = len(self.kernel_choices) * len(self.expand_choices)
        per_stage = sum(per_block ** d for d in self.depth_choices)
        return per_stage ** self.num_stages * len(self.resolutions)

    # ---------------------------------------------------------------- encodings
    @property
    def code_length(self) -> int:
        return 2 * self.num_blocks + self.num_stages + 1

    def encode(self, archs: Iterable[ArchConfig]) -> np.ndarray:
        """Compact integer encoding (N, 2B+S+1): kernel index and expand index per block, depth index per stage,
        then the resolution in px."""
        kidx = {k: i for i, k in enumerate(self.kernel_choices)}
        eidx = {e: i for i, e in enumerate(self.expand_choices)}
        didx = {d: i for i, d in enumerate(self.depth_choices)}
        rows = []
        for a in archs:
            self.validate(a)
            rows.append([kidx[k] for k in a.ks] + [eidx[e] for e in a.e] + [didx[d] for d in a.d] + [a.r])
        return np.asarray(rows, dtype=np.int64).reshape(-1, self.code_length)

    def codes(self, archs: ArchConfig | Mapping[str, Any] | Iterable[ArchConfig | Mapping[str, Any]] | np.ndarray
              ) -> np.ndarray:
        """Compact codes (N, code_length) of archs in whatever form they come: ArchConfigs, OFA dicts (checked
        against this space as `arch_from_dict` checks them), or codes already (shape checked; one code row is a
        batch of one). The one coercion from archs to codes: the API, predictors, counters and searches all take
        their input through it. A bad dict in a list raises InvalidArchError with its index first in `loc`."""
        if isinstance(archs, np.ndarray):
            codes = archs[None, :] if archs.ndim == 1 and archs.size == self.code_length else archs
            self.split_codes(codes)
            return codes.astype(np.int64, copy=False)
        if isinstance(archs, ArchConfig):
            return self.encode([archs])
        if isinstance(archs, Mapping):
            return self.encode([self.arch_from_dict(archs)])
        archs = list(archs)
        if archs and all(isinstance(a, Mapping) for a in archs):
            codes = self._dict_codes(archs)
            if codes is not None:
                return codes
        valid = []
        for i, a in enumerate(archs):
            try:
                valid.append(a if isinstance(a, ArchConfig) else self.arch_from_dict(a))
            except InvalidArchError as exc:
                raise InvalidArchError(str(exc), loc=(i, *exc.loc), allowed=exc.allowed) from None
        return self.encode(valid)

    def _dict_codes(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """`codes` of a batch of OFA dicts in which every arch is valid, vectorised (hundreds of archs in a
        millisecond); None when anything is off (ragged, unknown values), for the per-arch path to name it."""
        nb, ns = self.num_blocks, self.num_stages
        try:
            ks = np.asarray([a["ks"] for a in archs], dtype=np.float64)
            e = np.asarray([a["e"] for a in archs], dtype=np.float64)
            d = np.asarray([a["d"] for a in archs], dtype=np.float64)
            r = np.asarray([a["r"][0] if isinstance(a["r"], (list, tuple)) and len(a["r"]) == 1 else a["r"]
                            for a in archs], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            return None
        if (ks.shape != (len(archs), nb) or e.shape != ks.shape or d.shape != (len(archs), ns) or r.ndim != 1
                or any(set(a) - {"ks", "e", "d", "r"} for a in archs)):
            return None
        parts = []
        for values, choices in ((ks, self.kernel_choices), (e, self.expand_choices), (d, self.depth_choices)):
            table = np.asarray(choices, dtype=np.float64)
            idx = np.clip(np.searchsorted(table, values), 0, len(table) - 1)
            if not np.array_equal(table[idx], values):
                return None
            parts.append(idx)
        if np.any(r < MIN_RESOLUTION) or np.any(r > MAX_RESOLUTION) or np.any(r != np.round(r)):
            return None
        return self.canonical_codes(np.concatenate([*parts, r[:, None]], axis=1).astype(np.int64))

    def split_codes(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(kernel idx (N,B), expand idx (N,B), depth (N,S) in blocks, resolution (N,)) from compact codes."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.code_length:
            raise InvalidArchError(f"codes must have shape (N, {self.code_length}) for space '{self.name}', got {codes.shape}")
        nb, ns = self.num_blocks, self.num_stages
        depth = np.asarray(self.depth_choices)[codes[:, 2 * nb:2 * nb + ns]]
        return codes[:, :nb], codes[:, nb:2 * nb], depth, codes[:, -1]

    def active_mask(self, depth: np.ndarray) -> np.ndarray:
        """(N, B) bool: which block slots run, from depths (N, S) in blocks."""
        pos = np.tile(np.arange(self.max_depth), self.num_stages)
        return pos[None, :] < np.repeat(depth, self.max_depth, axis=1)

    def canonical_codes(self, codes: np.ndarray) -> np.ndarray:
        """Codes with inactive slots copied from their stage's last active block (ArchConfig's canonical form); an
        integer array keeps its dtype (a search's rows of choice indices in bytes move an eighth of the memory)."""
        codes = np.array(codes, copy=True)
        if codes.dtype.kind not in "iu":
            codes = codes.astype(np.int64)
        nb, n = self.num_blocks, self.max_depth
        _, _, depth, _ = self.split_codes(codes)
        # slot by slot, each inactive one takes its left neighbour's (already canonical) choice: a few column
        # operations, several times faster than a (N, B) gather (a search canonicalises every candidate)
        for stage in range(self.num_stages):
            for pos in range(1, n):
                off = depth[:, stage] <= pos
                for col in (stage * n + pos, nb + stage * n + pos):
                    codes[:, col] = np.where(off, codes[:, col - 1], codes[:, col])
        return codes

    def decode(self, codes: np.ndarray) -> list[ArchConfig]:
        k, e, d, r = self.split_codes(codes)
        ks, es = np.asarray(self.kernel_choices)[k], np.asarray(self.expand_choices)[e]
        return [ArchConfig(tuple(int(x) for x in ks[i]), tuple(int(x) for x in es[i]),
                           tuple(int(x) for x in d[i]), int(r[i])) for i in range(len(r))]

    @property
    def onehot_length(self) -> int:
        return self.num_blocks * (len(self.kernel_choices) + len(self.expand_choices)) + len(self.resolutions)

    def onehot(self, archs_or_codes: Sequence[ArchConfig] | np.ndarray) -> np.ndarray:
        """OFA's accuracy-predictor encoding (N, |r| + B*|ks| + B*|e|), laid out as its MobileNetArchEncoder:
        the resolution one-hot, then a kernel one-hot per block slot, then an expand one-hot per block slot
        (inactive slots all zero). A resolution between two choices is two-hot, interpolated."""
        k, e, d, r = self.split_codes(self.codes(archs_or_codes))
        n, nb = k.shape
        nk, ne, nr = len(self.kernel_choices), len(self.expand_choices), len(self.resolutions)
        active = self.active_mask(d).astype(np.float32)
        out = np.zeros((n, nr + nb * (nk + ne)), dtype=np.float32)
        rows = np.arange(n)[:, None]
        slot = np.arange(nb)[None, :]
        out[rows, nr + slot * nk + k] = active
        out[rows, nr + nb * nk + slot * ne + e] = active
        res = np.asarray(self.resolutions, dtype=np.float64)
        pos = np.interp(r.astype(np.float64), res, np.arange(nr))
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, nr - 1)
        frac = (pos - lo).astype(np.float32)
        out[np.arange(n), lo] += 1 - frac
        out[np.arange(n), hi] += frac
        return out


def register_space(name: str, space_or_yaml: "SearchSpace | str | Path") -> None:
    """Make a space available to `SearchSpace.preset(name)` (a SearchSpace or a YAML path)."""
    SPACES.register(name, space_or_yaml if isinstance(space_or_yaml, SearchSpace) else Path(space_or_yaml))


def available_spaces() -> list[str]:
    shipped = [p.name[:-5] for p in (resources.files("supernet") / "presets").iterdir() if p.name.endswith(".yaml")]
    return sorted(set(shipped) | set(SPACES))


__all__ = ["SearchSpace", "StageSpec", "ConvSpec", "BlockSlot", "make_divisible", "register_space",
           "available_spaces", "as_rng"]
