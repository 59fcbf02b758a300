"""The queue message: round trip, and every malformed shape refused with a reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from shared.lifecycle.messages import MAX_ITEMS, MalformedBatch, WorkBatch, WorkItem

RUN = "0123456789abcdef0123456789abcdef"
CONNECTION = "AbCdEfGhIjKlMnOpQrStUvWx"
AT = datetime(2026, 11, 24, 12, 5, 7, 123000, tzinfo=UTC)
AT_MS = 1795521907123  # AT in milliseconds since the epoch


def test_a_batch_round_trips_through_base64_json() -> None:
    batch = WorkBatch(RUN, 3, (WorkItem(CONNECTION, AT, 2),))
    assert WorkBatch.decode(base64.b64decode(batch.encode())) == batch
    assert WorkBatch.decode_text(batch.encode()) == batch


def test_a_batch_carries_only_keys() -> None:
    batch = WorkBatch(RUN, 0, (WorkItem(CONNECTION, AT),))
    document = json.loads(base64.b64decode(batch.encode()))
    assert document == {"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, AT_MS, 0]]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not_json"),
        (b"[]", "unknown_version"),
        (b'{"v": 1}', "unknown_version"),
        (b'{"v": 2, "run": "x", "n": 0, "items": []}', "bad_run_id"),
        (json.dumps({"v": 2, "run": RUN, "n": -1, "items": []}).encode(), "bad_index"),
        (json.dumps({"v": 2, "run": RUN, "n": True, "items": []}).encode(), "bad_index"),
        (json.dumps({"v": 2, "run": RUN, "n": 0, "items": {}}).encode(), "bad_items"),
        (
            json.dumps({"v": 2, "run": RUN, "n": 0, "items": [["../x", AT_MS, 0]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps({"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, "2026", 0]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps({"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, -1, 0]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps({"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, 10**20, 0]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps({"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, AT_MS, True]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps({"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, AT_MS]]}).encode(),
            "bad_item",
        ),
        (
            json.dumps(
                {"v": 2, "run": RUN, "n": 0, "items": [[CONNECTION, AT_MS, 0]] * (MAX_ITEMS + 1)}
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
