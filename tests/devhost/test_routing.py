"""Route templates: parsing, matching, constraints and ASP.NET precedence."""

from __future__ import annotations

import pytest

from devhost.routing import (
    Literal,
    Parameter,
    RouteTable,
    RouteTemplate,
    RouteTemplateError,
    split_path,
)


def match(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate.parse(template).match(split_path(path))


def best(templates: list[str], path: str) -> str | None:
    table: RouteTable[str] = RouteTable()
    for template in templates:
        table.add(RouteTemplate.parse(template), template)
    found = table.matches(split_path(path))
    return found[0].target if found else None


def test_template_is_parsed_into_literals_and_parameters() -> None:
    template = RouteTemplate.parse("items/{id:int}/{rest?}")

    assert template.segments == (
        Literal("items"),
        Parameter("id", constraints=("int",)),
        Parameter("rest", optional=True),
    )


def test_literal_segments_match_case_insensitively() -> None:
    assert match("Items/New", "/items/NEW") == {}


def test_parameter_value_is_url_decoded_once() -> None:
    assert match("items/{id}", "items/a%20b%2525") == {"id": "a b%25"}


def test_path_with_extra_segment_does_not_match() -> None:
    assert match("items/{id}", "items/1/2") is None


def test_trailing_slash_is_ignored() -> None:
    assert match("items/{id}", "items/7/") == {"id": "7"}


def test_optional_parameter_may_be_absent() -> None:
    assert match("greet/{name?}", "greet") == {}
    assert match("greet/{name?}", "greet/bob") == {"name": "bob"}


def test_default_value_fills_an_absent_parameter() -> None:
    assert match("page/{n=1}", "page") == {"n": "1"}


def test_catch_all_takes_the_rest_of_the_path_including_slashes() -> None:
    assert match("files/{*path}", "files/a/b%20c/d") == {"path": "a/b c/d"}


def test_catch_all_may_be_empty() -> None:
    assert match("files/{*path}", "files") == {}


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        ("int", "-42", "4x"),
        ("alpha", "abc", "ab1"),
        ("guid", "8c6f2c5e-4d3b-4a51-9a8e-2f0f6b1d2c3a", "not-a-guid"),
        ("bool", "TRUE", "yes"),
    ],
)
def test_enforced_constraints_accept_and_refuse(constraint: str, good: str, bad: str) -> None:
    template = f"x/{{v:{constraint}}}"

    assert match(template, f"x/{good}") == {"v": good}
    assert match(template, f"x/{bad}") is None


def test_unknown_constraints_are_parsed_and_ignored() -> None:
    assert match("x/{v:minlength(3)}", "x/a") == {"v": "a"}


def test_literal_route_wins_over_parameter_route() -> None:
    assert best(["items/{id}", "items/new"], "items/new") == "items/new"


def test_constrained_parameter_wins_over_plain_parameter() -> None:
    assert best(["items/{id}", "items/{id:int}"], "items/5") == "items/{id:int}"


def test_parameter_wins_over_catch_all() -> None:
    assert best(["items/{*rest}", "items/{id}"], "items/5") == "items/{id}"


def test_catch_all_still_matches_what_nothing_else_does() -> None:
    assert best(["items/{*rest}", "items/{id}"], "items/5/6") == "items/{*rest}"


def test_empty_template_matches_the_root() -> None:
    assert match("", "/") == {}


@pytest.mark.parametrize(
    "template",
    ["a/{*rest}/b", "{x?}/b", "a/{x}.{y}", "a/{x}/{x}", "a//b", "a/{*rest?}", "a/{1x}"],
)
def test_unsupported_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate.parse(template)
