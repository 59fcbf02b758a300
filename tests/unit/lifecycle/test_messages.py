"""The queue message: round trip, and every malformed shape refused with a reason."""

from __future__ import annotations

import base64
import json

import pytest

from shared.lifecycle.messages import MAX_ITEMS, MalformedBatch, WorkBatch, WorkItem

RUN = "0123456789abcdef0123456789abcdef"
CONNECTION = "AbCdEfGhIjKlMnOpQrStUvWx"


def test_a_batch_round_trips_through_base64_json() -> None:
    batch = WorkBatch(RUN, 3, (WorkItem(CONNECTION, "202611241205"),))
    assert WorkBatch.decode(base64.b64decode(batch.encode())) == batch
    assert WorkBatch.decode_text(batch.encode()) == batch


def test_a_batch_carries_only_keys() -> None:
    batch = WorkBatch(RUN, 0, (WorkItem(CONNECTION, "202611241205"),))
    document = json.loads(base64.b64decode(batch.encode()))
    assert document == {"v": 1, "run": RUN, "n": 0, "items": [[CONNECTION, "202611241205"]]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not_json"),
        (b"[]", "unknown_version"),
        (b'{"v": 2}', "unknown_version"),
        (b'{"v": 1, "run": "x", "n": 0, "items": []}', "bad_run_id"),
        (json.dumps({"v": 1, "run": RUN, "n": -1, "items": []}).encode(), "bad_index"),
        (json.dumps({"v": 1, "run": RUN, "n": True, "items": []}).encode(), "bad_index"),
        (json.dumps({"v": 1, "run": RUN, "n": 0, "items": {}}).encode(), "bad_items"),
        (
            json.dumps({"v": 1, "run": RUN, "n": 0, "items": [["../x", "202611241205"]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps({"v": 1, "run": RUN, "n": 0, "items": [[CONNECTION, "2026"]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps(
                {
                    "v": 1,
                    "run": RUN,
                    "n": 0,
                    "items": [[CONNECTION, "202611241205"]] * (MAX_ITEMS + 1),
                }
            ).encode(),
            "bad_items",
        ),
    ],
)
def test_a_malformed_batch_is_refused_with_a_stable_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedBatch) as caught:
        WorkBatch.decode(body)
    assert str(caught.value) == reason


def test_queue_text_that_is_not_base64_is_refused() -> None:
    with pytest.raises(MalformedBatch, match="not_base64"):
        WorkBatch.decode_text("%%%")
