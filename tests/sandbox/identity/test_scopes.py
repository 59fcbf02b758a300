"""Reading `scope` the way Entra's v2 endpoint does (pure, in process)."""

from __future__ import annotations

import pytest

from sandbox.directory import APP_ID_URI, CLIENT_ID, default_directory
from sandbox.identity.scopes import GRAPH_PERMISSIONS, InvalidScope, expand_default, parse_scope

DIRECTORY = default_directory()


def test_bare_permissions_mean_graph() -> None:
    request = parse_scope("openid offline_access mail.readwrite User.Read", DIRECTORY)

    assert request.oidc == {"openid", "offline_access"}
    assert request.permissions == {"graph": ["Mail.ReadWrite", "User.Read"]}


@pytest.mark.parametrize(
    "scope",
    [
        "https://graph.microsoft.com/Mail.Send",
        "00000003-0000-0000-c000-000000000000/Mail.Send",
    ],
)
def test_graph_permissions_may_be_prefixed_with_uri_or_app_id(scope: str) -> None:
    assert parse_scope(scope, DIRECTORY).permissions == {"graph": ["Mail.Send"]}


@pytest.mark.parametrize("prefix", [APP_ID_URI, CLIENT_ID])
def test_api_scopes_are_prefixed_with_its_app_id_uri_or_client_id(prefix: str) -> None:
    assert parse_scope(f"{prefix}/access_as_user", DIRECTORY).permissions == {
        "api": ["access_as_user"]
    }


def test_first_named_resource_comes_first() -> None:
    request = parse_scope(f"{APP_ID_URI}/access_as_user Mail.Read", DIRECTORY)

    assert request.first_resource == "api"


@pytest.mark.parametrize(
    ("scope", "unknown_resource"),
    [
        ("Mail.Everything", False),
        (f"{APP_ID_URI}/admin", False),
        ("api://other/read", True),
        ("urn:other", True),
        ("https://graph.microsoft.com.evil/Mail.Read", True),
    ],
)
def test_unknown_scopes_are_refused(scope: str, unknown_resource: bool) -> None:
    with pytest.raises(InvalidScope) as refused:
        parse_scope(scope, DIRECTORY)

    assert refused.value.unknown_resource is unknown_resource


def test_default_expands_to_every_configured_permission() -> None:
    assert expand_default("graph", [".default"], DIRECTORY) == list(GRAPH_PERMISSIONS)
    assert expand_default("api", [".default"], DIRECTORY) == ["access_as_user"]


def test_permissions_get_their_canonical_spelling_whatever_the_prefix_case() -> None:
    request = parse_scope(
        f"HTTPS://GRAPH.MICROSOFT.COM/mail.send {APP_ID_URI.upper()}/ACCESS_AS_USER "
        "user.read OpenID",
        DIRECTORY,
    )

    assert request.oidc == {"openid"}
    assert request.permissions == {"graph": ["Mail.Send", "User.Read"], "api": ["access_as_user"]}
