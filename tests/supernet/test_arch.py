"""ArchConfig: OFA's JSON keys, round trips, canonical form, hashing and validation messages."""

import json

import numpy as np
import pytest

from supernet import ArchConfig, InvalidArchError, SearchSpace

TINY = SearchSpace.preset("tiny-mbv3")


def test_json_round_trip_and_ofa_keys():
    for arch in [TINY.largest(), TINY.smallest()] + TINY.sample_many(20, 0):
        d = arch.to_dict()
        assert set(d) == {"ks", "e", "d", "r"} and isinstance(d["r"], int)
        assert ArchConfig.from_dict(d) == arch
        assert ArchConfig.from_json(arch.to_json()) == arch
        assert ArchConfig.from_dict(json.loads(json.dumps(d))) == arch


def test_from_dict_accepts_ofa_forms():
    """OFA's own JSON: `r` as a one-item list, a `wid` key (None for MobileNetV3), floats that are integers."""
    arch = TINY.sample(1)
    d = arch.to_dict()
    assert ArchConfig.from_dict({**d, "r": [d["r"]]}) == arch
    assert ArchConfig.from_dict({**d, "wid": None}) == arch
    assert ArchConfig.from_dict({**d, "r": float(d["r"]), "e": [float(x) for x in d["e"]]}) == arch
    assert ArchConfig(np.array(arch.ks), np.array(arch.e), np.array(arch.d), np.int64(arch.r)) == arch


def test_canonical_form_ignores_inactive_slots():
    n = TINY.max_depth
    base = TINY.smallest()  # depth 2 everywhere: slots 2, 3 of each stage are inactive
    ks, e = list(base.ks), list(base.e)
    ks[2], ks[3], e[3] = 7, 5, 6  # stage 0, inactive slots
    other = ArchConfig(tuple(ks), tuple(e), base.d, base.r)
    assert other == base and hash(other) == hash(base) and len({other, base}) == 1
    assert other.ks[2:n] == (base.ks[1],) * (n - 2)  # copies of the stage's last active block
    ks[1] = 5  # an active slot does change identity
    assert ArchConfig(tuple(ks), tuple(e), base.d, base.r) != base
    assert other.active_blocks() == [s * n + j for s in range(TINY.num_stages) for j in range(2)]


def test_frozen():
    arch = TINY.largest()
    with pytest.raises(AttributeError):
        arch.r = 32  # type: ignore[misc]


@pytest.mark.parametrize("data, needle", [
    ({"ks": [3], "e": [3]}, "missing field(s) d, r"),
    ({"ks": [3], "e": [3], "d": [1], "r": 28, "depth": 2}, "unknown field(s) depth"),
    ({"ks": [3, 3], "e": [3], "d": [1], "r": 28}, "'ks' and 'e' must have the same length"),
    ({"ks": [3, "x"], "e": [3, 3], "d": [1], "r": 28}, "'ks[1]' must be an integer"),
    ({"ks": [3, 3], "e": [3, 3.5], "d": [1], "r": 28}, "'e[1]' must be an integer"),
    ({"ks": [3, 3], "e": [3, 3], "d": [1], "r": [28, 32]}, "'r' must be one resolution"),
    ({"ks": [3, 3], "e": [3, 3], "d": [1], "r": -1}, "'r' must be a positive integer"),
    ({"ks": [3, 3, 3], "e": [3, 3, 3], "d": [1, 1], "r": 28}, "not a multiple of the 2 stages"),
    ({"ks": [3, 3], "e": [3, 3], "d": [3], "r": 28}, "'d[0]' = 3 must be between 1 and 2"),
    ("[1, 2]", "must be a JSON object"),
])
def test_malformed_dicts_say_what_is_wrong(data, needle):
    with pytest.raises(InvalidArchError) as err:
        ArchConfig.from_dict(data)
    assert needle in str(err.value)


def test_from_json_reports_bad_json():
    with pytest.raises(InvalidArchError, match="not valid JSON"):
        ArchConfig.from_json('{"ks": [3,')


def test_space_validation_names_field_index_and_allowed_values():
    good = TINY.largest().to_dict()
    cases = [
        ({**good, "ks": good["ks"][:3] + [4] + good["ks"][4:]}, "field 'ks[3]' = 4 is not allowed; allowed: [3, 5, 7]"),
        ({**good, "e": [2] + good["e"][1:]}, "field 'e[0]' = 2 is not allowed; allowed: [3, 4, 6]"),
        ({**good, "d": [1] + good["d"][1:]}, "field 'd[0]' = 1 is not allowed; allowed: [2, 3, 4]"),
        ({**good, "d": good["d"][:-1], "ks": good["ks"][:-4], "e": good["e"][:-4]}, "field 'd' must list 4 depths"),
        ({**good, "ks": good["ks"] * 2, "e": good["e"] * 2, "d": good["d"] * 2}, "field 'd' must list 4 depths"),
        ({**good, "r": 4}, "field 'r' = 4 is out of range; resolutions must be between 8 and 4096 px"),
        ({**good, "r": 2**63}, f"field 'r' = {2**63} is out of range; resolutions must be between 8 and 4096 px"),
        ({**good, "r": [5000]}, "field 'r' = 5000 is out of range"),
    ]
    for data, needle in cases:
        with pytest.raises(InvalidArchError) as err:
            TINY.arch_from_dict(data)
        assert needle in str(err.value), str(err.value)


def test_space_accepts_resolutions_outside_the_trained_range():
    ofa = SearchSpace.preset("ofa-mbv3-w1.0")
    a = ofa.sample(0)
    assert ofa.validate(ArchConfig(a.ks, a.e, a.d, 260)).r == 260  # OFA published nets at 236-260 px


def test_values_in_inactive_slots_are_checked_as_sent():
    small = TINY.smallest().to_dict()  # depth 2 of 4: slots 2 and 3 of each stage are inactive
    assert TINY.arch_from_dict(small) == TINY.smallest()
    for name, bad in (("ks", -5), ("e", 5)):
        values = list(small[name])
        values[3] = bad
        with pytest.raises(InvalidArchError, match=rf"field '{name}\[3\]' = {bad} is not allowed \(an inactive slot"):
            TINY.arch_from_dict({**small, name: values})
    other = list(small["ks"])
    other[3] = 7  # an inactive slot holding another allowed choice is the same subnet, as in OFA's configs
    assert TINY.arch_from_dict({**small, "ks": other}) == TINY.smallest()
