"""The OData parser on its own (no server): grammar corners that HTTP tests need not repeat."""

from __future__ import annotations

import pytest

from sandbox.graph.errors import GraphError
from sandbox.graph.odata import (
    MESSAGE_FILTER_PATHS,
    FilterParser,
    check_efficient,
    evaluate,
    parse_query,
    parse_search,
)


def _parse(text: str) -> FilterParser:
    parser = FilterParser(text, MESSAGE_FILTER_PATHS)
    parser.node = parser.parse()  # type: ignore[attr-defined]
    return parser


def test_doubled_quotes_are_one_quote() -> None:
    parser = _parse("subject eq 'O''Brien'")

    assert evaluate(parser.node, {"subject": "O'Brien"})  # type: ignore[attr-defined]


def test_and_binds_tighter_than_or() -> None:
    parser = _parse("isRead eq true or isRead eq false and isDraft eq true")
    node = parser.node  # type: ignore[attr-defined]

    assert evaluate(node, {"isRead": True, "isDraft": False})
    assert not evaluate(node, {"isRead": False, "isDraft": False})


def test_properties_are_noted_in_order_of_appearance() -> None:
    parser = _parse("receivedDateTime ge 2026-01-01T00:00:00Z and isRead eq false")

    assert parser.properties_in_order == ["receivedDateTime", "isRead"]


def test_efficient_filter_rule() -> None:
    check_efficient(["receivedDateTime", "isRead"], [("receivedDateTime", True)])
    with pytest.raises(GraphError) as failure:
        check_efficient(["isRead", "receivedDateTime"], [("receivedDateTime", True)])
    assert failure.value.code == "InefficientFilter"


def test_string_comparisons_ignore_case_as_exchange_does() -> None:
    parser = _parse("from/emailAddress/address eq 'CAROL@fabrikam.test'")

    item = {"from": {"emailAddress": {"address": "carol@fabrikam.test"}}}
    assert evaluate(parser.node, item)  # type: ignore[attr-defined]


def test_datetime_literals_with_offsets_are_normalised() -> None:
    parser = _parse("receivedDateTime ge 2026-01-01T02:00:00+02:00")

    assert evaluate(parser.node, {"receivedDateTime": "2026-01-01T00:00:00Z"})  # type: ignore[attr-defined]


def test_dollarless_options_are_accepted_as_graph_v1_does() -> None:
    query = parse_query([("top", "5"), ("select", "subject")])

    assert query.top == 5
    assert query.select == ["subject"]


def test_unknown_plain_parameters_are_ignored_but_unknown_dollar_ones_fail() -> None:
    parse_query([("foo", "bar")])
    with pytest.raises(GraphError):
        parse_query([("$foo", "bar")])


def test_search_or_and_not() -> None:
    search = parse_search('"apple OR banana NOT cherry"')

    assert search.matches({"subject": "apple pie", "body": {"content": ""}})
    assert not search.matches({"subject": "banana cherry", "body": {"content": ""}})


def test_select_is_case_insensitive_and_canonicalised() -> None:
    assert parse_query([("$select", "SUBJECT,isread")]).select == ["subject", "isRead"]
