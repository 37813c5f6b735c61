"""Errors carry the field they are about as data (`loc`), the path the API answers with and the CLI names."""

import pytest

from hw_profiles import ProfileError
from nas.service.client import ApiClientError
from supernet import SearchSpace
from supernet.errors import InvalidArchError

TINY = SearchSpace.preset("tiny-mbv3")


def test_an_invalid_arch_names_its_field_and_index_as_data():
    bad = TINY.largest().to_dict()
    bad["ks"] = list(bad["ks"])
    bad["ks"][2] = 9
    with pytest.raises(InvalidArchError, match=r"field 'ks\[2\]' = 9 is not allowed") as exc:
        TINY.arch_from_dict(bad)
    assert exc.value.loc == ("ks", 2) and exc.value.allowed == list(TINY.kernel_choices)
    with pytest.raises(InvalidArchError) as exc:  # in a batch, the arch's index comes first
        TINY.codes([TINY.smallest().to_dict(), bad])
    assert exc.value.loc == (1, "ks", 2)


def test_profile_and_client_errors_carry_their_field():
    assert ProfileError("bad kind", "kind").loc == ("kind",) and ProfileError("bad kind", "kind").field == "kind"
    assert ProfileError("no field").loc == () and ProfileError("no field").field is None
    err = ApiClientError("422", 422, [{"loc": ["body", "devices", 0, "name"], "msg": "unknown device"}])
    assert err.loc == ("body", "devices", 0, "name")
    assert ApiClientError("unreachable").loc == ()
