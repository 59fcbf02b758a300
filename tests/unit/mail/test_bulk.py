"""BulkRunner: batching, per-item 429 retries, and per-id results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from shared.auth.caller import Caller
from shared.errors import GraphUnavailable, ValidationFailed
from shared.graph import GraphRequest, GraphResponse, MailboxPath
from shared.mail.bulk import BulkRunner, batch_url, sub_request
from shared.mail.compose import BulkBody
from shared.mail.writer import WriteContext

CALLER = Caller("user", "tid", "oid", "app", frozenset({"access_as_user"}), frozenset())
IDS = [f"AAkALgAAOrpn5P16PmD{i:04d}xx=" for i in range(45)]


class FakeWriter:
    """The three MailWriter methods BulkRunner uses; Graph answers come from `answer`."""

    def __init__(self, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.answer = answer
        self.batches: list[dict[str, Any]] = []

    async def authorize(self, ctx: WriteContext) -> None:
        return None

    @asynccontextmanager
    async def audited(self, action: str, ctx: WriteContext) -> AsyncIterator[dict[str, int]]:
        yield {}

    async def graph(
        self, ctx: WriteContext, build: Callable[[MailboxPath], GraphRequest]
    ) -> GraphResponse:
        request = build(MailboxPath.of(None))
        assert request.path == "/$batch"
        self.batches.append(request.json)
        body = json.dumps(self.answer(request.json)).encode()
        return GraphResponse(200, httpx.Headers(), body, "req-1")


def ctx() -> WriteContext:
    return WriteContext(CALLER, "conn", None, "corr")


def ok_all(payload: dict[str, Any]) -> dict[str, Any]:
    return {"responses": [{"id": r["id"], "status": 200, "body": {}} for r in payload["requests"]]}


async def test_ids_go_in_batches_of_20_with_one_result_each_in_order() -> None:
    writer = FakeWriter(ok_all)

    result = await BulkRunner(writer).run(ctx(), BulkBody(ids=IDS, action="markRead"))  # type: ignore[arg-type]

    assert [len(b["requests"]) for b in writer.batches] == [20, 20, 5]
    assert [r["id"] for r in result["value"]] == IDS
    assert result["succeeded"] == 45 and result["failed"] == 0
    first = writer.batches[0]["requests"][0]
    assert first["method"] == "PATCH" and first["body"] == {"isRead": True}
    assert first["headers"]["Content-Type"] == "application/json"


async def test_throttled_items_are_retried_after_retry_after_and_succeed() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(len(payload["requests"]))
        out = []
        for r in payload["requests"]:
            throttled = len(calls) == 1 and int(r["id"]) % 3 == 0
            out.append(
                {"id": r["id"], "status": 429, "headers": {"Retry-After": "2"}}
                if throttled
                else {"id": r["id"], "status": 200, "body": {}}
            )
        return {"responses": out}

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    writer = FakeWriter(answer)
    body = BulkBody(ids=IDS[:20], action="flag")

    result = await BulkRunner(writer, sleep=sleep).run(ctx(), body)  # type: ignore[arg-type]

    assert calls == [20, 7]  # ids 0, 3, ..., 18 sent again, alone
    assert slept == [2.0]
    assert result["succeeded"] == 20


async def test_items_still_throttled_after_the_last_round_say_so() -> None:
    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "responses": [
                {"id": r["id"], "status": 429, "headers": {"Retry-After": "1"}}
                for r in payload["requests"]
            ]
        }

    async def sleep(seconds: float) -> None:
        return None

    runner = BulkRunner(FakeWriter(answer), sleep=sleep, max_rounds=3)  # type: ignore[arg-type]

    result = await runner.run(ctx(), BulkBody(ids=IDS[:2], action="markUnread"))

    assert result["failed"] == 2
    assert {(r["status"], r["code"]) for r in result["value"]} == {(429, "graph_throttled")}


async def test_partial_failure_is_reported_per_item() -> None:
    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "responses": [
                {"id": "0", "status": 201, "body": {}},
                {
                    "id": "1",
                    "status": 404,
                    "body": {"error": {"code": "ErrorItemNotFound", "message": "gone"}},
                },
            ]
        }

    result = await BulkRunner(
        FakeWriter(answer)
    ).run(  # type: ignore[arg-type]
        ctx(), BulkBody(ids=IDS[:2], action="move", destinationFolder="Archive")
    )

    assert result["value"] == [
        {"id": IDS[0], "status": 201},
        {"id": IDS[1], "status": 404, "code": "not_found"},
    ]


async def test_a_failed_batch_gives_its_error_to_each_of_its_ids() -> None:
    class Down(FakeWriter):
        async def graph(self, ctx: WriteContext, build: Any) -> GraphResponse:
            raise GraphUnavailable()

    result = await BulkRunner(Down(ok_all)).run(ctx(), BulkBody(ids=IDS[:3], action="delete"))  # type: ignore[arg-type]

    assert [(r["status"], r["code"]) for r in result["value"]] == [(503, "graph_unavailable")] * 3


@pytest.mark.parametrize(
    "body",
    [
        {"ids": ["a/b"], "action": "markRead"},
        {"ids": [IDS[0], IDS[0]], "action": "markRead"},
        {"ids": [IDS[0]], "action": "categorize"},
        {"ids": [IDS[0]], "action": "move"},
        {"ids": [IDS[0]], "action": "move", "destinationFolder": "../x"},
    ],
)
async def test_bad_bulk_requests_are_refused_before_any_graph_call(body: dict[str, Any]) -> None:
    writer = FakeWriter(ok_all)

    with pytest.raises(ValidationFailed):
        await BulkRunner(writer).run(ctx(), BulkBody.model_validate(body))  # type: ignore[arg-type]

    assert writer.batches == []


def test_each_action_maps_to_its_graph_request() -> None:
    path = MailboxPath.of(None)
    mid = IDS[0]

    def req(**kw: Any) -> GraphRequest:
        return sub_request(path, mid, BulkBody(ids=[mid], **kw))

    assert req(action="unflag").json == {"flag": {"flagStatus": "notFlagged"}}
    assert req(action="categorize", categories=["A"]).json == {"categories": ["A"]}
    assert req(action="move", destinationFolder="Inbox").json == {"destinationId": "inbox"}
    assert req(action="delete").json == {"destinationId": "deleteditems"}
    assert req(action="delete", mode="soft").method == "DELETE"
    assert req(action="delete", mode="permanent").path.endswith("/permanentDelete")
    assert batch_url(req(action="markRead").path) == f"/me/messages/{mid}"
