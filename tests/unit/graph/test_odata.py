"""OData options from typed filters: escaped values, allow-listed select, Graph's ordering
rule, and search never mixed with filters. Every combination is checked against the
sandbox's own OData parser (Outlook's rules, in process)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sandbox.graph.errors import GraphError as SandboxGraphError
from sandbox.graph.odata import parse_query
from sandbox.graph.schema import entity_properties
from shared.errors import ValidationFailed
from shared.graph.odata import (
    SELECTABLE_MESSAGE_FIELDS,
    ListQuery,
    MessageFilters,
    kql_search,
    odata_datetime,
    odata_string,
)

AFTER = datetime(2026, 1, 1, tzinfo=UTC)
BEFORE = datetime(2026, 2, 1, 12, 30, tzinfo=UTC)


def test_single_quotes_are_doubled() -> None:
    assert odata_string("O'Brien") == "'O''Brien'"
    assert odata_string("'") == "''''"


def test_an_injection_attempt_stays_inside_the_literal() -> None:
    value = "x' or isRead eq true or subject eq '"
    params = ListQuery(filters=MessageFilters(subject_contains=value)).params()

    assert params["$filter"] == "contains(subject,'x'' or isRead eq true or subject eq ''')"


def test_datetimes_are_unquoted_utc_with_z() -> None:
    cet = timezone(timedelta(hours=1))

    assert odata_datetime(datetime(2026, 2, 1, 9, 0, tzinfo=cet)) == "2026-02-01T08:00:00Z"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationFailed):
        MessageFilters(received_after=datetime(2026, 1, 1)).clauses()


@pytest.mark.parametrize("value", ["a\x00b", "a\nb", "x" * 257])
def test_filter_values_with_control_characters_or_too_long_are_refused(value: str) -> None:
    with pytest.raises(ValidationFailed):
        ListQuery(filters=MessageFilters(from_address=value)).params()


def test_each_filter_has_the_form_graph_accepts() -> None:
    cases = {
        MessageFilters(unread=True): "isRead eq false",
        MessageFilters(unread=False): "isRead eq true",
        MessageFilters(flagged=True): "flag/flagStatus eq 'flagged'",
        MessageFilters(flagged=False): "flag/flagStatus ne 'flagged'",
        MessageFilters(from_address="bob@contoso.test"): (
            "from/emailAddress/address eq 'bob@contoso.test'"
        ),
        MessageFilters(to_address="bob@contoso.test"): (
            "toRecipients/any(r:r/emailAddress/address eq 'bob@contoso.test')"
        ),
        MessageFilters(subject_contains="Q3"): "contains(subject,'Q3')",
        MessageFilters(has_attachments=True): "hasAttachments eq true",
        MessageFilters(importance="high"): "importance eq 'high'",
        MessageFilters(received_after=AFTER): "receivedDateTime gt 2026-01-01T00:00:00Z",
        MessageFilters(received_before=BEFORE): "receivedDateTime lt 2026-02-01T12:30:00Z",
    }
    for filters, expected in cases.items():
        assert ListQuery(filters=filters).params()["$filter"] == expected


def test_date_bounds_lead_the_filter() -> None:
    filters = MessageFilters(unread=True, received_before=BEFORE, received_after=AFTER)

    assert ListQuery(filters=filters).params()["$filter"] == (
        "receivedDateTime gt 2026-01-01T00:00:00Z and receivedDateTime lt 2026-02-01T12:30:00Z"
        " and isRead eq false"
    )


def test_order_with_a_filter_gets_a_leading_received_date_clause() -> None:
    params = ListQuery(
        filters=MessageFilters(unread=True), order_by="receivedDateTime asc"
    ).params()

    assert params["$filter"] == "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false"
    assert params["$orderby"] == "receivedDateTime asc"


def test_flagged_with_desc_order_drops_orderby_as_graphs_default_is_the_same() -> None:
    params = ListQuery(
        filters=MessageFilters(flagged=True), order_by="receivedDateTime desc"
    ).params()

    assert "$orderby" not in params
    assert params["$filter"] == "flag/flagStatus eq 'flagged'"


def test_flagged_with_asc_order_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        ListQuery(filters=MessageFilters(flagged=True), order_by="receivedDateTime asc").params()


def test_search_is_quoted_and_inner_quotes_escaped() -> None:
    params = ListQuery(search='subject:"quarterly report" from:bob').params()

    assert params == {"$top": "25", "$search": '"subject:\\"quarterly report\\" from:bob"'}
    assert kql_search("a") == '"a"'


@pytest.mark.parametrize(
    "query",
    [
        ListQuery(search="x", filters=MessageFilters(unread=True)),
        ListQuery(search="x", order_by="receivedDateTime desc"),
    ],
)
def test_search_with_filters_or_order_is_refused(query: ListQuery) -> None:
    with pytest.raises(ValidationFailed) as caught:
        query.params()

    assert caught.value.errors[0].loc == ("query", "search")


@pytest.mark.parametrize("value", ["", "   ", "a\\b", "a\x00", "x" * 1025])
def test_bad_search_values_are_refused(value: str) -> None:
    with pytest.raises(ValidationFailed):
        ListQuery(search=value).params()


@pytest.mark.parametrize("top", [0, -1, 1001])
def test_top_is_between_1_and_1000(top: int) -> None:
    with pytest.raises(ValidationFailed):
        ListQuery(top=top).params()


def test_select_is_allow_listed_and_always_includes_id() -> None:
    assert ListQuery(select=["subject", "from", "subject"]).params()["$select"] == (
        "id,subject,from"
    )
    with pytest.raises(ValidationFailed):
        ListQuery(select=["subject", "internetMessageHeaders"]).params()
    with pytest.raises(ValidationFailed):
        ListQuery(select=["subject,body/content"]).params()
    with pytest.raises(ValidationFailed):
        ListQuery(select=[]).params()


def test_every_selectable_field_is_a_graph_message_property() -> None:
    assert entity_properties("message").keys() >= SELECTABLE_MESSAGE_FIELDS


FILTER_VALUES: dict[str, list[Any]] = {
    "unread": [True, False],
    "flagged": [True],
    "from_address": ["o'brien@fabrikam.test"],
    "to_address": ["bob@contoso.test"],
    "subject_contains": ["it's"],
    "has_attachments": [True],
    "importance": ["high"],
    "received_after": [AFTER],
    "received_before": [BEFORE],
}


def _combinations() -> list[MessageFilters]:
    names = list(FILTER_VALUES)
    out = []
    for size in (0, 1, 2, 3, len(names)):
        for chosen in itertools.combinations(names, size):
            out.append(MessageFilters(**{n: FILTER_VALUES[n][0] for n in chosen}))
    return out


@pytest.mark.parametrize("order_by", [None, "receivedDateTime desc", "receivedDateTime asc"])
def test_every_filter_combination_is_accepted_by_outlooks_rules(order_by: Any) -> None:
    accepted = 0
    for filters in _combinations():
        query = ListQuery(top=50, filters=filters, order_by=order_by, select=["subject"])
        try:
            params = query.params()
        except ValidationFailed:
            assert filters.flagged and order_by == "receivedDateTime asc"
            continue
        try:
            parse_query(list(params.items()))
        except SandboxGraphError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{params} refused: {exc}")
        accepted += 1
    assert accepted > 90
