"""ArchConfig: one subnet of an elastic space, in once-for-all's JSON keys (ks, e, d, r)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Mapping

from supernet.errors import InvalidArchError


def _int_tuple(value: Any, field: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidArchError(f"field '{field}' must be a list of integers, got {value!r}", loc=(field,))
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, Real) or not float(v).is_integer():
            raise InvalidArchError(f"field '{field}[{i}]' must be an integer, got {v!r}", loc=(field, i))
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class ArchConfig:
    """One subnet: kernel size `ks` and expand ratio `e` per block slot, depth `d` per stage, resolution `r` in px.

    `ks` and `e` list every block slot (as OFA does); slots beyond a stage's depth are inactive and are
    stored in canonical form (copies of the stage's last active block), so they never change identity.
    """

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    def __post_init__(self) -> None:
        ks, e, d = _int_tuple(self.ks, "ks"), _int_tuple(self.e, "e"), _int_tuple(self.d, "d")
        if isinstance(self.r, bool) or not isinstance(self.r, Integral) or self.r <= 0:
            raise InvalidArchError(f"field 'r' must be a positive integer resolution in px, got {self.r!r}",
                                   loc=("r",))
        object.__setattr__(self, "r", int(self.r))
        if not d:
            raise InvalidArchError("field 'd' must list one depth per stage, got an empty list", loc=("d",))
        if len(ks) != len(e):
            raise InvalidArchError(f"fields 'ks' and 'e' must have the same length (one per block slot), got {len(ks)} and {len(e)}")
        if len(ks) % len(d):
            raise InvalidArchError(
                f"field 'ks' has {len(ks)} block slots, not a multiple of the {len(d)} stages in 'd'", loc=("ks",)
            )
        per_stage = len(ks) // len(d)
        for i, depth in enumerate(d):
            if not 1 <= depth <= per_stage:
                raise InvalidArchError(f"field 'd[{i}]' = {depth} must be between 1 and {per_stage} "
                                       "(block slots per stage)", loc=("d", i))
        ks_c, e_c = list(ks), list(e)
        for s, depth in enumerate(d):
            last = s * per_stage + depth - 1
            for j in range(last + 1, (s + 1) * per_stage):
                ks_c[j], e_c[j] = ks_c[last], e_c[last]
        object.__setattr__(self, "ks", tuple(ks_c))
        object.__setattr__(self, "e", tuple(e_c))
        object.__setattr__(self, "d", d)

    @property
    def blocks_per_stage(self) -> int:
        return len(self.ks) // len(self.d)

    def active_blocks(self) -> list[int]:
        """Indices of the block slots that run."""
        n = self.blocks_per_stage
        return [s * n + j for s, depth in enumerate(self.d) for j in range(depth)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchConfig":
        """Build from OFA's JSON (`ks`, `e`, `d`, `r`; `r` may be an int or a one-item list; `wid` is ignored)."""
        if not isinstance(data, Mapping):
            raise InvalidArchError(f"an arch must be a JSON object with keys ks, e, d, r; got {type(data).__name__}")
        missing = [k for k in ("ks", "e", "d", "r") if k not in data]
        if missing:
            raise InvalidArchError(f"arch is missing field(s) {', '.join(missing)}; an arch needs ks, e, d and r")
        unknown = sorted(set(data) - {"ks", "e", "d", "r", "wid"})
        if unknown:
            raise InvalidArchError(f"arch has unknown field(s) {', '.join(unknown)}; allowed: ks, e, d, r (and OFA's wid)")
        r = data["r"]
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise InvalidArchError(f"field 'r' must be one resolution, got {list(r)!r}", loc=("r",))
            r = r[0]
        if isinstance(r, float) and r.is_integer():
            r = int(r)
        return cls(ks=_int_tuple(data["ks"], "ks"), e=_int_tuple(data["e"], "e"), d=_int_tuple(data["d"], "d"), r=r)

    @classmethod
    def from_json(cls, text: str) -> "ArchConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArchError(f"arch is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))
