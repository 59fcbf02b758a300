"""IdempotencyGuard: which outcomes are stored, replayed, released or refused."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth.caller import Caller
from shared.errors import (
    ApiError,
    Conflict,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    IdentityUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.graph.errors import GraphNotFound
from shared.mail.idempotency import IdempotencyGuard, check_key, fingerprint
from shared.store.idempotency import Claim, ClaimState, StoredResponse

CALLER = Caller("user", "tid", "oid", "app", frozenset(), frozenset())
OK = StoredResponse(202, {}, b'{"id": null}')


class FakeStore:
    def __init__(self, state: ClaimState, response: StoredResponse | None = None) -> None:
        self.claim_result = Claim(state, "pk", "rk", response=response)
        self.completed: list[StoredResponse] = []
        self.released = 0

    async def claim(self, *args: Any) -> Claim:
        return self.claim_result

    async def complete(self, claim: Claim, response: StoredResponse) -> None:
        self.completed.append(response)

    async def release(self, claim: Claim) -> None:
        self.released += 1


def render(error: ApiError) -> StoredResponse:
    return StoredResponse(error.http_status, {}, error.code.encode(), "application/problem+json")


async def run(store: FakeStore, produce: Any, key: str | None = "k") -> StoredResponse:
    guard = IdempotencyGuard(store)  # type: ignore[arg-type]
    return await guard.run(CALLER, "conn", key, "fp", produce, render)


async def test_a_first_request_runs_and_its_response_is_stored() -> None:
    store = FakeStore(ClaimState.CLAIMED)

    async def produce() -> StoredResponse:
        return OK

    assert await run(store, produce) == OK
    assert store.completed == [OK]


async def test_a_replay_answers_the_stored_response_without_running() -> None:
    store = FakeStore(ClaimState.REPLAY, OK)

    async def produce() -> StoredResponse:
        raise AssertionError("must not run")

    replay = await run(store, produce)

    assert replay.status == 202 and replay.body == OK.body
    assert replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("state", [ClaimState.MISMATCH, ClaimState.IN_PROGRESS])
async def test_mismatch_and_in_progress_are_409(state: ClaimState) -> None:
    async def produce() -> StoredResponse:
        raise AssertionError("must not run")

    with pytest.raises(Conflict) as raised:
        await run(FakeStore(state), produce)

    if state is ClaimState.IN_PROGRESS:
        assert raised.value.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("error", "released"),
    [
        (GraphThrottled(5), True),  # Graph: not processed
        (PayloadTooLarge("limits, before any Graph call"), True),
        (ValidationFailed("ours"), True),
        (GraphNotFound("from Graph", extensions={"graphCode": "ErrorItemNotFound"}), False),
        (NotFound("ours, before any Graph call"), True),
        (GraphUnavailable("Graph unreachable: the request may have arrived"), False),
        (IdentityUnavailable("no token: nothing was sent, but a 5xx of ours"), False),
        (GraphError("ErrorSomething"), False),
    ],
)
async def test_errors_release_the_key_only_when_nothing_can_have_happened(
    error: ApiError, released: bool
) -> None:
    store = FakeStore(ClaimState.CLAIMED)

    async def produce() -> StoredResponse:
        raise error

    with pytest.raises(type(error)):
        await run(store, produce)

    assert store.released == (1 if released else 0)
    assert len(store.completed) == (0 if released else 1)


async def test_without_a_key_nothing_is_stored() -> None:
    store = FakeStore(ClaimState.CLAIMED)

    async def produce() -> StoredResponse:
        return OK

    assert await run(store, produce, key=None) == OK
    assert store.completed == []


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "line\nbreak"])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationFailed):
        check_key(key)


def test_the_fingerprint_covers_method_path_query_and_body() -> None:
    base = fingerprint("POST", "/api/x", "a=1", b"{}")

    assert base == fingerprint("post", "/api/x", "a=1", b"{}")
    assert base != fingerprint("PATCH", "/api/x", "a=1", b"{}")
    assert base != fingerprint("POST", "/api/y", "a=1", b"{}")
    assert base != fingerprint("POST", "/api/x", "a=2", b"{}")
    assert base != fingerprint("POST", "/api/x", "a=1", b"{ }")


def test_the_routes_name_the_header_the_guard_reads() -> None:
    # The HTTP adapter spells the header itself so that importing it loads no storage code.
    from shared.http.mail_write import IDEMPOTENCY_HEADER
    from shared.mail.idempotency import HEADER

    assert IDEMPOTENCY_HEADER == HEADER
