"""BulkRunner: batching, per-item 429 retries, and per-id results."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.errors import ValidationFailed
from shared.graph import GraphRequest, MailboxPath
from shared.mail.bulk import BulkRunner, batch_url, sub_request
from shared.mail.compose import BulkBody
from tests.unit.mail.support import answer as graph_answer
from tests.unit.mail.support import rig

IDS = [f"AAkALgAAOrpn5P16PmD{i:04d}xx=" for i in range(45)]


class FakeWriter:
    """A connected mailbox whose Graph answers each `$batch` with `answer(payload)`, and a
    real MailWriter for the audit; `batches` are the payloads Graph received."""

    def __init__(self, answer_batch: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.batches: list[dict[str, Any]] = []

        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.path.endswith("/$batch")
            payload = json.loads(request.content)
            self.batches.append(payload)
            return graph_answer(body=answer_batch(payload))

        self.rig = rig(handler)

    async def run(self, body: BulkBody, **options: Any) -> dict[str, Any]:
        mb = await self.rig.open(write=True)
        return await BulkRunner(self.rig.writer(), **options).run(mb, body)


def ok_all(payload: dict[str, Any]) -> dict[str, Any]:
    return {"responses": [{"id": r["id"], "status": 200, "body": {}} for r in payload["requests"]]}


async def test_ids_go_in_batches_of_20_with_one_result_each_in_order() -> None:
    writer = FakeWriter(ok_all)

    result = await writer.run(BulkBody(ids=IDS, action="markRead"))

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

    result = await writer.run(body, sleep=sleep)

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

    writer = FakeWriter(answer)

    result = await writer.run(BulkBody(ids=IDS[:2], action="markUnread"), sleep=sleep, max_rounds=3)

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

    result = await FakeWriter(answer).run(
        BulkBody(ids=IDS[:2], action="move", destinationFolder="Archive")
    )

    assert result["value"] == [
        {"id": IDS[0], "status": 201},
        {"id": IDS[1], "status": 404, "code": "not_found"},
    ]


async def test_a_failed_batch_gives_its_error_to_each_of_its_ids() -> None:
    writer = FakeWriter(ok_all)
    # Graph's gateway fails the batch as a whole (502: the POST is not repeated).
    writer.rig.graph.handler = lambda _: httpx.Response(502)

    result = await writer.run(BulkBody(ids=IDS[:3], action="delete"))

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
        await writer.run(BulkBody.model_validate(body))

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
