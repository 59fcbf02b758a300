"""The Outlook connector's trigger filters, applied to the notified message."""

from __future__ import annotations

from typing import Any

import pytest

from shared.notifications.filters import Filters, matches


def _message(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "subject": "Invoice 42 attached",
        "from": {"emailAddress": {"address": "Boss@Example.test"}},
        "toRecipients": [{"emailAddress": {"address": "alice@contoso.test"}}],
        "ccRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
        "importance": "high",
        "hasAttachments": True,
    }
    message.update(overrides)
    return message


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"from": "boss@example.test"}, True),
        ({"from": "x@example.test; boss@example.test"}, True),
        ({"from": "someone@example.test"}, False),
        ({"to": "alice@contoso.test"}, True),
        ({"to": "bob@contoso.test"}, False),
        ({"cc": "BOB@contoso.test"}, True),
        ({"importance": "high"}, True),
        ({"importance": "low"}, False),
        ({"hasAttachments": True}, True),
        ({"hasAttachments": False}, False),
        ({"subjectContains": "invoice"}, True),
        ({"subjectContains": "receipt"}, False),
        ({"from": "boss@example.test", "hasAttachments": True, "importance": "high"}, True),
    ],
)
def test_filters(filters: dict[str, Any], expected: bool) -> None:
    assert matches(Filters.model_validate(filters), _message()) is expected


def test_missing_fields_do_not_match_a_filter_on_them() -> None:
    assert not matches(Filters.model_validate({"from": "boss@example.test"}), {"subject": "x"})
    assert matches(Filters(), {})


def test_unknown_filters_are_refused() -> None:
    with pytest.raises(ValueError):
        Filters.model_validate({"bodyContains": "x"})
