"""Schemathesis over the whole API: every operation in `/api/openapi.json` of the running app
(dev host + sandbox + Azurite), with a real bearer token from the sandbox supplied through
schemathesis' auth hook, positive and negative data. It proves that no generated request gets
a 5xx, that invalid input is rejected with 4xx, that a missing or broken credential is never
ignored, and that every answer matches the documented status codes, media types and schemas.

Bounded for `make test`: FUZZ_EXAMPLES examples per operation and mode (default 10, about
15 s; FUZZ_EXAMPLES=100 for a deeper run). Findings it made are kept as plain tests in
test_reproduced_cases.py."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.app import FUNCTION_KEY, AppServer
from tests.support.browser import connect
from tests.support.sandbox import SandboxServer

FUZZER = "bob@contoso.test"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
STATUSES: list[tuple[str, int]] = []
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@dataclass(frozen=True)
class FuzzTarget:
    connection_id: str
    token: str


@pytest.fixture(scope="module")
def fuzz_target(app_server: AppServer, sandbox_server: SandboxServer) -> Iterator[FuzzTarget]:
    """A real connection and caller token, so that generated calls also reach Graph."""
    sandbox_server.reset()
    target = FuzzTarget(
        connect(app_server, sandbox_server, FUZZER), sandbox_server.user_token(FUZZER)
    )
    yield target
    with httpx.Client(base_url=f"{app_server.url}/api", timeout=30) as api:
        api.delete(
            f"/connections/{target.connection_id}",
            headers={"Authorization": f"Bearer {target.token}"},
        )


@pytest.fixture(scope="module")
def api_schema(app_server: AppServer, fuzz_target: FuzzTarget) -> Any:
    schema = schemathesis.openapi.from_url(f"{app_server.url}/api/openapi.json", timeout=30)

    @schema.auth(refresh_interval=None)
    class SandboxBearer:
        """The sandbox's access token for the fuzzing user (and the host key for operators'
        endpoints): schemathesis' `ignored_auth` check removes or breaks it on purpose."""

        def get(self, case: Any, context: Any) -> str:
            return fuzz_target.token

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"
            if case.operation.path.startswith("/health/"):
                case.headers["x-functions-key"] = FUNCTION_KEY

    return schema


def _aim_at_real_connection(case: Any, connection_id: str) -> None:
    """Half of the generated connection ids are replaced by the real one (chosen from the
    case's own data, so a failure replays), except for deleting it, which would end the run's
    coverage of everything behind it."""
    if "connectionId" not in (case.path_parameters or {}):
        return
    if case.method.upper() == "DELETE" and case.operation.path == "/connections/{connectionId}":
        return
    if zlib.crc32(repr(sorted((case.path_parameters or {}).items())).encode()) % 2 == 0:
        case.path_parameters["connectionId"] = connection_id


def _fuzz(operation: Any, mode: GenerationMode, connection_id: str) -> list[str]:
    """Up to EXAMPLES generated cases for one operation in one mode; the failures, described."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        _aim_at_real_connection(case, connection_id)
        try:
            response = case.call_and_validate(checks=CHECKS, timeout=60)
            STATUSES.append((operation.label, response.status_code))
        except FailureGroup as failure:
            failures.append(f"{operation.label} [{mode}]: {failure}")

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def test_no_generated_request_breaks_the_api_contract(
    api_schema: Any, fuzz_target: FuzzTarget
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30  # the whole API, not a filtered part of it

    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, fuzz_target.connection_id)

    assert failures == [], "\n\n".join(failures)
    # The auth hook really authenticated: bearer operations were reached, not only refused.
    reached = {label for label, status in STATUSES if 200 <= status < 300}
    assert {"GET /me", "GET /connections/{connectionId}/messages"} <= reached, reached
