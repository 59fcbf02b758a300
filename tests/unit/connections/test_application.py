"""Application (app-only) connections: who may create and use them, how the handle addresses
their mailbox, and what a Graph 403 means for them (a lost permission or a mailbox outside
the app's Exchange management scope)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.audit import MemoryAuditSink
from shared.auth.caller import Caller
from shared.auth.policy import (
    authorize_application_connection,
    is_connections_admin,
    may_use_application_connection,
)
from shared.connections.app_scope import needed_roles, token_roles
from shared.connections.application import ApplicationConnections, allowed_entries
from shared.connections.mailbox import Mailboxes
from shared.connections.models import Connection, ConnectionKind, ConnectionStatus
from shared.errors import (
    ConnectionNotFound,
    Forbidden,
    MailboxOutOfScope,
    ReauthRequired,
    ValidationFailed,
)
from shared.graph import GraphRequest
from shared.graph.client import GraphClient
from tests.unit.connections.test_service import MemoryConnections
from tests.unit.graph.support import BASE, VirtualTime
from tests.unit.mail.support import answer

TENANT = "tid"
ADMIN_APP = Caller(
    "app", TENANT, "admin-sp", "admin-app", frozenset(), frozenset({"Connections.Admin"})
)
ALICE = Caller(
    "user",
    TENANT,
    "alice-oid",
    "flow-client",
    frozenset({"access_as_user"}),
    frozenset(),
    upn="Alice@Contoso.test",
)
BOB = Caller(
    "user",
    TENANT,
    "bob-oid",
    "flow-client",
    frozenset({"access_as_user"}),
    frozenset(),
    upn="bob@contoso.test",
)
ADMIN_GROUP = "0b5a1f7e-8d2c-4c4e-9a1b-2f3e4d5c6b7a"
CONNECTION_ID = "appconn-000000000000000000"


def app_connection(allowed: tuple[str, ...] = ("alice@contoso.test",)) -> Connection:
    return Connection(
        id=CONNECTION_ID,
        owner_oid="admin-sp",
        owner_tid=TENANT,
        mailbox="support@contoso.test",
        scopes=["Mail.ReadWrite", "Mail.Send"],  # granted in Entra when it was created
        status=ConnectionStatus.ACTIVE,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        kind=ConnectionKind.APPLICATION,
        allowed=allowed,
    )


def jwt_with(roles: list[str]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"roles": roles}).encode()).decode().rstrip("=")
    return f"e30.{payload}.sig"


class AppTokenSequence:
    """The app's client-credentials tokens: each forced fetch yields the next roles."""

    def __init__(self, *roles: list[str]) -> None:
        self.roles = list(roles)
        self.fetches = 0

    async def access_token(
        self, connection: Connection, correlation_id: str, *, force_refresh: bool = False
    ) -> str:
        index = min(self.fetches, len(self.roles) - 1)
        self.fetches += 1
        return jwt_with(self.roles[index])

    async def refresh_for_claims(
        self, connection: Connection, claims: str, correlation_id: str
    ) -> str:
        return await self.access_token(connection, correlation_id, force_refresh=True)

    def forget(self, connection_id: str) -> None:
        pass


class Lookup:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def get(self, caller: Caller, connection_id: str, *, write: bool = False) -> Connection:
        authorize_application_connection(
            caller,
            self.connection.owner_oid,
            self.connection.owner_tid,
            self.connection.allowed,
            write=write,
        )
        return self.connection


def mailboxes(
    handler: Callable[[httpx.Request], httpx.Response],
    tokens: AppTokenSequence,
    seen: list[str],
    connection: Connection | None = None,
) -> Mailboxes:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.raw_path.decode().removeprefix('/v1.0')}")
        return handler(request)

    time = VirtualTime()
    client = GraphClient(
        BASE, transport=httpx.MockTransport(record), sleep=time.sleep, clock=time.clock
    )
    never = AppTokenSequence([])  # delegated tokens: must not be used here
    return Mailboxes(
        Lookup(connection or app_connection()),
        never,
        client,
        app_tokens=tokens,
        app_client_id="client-guid",
    )


def access_denied() -> httpx.Response:
    return answer(403, {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}})


# --- who may do what ---------------------------------------------------------------------


def test_the_admin_role_or_the_admin_group_makes_an_admin() -> None:
    member = Caller(
        "user", TENANT, "carol", "c", frozenset(), frozenset(), groups=frozenset({ADMIN_GROUP})
    )

    assert is_connections_admin(ADMIN_APP, None)
    assert is_connections_admin(member, ADMIN_GROUP.upper())
    assert not is_connections_admin(member, None)
    assert not is_connections_admin(ALICE, ADMIN_GROUP)


def test_the_creator_and_the_allow_list_may_use_it_by_upn_object_id_or_app_id() -> None:
    conn = app_connection(("alice@contoso.test", "bob-oid", "other-app"))
    other_app = Caller(
        "app", TENANT, "sp", "other-app", frozenset(), frozenset({"Connections.Admin"})
    )

    for caller in (ADMIN_APP, ALICE, BOB, other_app):
        assert may_use_application_connection(caller, conn.owner_oid, conn.owner_tid, conn.allowed)


def test_a_persons_client_app_id_on_the_list_does_not_let_every_user_of_that_client_in() -> None:
    conn = app_connection(("flow-client",))

    assert not may_use_application_connection(BOB, conn.owner_oid, conn.owner_tid, conn.allowed)


def test_someone_not_on_the_list_gets_not_found() -> None:
    conn = app_connection()

    with pytest.raises(ConnectionNotFound):
        authorize_application_connection(
            BOB, conn.owner_oid, conn.owner_tid, conn.allowed, write=False
        )


def test_another_tenant_never_matches_the_list() -> None:
    stranger = Caller(
        "user", "other", "alice-oid", "c", frozenset(), frozenset(), upn="alice@contoso.test"
    )

    assert not may_use_application_connection(stranger, "admin-sp", TENANT, ("alice@contoso.test",))


def test_allow_list_entries_are_normalised_and_bad_ones_refused() -> None:
    assert allowed_entries(["Alice@Contoso.test", "alice@contoso.test"]) == ("alice@contoso.test",)
    with pytest.raises(ValidationFailed):
        allowed_entries(["not an id"])


# --- the handle --------------------------------------------------------------------------


async def test_an_application_connection_is_addressed_under_users_never_me() -> None:
    seen: list[str] = []
    boxes = mailboxes(
        lambda _: answer(body={"value": []}), AppTokenSequence(["Mail.ReadWrite"]), seen
    )

    mb = await boxes.open(ALICE, CONNECTION_ID, correlation_id="c")
    await mb.send(GraphRequest("GET", mb.path.messages()))

    assert seen == ["GET /users/support@contoso.test/messages"]
    assert not mb.is_shared  # upload sessions work: the app's own permissions


async def test_naming_another_mailbox_on_an_application_connection_is_refused() -> None:
    boxes = mailboxes(lambda _: answer(), AppTokenSequence(["Mail.ReadWrite"]), [])

    with pytest.raises(ValidationFailed):
        await boxes.open(ALICE, CONNECTION_ID, "hr@contoso.test", correlation_id="c")


async def test_a_403_with_the_permission_still_granted_means_out_of_scope() -> None:
    tokens = AppTokenSequence(["Mail.ReadWrite"], ["Mail.ReadWrite"])
    seen: list[str] = []
    boxes = mailboxes(lambda _: access_denied(), tokens, seen)
    mb = await boxes.open(ALICE, CONNECTION_ID, correlation_id="c")

    with pytest.raises(MailboxOutOfScope) as raised:
        await mb.send(GraphRequest("GET", mb.path.messages()))

    assert "New-ManagementRoleAssignment -App client-guid" in raised.value.detail
    assert tokens.fetches == 2 and len(seen) == 2  # one fresh token, one retry


async def test_a_403_after_the_grant_was_revoked_asks_an_admin_without_a_login_url() -> None:
    tokens = AppTokenSequence(["Mail.ReadWrite"], [])
    seen: list[str] = []
    boxes = mailboxes(lambda _: access_denied(), tokens, seen)
    mb = await boxes.open(ALICE, CONNECTION_ID, correlation_id="c")

    with pytest.raises(ReauthRequired) as raised:
        await mb.send(GraphRequest("GET", mb.path.messages()))

    assert "loginUrl" not in raised.value.extensions
    assert len(seen) == 1  # no retry with a token that cannot work


async def test_a_403_that_a_fresh_token_cures_is_retried_once() -> None:
    answers = iter([access_denied(), answer(body={"value": []})])
    boxes = mailboxes(lambda _: next(answers), AppTokenSequence([], ["Mail.Read"]), [])
    mb = await boxes.open(ALICE, CONNECTION_ID, correlation_id="c")

    response = await mb.send(GraphRequest("GET", mb.path.messages()))

    assert response.status == 200


def test_the_needed_permission_follows_the_request() -> None:
    assert needed_roles(GraphRequest("GET", "/users/x@y.z/messages")) == {
        "Mail.Read",
        "Mail.ReadWrite",
    }
    assert needed_roles(GraphRequest("POST", "/users/x@y.z/sendMail")) == {"Mail.Send"}
    assert needed_roles(GraphRequest("PATCH", "/users/x@y.z/messages/a")) == {"Mail.ReadWrite"}


def test_roles_of_an_unreadable_token_are_none() -> None:
    assert token_roles("opaque") == frozenset()
    assert token_roles(jwt_with(["Mail.Send"])) == {"Mail.Send"}


# --- the service ---------------------------------------------------------------------------


def service(
    handler: Callable[[httpx.Request], httpx.Response], roles: list[str]
) -> tuple[ApplicationConnections, MemoryConnections, MemoryAuditSink]:
    store = MemoryConnections()
    audit = MemoryAuditSink()
    boxes = mailboxes(handler, AppTokenSequence(roles, roles), [])
    return ApplicationConnections(store, boxes, audit, None), store, audit  # type: ignore[arg-type]


async def test_only_an_admin_creates_one() -> None:
    apps, store, _ = service(lambda _: answer(body={"id": "inbox"}), ["Mail.ReadWrite"])

    with pytest.raises(Forbidden):
        await apps.create(
            ALICE, "support@contoso.test", display_name=None, allowed=[], correlation_id="c"
        )

    assert store.rows == {}


async def test_creating_probes_the_inbox_stores_no_grant_and_audits_the_mode() -> None:
    apps, store, audit = service(lambda _: answer(body={"id": "inbox"}), ["Mail.ReadWrite"])

    created = await apps.create(
        ADMIN_APP,
        "Support@Contoso.test",
        display_name="Support",
        allowed=["Alice@contoso.test"],
        correlation_id="c",
    )

    assert store.rows[created.id].kind is ConnectionKind.APPLICATION
    assert store.rows[created.id].allowed == ("alice@contoso.test",)
    assert store.rows[created.id].scopes == ["Mail.ReadWrite"]
    assert store.caches == {}
    [event] = audit.events
    assert (event.action, event.mode, event.caller_app_id) == (
        "connection.created",
        "application",
        "admin-app",
    )


async def test_a_mailbox_out_of_scope_is_refused_and_nothing_is_stored() -> None:
    apps, store, audit = service(lambda _: access_denied(), ["Mail.ReadWrite"])

    with pytest.raises(MailboxOutOfScope):
        await apps.create(
            ADMIN_APP, "hr@contoso.test", display_name=None, allowed=[], correlation_id="c"
        )

    assert store.rows == {}
    assert audit.events[0].reason == "mailbox_out_of_scope"


async def test_the_daily_check_marks_a_mailbox_that_left_the_scope() -> None:
    apps, store, audit = service(lambda _: access_denied(), ["Mail.ReadWrite"])
    conn = app_connection()
    conn.last_refreshed_at = datetime(2026, 12, 1, tzinfo=UTC)
    store.rows[conn.id] = conn

    changed = await apps.check_scope(conn.last_refreshed_at + timedelta(days=1, minutes=1))

    assert changed == 1
    assert store.rows[conn.id].status is ConnectionStatus.OUT_OF_SCOPE
    assert audit.events[-1].action == "connection.out_of_scope"


async def test_the_daily_check_leaves_a_connection_checked_today_alone() -> None:
    apps, store, _ = service(lambda _: access_denied(), ["Mail.ReadWrite"])
    conn = app_connection()
    conn.last_refreshed_at = datetime(2026, 12, 1, tzinfo=UTC)
    store.rows[conn.id] = conn

    assert await apps.check_scope(conn.last_refreshed_at + timedelta(hours=2)) == 0
    assert store.rows[conn.id].status is ConnectionStatus.ACTIVE


async def test_an_expired_token_then_a_403_is_judged_on_the_refreshed_token() -> None:
    unauthorized = answer(401, {"error": {"code": "InvalidAuthenticationToken"}})
    answers = iter([unauthorized, access_denied()])
    seen: list[str] = []
    boxes = mailboxes(lambda _: next(answers), AppTokenSequence(["Mail.ReadWrite"], []), seen)
    mb = await boxes.open(ALICE, CONNECTION_ID, correlation_id="c")

    with pytest.raises(ReauthRequired):
        await mb.send(GraphRequest("GET", mb.path.messages()))

    assert len(seen) == 2


async def test_without_entra_granted_roles_every_403_is_exchanges_scope() -> None:
    # RBAC for Applications alone: the app's tokens carry no roles, so nothing was "revoked".
    conn = replace(app_connection(), scopes=[])
    boxes = mailboxes(lambda _: access_denied(), AppTokenSequence([], []), [], conn)
    mb = await boxes.open(ALICE, CONNECTION_ID, correlation_id="c")

    with pytest.raises(MailboxOutOfScope):
        await mb.send(GraphRequest("GET", mb.path.messages()))
