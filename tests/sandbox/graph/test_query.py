"""$filter and $search over HTTP: every accepted form gives what Graph's semantics give on the
seed; rejected forms fail with Graph's codes, never silently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.sandbox.graph.support import ALICE, Graph, error_code, mailbox
from tests.support.sandbox import SandboxServer

Message = dict[str, Any]


def _addr(recipient: dict[str, Any] | None) -> str:
    return str(((recipient or {}).get("emailAddress") or {}).get("address") or "").lower()


ACCEPTED: list[tuple[str, Callable[[Message], bool]]] = [
    ("isRead eq false", lambda m: not m["isRead"]),
    ("isRead ne true", lambda m: not m["isRead"]),
    ("isRead", lambda m: m["isRead"]),
    ("not isRead", lambda m: not m["isRead"]),
    ("hasAttachments eq true", lambda m: m["hasAttachments"]),
    ("importance eq 'high'", lambda m: m["importance"] == "high"),
    ("importance ne 'normal'", lambda m: m["importance"] != "normal"),
    ("flag/flagStatus eq 'flagged'", lambda m: m["flag"]["flagStatus"] == "flagged"),
    ("receivedDateTime ge 2026-01-01T00:00:00Z", lambda m: m["receivedDateTime"] >= "2026-01-01"),
    ("receivedDateTime lt 2026-01-01T00:00:00Z", lambda m: m["receivedDateTime"] < "2026-01-01"),
    (
        "receivedDateTime gt 2026-01-10T00:00:00Z and receivedDateTime le 2026-01-20T23:59:59Z",
        lambda m: "2026-01-10T00:00:00Z" < m["receivedDateTime"] <= "2026-01-20T23:59:59Z",
    ),
    ("receivedDateTime ge 2026-01-15", lambda m: m["receivedDateTime"] >= "2026-01-15"),
    ("contains(subject,'report')", lambda m: "report" in m["subject"].lower()),
    ("startswith(subject,'Budget')", lambda m: m["subject"].startswith("Budget")),
    (
        "from/emailAddress/address eq 'carol@fabrikam.test'",
        lambda m: _addr(m["from"]) == "carol@fabrikam.test",
    ),
    (
        "contains(from/emailAddress/address,'fabrikam')",
        lambda m: "fabrikam" in _addr(m["from"]),
    ),
    (
        "startswith(from/emailAddress/address,'dave')",
        lambda m: _addr(m["from"]).startswith("dave"),
    ),
    (
        "toRecipients/any(r:r/emailAddress/address eq 'alice@contoso.test')",
        lambda m: any(_addr(r) == "alice@contoso.test" for r in m["toRecipients"]),
    ),
    (
        "ccRecipients/any(r: r/emailAddress/address eq 'bob@contoso.test')",
        lambda m: any(_addr(r) == "bob@contoso.test" for r in m["ccRecipients"]),
    ),
    (
        "categories/any(c:c eq 'Blue category')",
        lambda m: "Blue category" in m["categories"],
    ),
    (
        "(isRead eq false or importance eq 'high') and not (hasAttachments eq true)",
        lambda m: (not m["isRead"] or m["importance"] == "high") and not m["hasAttachments"],
    ),
    ("subject eq 'Lunch on Friday? #02'", lambda m: m["subject"] == "Lunch on Friday? #02"),
    ("subject eq 'it''s'", lambda m: m["subject"] == "it's"),
    ("'high' eq importance", lambda m: m["importance"] == "high"),
]


@pytest.mark.parametrize(("expression", "predicate"), ACCEPTED, ids=[a for a, _ in ACCEPTED])
def test_accepted_filter_forms(
    sandbox: SandboxServer, alice: Graph, expression: str, predicate: Callable[[Message], bool]
) -> None:
    state = mailbox(sandbox, ALICE)
    inbox = next(f["id"] for f in state["folders"] if f["wellKnownName"] == "inbox")
    expected = {m["id"] for m in state["messages"] if m["parentFolderId"] == inbox and predicate(m)}

    response = alice.get(
        "/me/mailFolders/inbox/messages", params={"$filter": expression, "$top": 100}
    )

    assert response.status_code == 200, response.text
    assert {m["id"] for m in response.json()["value"]} == expected


def test_seed_gives_the_filters_something_to_find(alice: Graph) -> None:
    counts = {
        expression: len(
            alice.get(
                "/me/mailFolders/inbox/messages", params={"$filter": expression, "$top": 100}
            ).json()["value"]
        )
        for expression in (
            "isRead eq false",
            "importance eq 'high'",
            "flag/flagStatus eq 'flagged'",
            "hasAttachments eq true",
        )
    }

    assert counts == {
        "isRead eq false": 10,
        "importance eq 'high'": 5,
        "flag/flagStatus eq 'flagged'": 5,
        "hasAttachments eq true": 7,
    }


REJECTED = [
    ("shoeSize eq 1", "RequestBroker--ParseUri"),
    ("isRead eq 'yes'", "BadRequest"),
    ("receivedDateTime ge '2026-01-01'", "BadRequest"),
    ("importance eq 'urgent'", "BadRequest"),
    ("endswith(subject,'x')", "ErrorInvalidUrlQueryFilter"),
    ("frobnicate(subject,'x')", "BadRequest"),
    ("subject eq", "BadRequest"),
    ("(isRead eq true", "BadRequest"),
    ("body/content eq 'x'", "ErrorInvalidUrlQueryFilter"),
    ("toRecipients/all(r:r/emailAddress/address eq 'x')", "ErrorInvalidUrlQueryFilter"),
    ("contains(isRead,'x')", "ErrorInvalidUrlQueryFilter"),
    ("isRead gt true", "ErrorInvalidUrlQueryFilter"),
    ("subject", "BadRequest"),
    ("", "BadRequest"),
]


@pytest.mark.parametrize(("expression", "code"), REJECTED, ids=[r for r, _ in REJECTED])
def test_rejected_filter_forms(alice: Graph, expression: str, code: str) -> None:
    response = alice.get("/me/messages", params={"$filter": expression})

    assert response.status_code == 400
    assert error_code(response) == code


def test_filter_and_orderby_on_the_same_leading_property_is_fine(alice: Graph) -> None:
    response = alice.get(
        "/me/messages",
        params={
            "$filter": "receivedDateTime ge 2026-01-01T00:00:00Z and isRead eq false",
            "$orderby": "receivedDateTime desc",
        },
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("expression", "orderby"),
    [
        ("isRead eq false", "receivedDateTime desc"),
        ("isRead eq false and receivedDateTime ge 2026-01-01T00:00:00Z", "receivedDateTime"),
        ("receivedDateTime ge 2026-01-01T00:00:00Z", "subject"),
    ],
)
def test_orderby_not_leading_the_filter_is_an_inefficient_filter(
    alice: Graph, expression: str, orderby: str
) -> None:
    response = alice.get("/me/messages", params={"$filter": expression, "$orderby": orderby})

    assert response.status_code == 400
    assert error_code(response) == "InefficientFilter"
    assert response.json()["error"]["message"] == (
        "The restriction or sort order is too complex for this operation."
    )


def test_search_free_text_covers_subject_body_and_from(alice: Graph) -> None:
    subjects = [
        m["subject"]
        for m in alice.get("/me/messages", params={"$search": '"phoenix"', "$top": 50}).json()[
            "value"
        ]
    ]

    assert "Phoenix milestone 1" in subjects
    assert "Project Phoenix kickoff #03" in subjects
    assert all("phoenix" in s.lower() for s in subjects)


def test_search_by_from_and_subject(alice: Graph) -> None:
    by_from = alice.get(
        "/me/messages", params={"$search": '"from:dave@northwind.test"', "$top": 50}
    ).json()["value"]
    by_subject = alice.get(
        "/me/messages", params={"$search": '"subject:\\"budget review\\""', "$top": 50}
    ).json()["value"]

    assert by_from and all(_addr(m["from"]) == "dave@northwind.test" for m in by_from)
    assert by_subject and all("budget review" in m["subject"].lower() for m in by_subject)


def test_search_results_come_newest_sent_first(alice: Graph) -> None:
    values = alice.get("/me/messages", params={"$search": '"alice"', "$top": 50}).json()["value"]

    sent = [m["sentDateTime"] for m in values]
    assert len(sent) > 10
    assert sent == sorted(sent, reverse=True)


def test_search_pages_with_a_skiptoken(alice: Graph) -> None:
    body = alice.get("/me/messages", params={"$search": '"alice"', "$top": 5}).json()

    assert "$skiptoken=" in body["@odata.nextLink"]
    second = alice.get(body["@odata.nextLink"]).json()
    assert not {m["id"] for m in body["value"]} & {m["id"] for m in second["value"]}


def test_search_value_must_be_quoted(alice: Graph) -> None:
    response = alice.get("/me/messages", params={"$search": "phoenix"})

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


@pytest.mark.parametrize(
    "other",
    [
        {"$filter": "isRead eq false"},
        {"$orderby": "receivedDateTime desc"},
        {"$skip": "10"},
    ],
)
def test_search_does_not_combine_with_filter_orderby_or_skip(
    alice: Graph, other: dict[str, str]
) -> None:
    response = alice.get("/me/messages", params={"$search": '"phoenix"', **other})

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidUrlQuery"


def test_search_with_count(alice: Graph) -> None:
    body = alice.get(
        "/me/messages", params={"$search": '"phoenix"', "$count": "true", "$top": 1}
    ).json()

    assert body["@odata.count"] == 5


@pytest.mark.parametrize(
    ("kql", "predicate"),
    [
        ('"hasAttachments:true"', lambda m: m["hasAttachments"]),
        ('"importance:high"', lambda m: m["importance"] == "high"),
        ('"attachment:dataset.bin"', lambda m: m["subject"] == "Lunch on Friday? #02"),
        ('"received:01/30/2026"', lambda m: m["receivedDateTime"].startswith("2026-01-30")),
        (
            '"to:alice@contoso.test"',
            lambda m: any(_addr(r) == "alice@contoso.test" for r in m["toRecipients"]),
        ),
    ],
)
def test_kql_properties(
    sandbox: SandboxServer, alice: Graph, kql: str, predicate: Callable[[Message], bool]
) -> None:
    state = mailbox(sandbox, ALICE)
    expected = {m["id"] for m in state["messages"] if predicate(m)}

    response = alice.get("/me/messages", params={"$search": kql, "$top": 100})

    assert response.status_code == 200
    assert expected
    assert {m["id"] for m in response.json()["value"]} == expected


def test_bodies_are_html_unless_text_is_preferred(alice: Graph) -> None:
    params = {"$filter": "subject eq 'Invoice 1001 overdue #01'", "$select": "body"}
    html = alice.get("/me/messages", params=params).json()["value"][0]["body"]
    text = alice.get(
        "/me/messages", params=params, headers={"Prefer": 'outlook.body-content-type="text"'}
    )

    assert html["contentType"] == "html"
    assert "<html>" in html["content"]
    assert text.json()["value"][0]["body"] == {
        "contentType": "text",
        "content": "Hello Alice, this is about invoice 1001 overdue (item 1).",
    }
    assert 'outlook.body-content-type="text"' in text.headers["preference-applied"]


def test_flag_filter_with_any_orderby_is_refused_as_exchange_does(alice: Graph) -> None:
    response = alice.get(
        "/me/messages",
        params={
            "$filter": "receivedDateTime ge 2026-01-01T00:00:00Z and flag/flagStatus eq 'flagged'",
            "$orderby": "receivedDateTime desc",
        },
    )

    assert response.status_code == 400
    assert error_code(response) == "InefficientFilter"
