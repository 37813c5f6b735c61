"""The vectorised arch encoding behind POST /predict agrees with the space's own validation and encoding."""

from __future__ import annotations

import numpy as np
import pytest

from nas.api.errors import FieldError
from nas.api.routers.predict import encode_archs
from nas.api.schemas import ArchIn
from supernet import ArchConfig, SearchSpace


@pytest.mark.parametrize("name", ["tiny-mbv3", "ofa-mbv3-w1.0"])
def test_fast_codes_equal_the_space_encoding(name):
    space = SearchSpace.preset(name)
    rng = np.random.default_rng(0)
    raw = []
    for a in space.sample_many(200, 1):
        d = a.to_dict()
        ks, e = list(d["ks"]), list(d["e"])
        for i in range(len(ks)):  # scramble slots, inactive ones included: canonical codes must still agree
            if rng.random() < 0.3:
                ks[i], e[i] = int(rng.choice(space.kernel_choices)), int(rng.choice(space.expand_choices))
        raw.append({**d, "ks": ks, "e": e, "r": [d["r"]] if rng.random() < 0.5 else d["r"]})
    archs = [ArchIn(**x) for x in raw]
    want = space.encode([ArchConfig.from_dict(x) for x in raw])
    assert np.array_equal(space._dict_codes([a.model_dump() for a in archs]), want)
    assert np.array_equal(encode_archs(space, archs), want)


def test_one_bad_arch_in_a_batch_is_named():
    space = SearchSpace.preset("tiny-mbv3")
    raw = [a.to_dict() for a in space.sample_many(50, 2)]
    raw[37]["d"] = list(raw[37]["d"])
    raw[37]["d"][1] = 9
    archs = [ArchIn(**x) for x in raw]
    assert space._dict_codes([a.model_dump() for a in archs]) is None
    with pytest.raises(FieldError) as err:
        encode_archs(space, archs)
    assert err.value.detail[0]["loc"] == ["body", "archs", 37, "d", 1]
    raw[37] = {**raw[36], "ks": raw[36]["ks"][:-1]}
    with pytest.raises(FieldError) as err:
        encode_archs(space, [ArchIn(**x) for x in raw])
    assert err.value.detail[0]["loc"][:3] == ["body", "archs", 37]
