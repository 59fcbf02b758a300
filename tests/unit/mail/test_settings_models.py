"""Automatic replies and mail tips requests: checked at the edge, turned into Graph's shapes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.mail.settings_models import AutomaticRepliesUpdate, MailTipsRequest


def window(start: str, end: str, zone: str = "UTC") -> dict[str, Any]:
    return {
        "scheduledStartDateTime": {"dateTime": start, "timeZone": zone},
        "scheduledEndDateTime": {"dateTime": end, "timeZone": zone},
    }


def test_only_the_fields_sent_reach_graph() -> None:
    update = AutomaticRepliesUpdate.model_validate({"status": "alwaysEnabled"})

    assert update.graph() == {"status": "alwaysEnabled"}


def test_a_scheduled_window_becomes_graphs_date_time_time_zone() -> None:
    update = AutomaticRepliesUpdate.model_validate(
        {"status": "scheduled", **window("2026-03-01T08:00:00", "2026-03-08T08:00:00")}
    )

    assert update.graph()["scheduledStartDateTime"] == {
        "dateTime": "2026-03-01T08:00:00",
        "timeZone": "UTC",
    }


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be after"):
        AutomaticRepliesUpdate.model_validate(window("2026-03-08T08:00:00", "2026-03-01T08:00:00"))


def test_windows_in_different_zones_are_left_to_graph() -> None:
    body = {
        "scheduledStartDateTime": {"dateTime": "2026-03-01T08:00:00", "timeZone": "UTC"},
        "scheduledEndDateTime": {"dateTime": "2026-03-01T07:00:00", "timeZone": "Pacific/Auckland"},
    }

    assert AutomaticRepliesUpdate.model_validate(body).scheduledEndDateTime is not None


def test_an_offset_in_date_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="offset"):
        AutomaticRepliesUpdate.model_validate(
            {"scheduledStartDateTime": {"dateTime": "2026-03-01T08:00:00+01:00"}}
        )


def test_an_empty_update_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one field"):
        AutomaticRepliesUpdate.model_validate({})


def test_unknown_fields_and_statuses_are_refused() -> None:
    with pytest.raises(ValidationError):
        AutomaticRepliesUpdate.model_validate({"mood": "away"})
    with pytest.raises(ValidationError):
        AutomaticRepliesUpdate.model_validate({"status": "sometimes"})


def test_mail_tips_options_become_graphs_flags_value_once_each() -> None:
    request = MailTipsRequest.model_validate(
        {
            "emailAddresses": ["a@contoso.test"],
            "mailTipsOptions": ["recipientScope", "automaticReplies", "recipientScope"],
        }
    )

    assert request.graph()["MailTipsOptions"] == "recipientScope, automaticReplies"


def test_mail_tips_take_at_most_100_addresses() -> None:
    with pytest.raises(ValidationError):
        MailTipsRequest.model_validate(
            {"emailAddresses": [f"u{i}@contoso.test" for i in range(101)]}
        )
