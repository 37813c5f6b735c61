"""The API against its own OpenAPI document, with schemathesis on the in-process app (no socket, no workers):
generated requests, valid and invalid, with the server's token and without it, must never get a 5xx, a status
the document does not list for that route, or a body off the documented schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed (a dev dependency)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,  # noqa: E402
                                               status_code_conformance)

TOKEN = "schema-test-token"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXAMPLES = 10  # per operation and mode: about 500 requests in all, a few seconds


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from nas.api import create_app
    from nas.service.settings import Settings

    runs = tmp_path_factory.mktemp("schema") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_PROFILES_DIR", str(runs / "profiles"))  # the app sets it for its lifetime; restored after
        app = create_app(Settings(runs_dir=runs, token=TOKEN), start_jobs=False)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode, token", [(GenerationMode.POSITIVE, TOKEN), (GenerationMode.NEGATIVE, TOKEN),
                                         (GenerationMode.POSITIVE, None)], ids=["valid", "invalid", "no-token"])
def test_every_route_answers_as_documented(api_schema, mode, token):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 19
    unnegatable = []
    for operation in operations:
        raw = operation.definition.raw

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"} if token else {},
                                              checks=CHECKS)
            if token is None and raw.get("security"):
                assert response.status_code == 401, operation.label

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
            assert mode == GenerationMode.NEGATIVE and not raw.get("parameters") and "requestBody" not in raw, \
                operation.label
            unnegatable.append(operation.label)
    assert len(unnegatable) < len(operations) // 2
