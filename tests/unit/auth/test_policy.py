"""Who may use which connection: owners, app roles, and 404 rather than 403 for strangers."""

from __future__ import annotations

import pytest

from shared.auth.caller import Caller
from shared.auth.policy import (
    ROLE_READ_ALL,
    ROLE_READ_WRITE_ALL,
    authorize_connection,
    lists_all_connections,
    require_api_access,
)
from shared.errors import ConnectionNotFound, Forbidden

TENANT = "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b"
OTHER_TENANT = "0b0b0b0b-1111-4222-8333-444455556666"
ALICE = "11111111-aaaa-4aaa-8aaa-111111111111"
BOB = "44444444-dddd-4ddd-8ddd-444444444444"


def person(oid: str, tenant: str = TENANT) -> Caller:
    return Caller("user", tenant, oid, "caller-app", frozenset({"access_as_user"}), frozenset())


def app(*roles: str) -> Caller:
    return Caller("app", TENANT, "sp-oid", "caller-app", frozenset(), frozenset(roles))


@pytest.mark.parametrize("write", [False, True])
def test_the_owner_may_use_their_connection(write: bool) -> None:
    authorize_connection(person(ALICE), ALICE, TENANT, write=write)


@pytest.mark.parametrize("write", [False, True])
def test_bob_cannot_see_or_use_alices_connection(write: bool) -> None:
    with pytest.raises(ConnectionNotFound) as caught:
        authorize_connection(person(BOB), ALICE, TENANT, write=write)

    assert caught.value.http_status == 404  # as if it did not exist: no existence oracle


def test_the_same_oid_in_another_tenant_is_not_the_owner() -> None:
    with pytest.raises(ConnectionNotFound):
        authorize_connection(person(ALICE, OTHER_TENANT), ALICE, TENANT, write=False)


def test_a_persons_app_roles_do_not_open_other_connections() -> None:
    bob = Caller(
        "user", TENANT, BOB, "caller-app", frozenset({"access_as_user"}),
        frozenset({ROLE_READ_WRITE_ALL}),
    )  # fmt: skip

    with pytest.raises(ConnectionNotFound):
        authorize_connection(bob, ALICE, TENANT, write=False)


def test_an_app_with_read_all_may_read_any_connection() -> None:
    authorize_connection(app(ROLE_READ_ALL), ALICE, TENANT, write=False)


def test_an_app_with_only_read_all_cannot_write() -> None:
    with pytest.raises(Forbidden) as caught:
        authorize_connection(app(ROLE_READ_ALL), ALICE, TENANT, write=True)

    assert ROLE_READ_WRITE_ALL in caught.value.detail


@pytest.mark.parametrize("write", [False, True])
def test_an_app_with_read_write_all_may_read_and_write(write: bool) -> None:
    authorize_connection(app(ROLE_READ_WRITE_ALL), ALICE, TENANT, write=write)


def test_an_app_without_a_role_gets_not_found() -> None:
    with pytest.raises(ConnectionNotFound):
        authorize_connection(app("Other.Role"), ALICE, TENANT, write=False)


def test_an_app_cannot_reach_a_connection_of_another_tenant() -> None:
    with pytest.raises(ConnectionNotFound):
        authorize_connection(app(ROLE_READ_WRITE_ALL), ALICE, OTHER_TENANT, write=False)


def test_an_app_without_an_api_role_has_no_api_access() -> None:
    with pytest.raises(Forbidden):
        require_api_access(app("Other.Role"))


def test_a_read_only_app_has_no_write_access() -> None:
    require_api_access(app(ROLE_READ_ALL))
    with pytest.raises(Forbidden):
        require_api_access(app(ROLE_READ_ALL), write=True)


def test_a_person_always_has_api_access() -> None:
    require_api_access(person(ALICE), write=True)


@pytest.mark.parametrize("roles", [(ROLE_READ_ALL,), (ROLE_READ_WRITE_ALL,)])
def test_an_app_with_a_role_lists_every_connection(roles: tuple[str, ...]) -> None:
    assert lists_all_connections(app(*roles))


def test_a_person_lists_only_their_own_connections() -> None:
    assert not lists_all_connections(person(ALICE))
