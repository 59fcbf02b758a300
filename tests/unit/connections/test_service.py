"""ConnectionService with in-memory stores and a fake identity provider: who may see a
connection, how the worker's short memory of rows behaves, deletion, and the sign-in's
checks of its inputs and of the identity token."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.audit import MemoryAuditSink, Outcome
from shared.auth.caller import Caller
from shared.config import Settings, load_settings
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.service import ConnectionService
from shared.connections.signin import FlowRejected, PendingFlow
from shared.errors import ConnectionNotFound, Forbidden, SignInFailed, ValidationFailed
from shared.identity.msal_client import AuthResult
from tests.support.app import sample_settings

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ALICE = Caller("user", "tid", "alice-oid", "app", frozenset({"access_as_user"}), frozenset())
BOB = Caller("user", "tid", "bob-oid", "app", frozenset({"access_as_user"}), frozenset())
READER_APP = Caller("app", "tid", "app", "app", frozenset(), frozenset({"Connections.Read.All"}))
WRITER_APP = Caller(
    "app", "tid", "app", "app", frozenset(), frozenset({"Connections.ReadWrite.All"})
)
OTHER_TENANT_APP = Caller(
    "app", "other", "app", "app", frozenset(), frozenset({"Connections.ReadWrite.All"})
)
NO_ROLE_APP = Caller("app", "tid", "app", "app", frozenset(), frozenset())


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(
        {**sample_settings(), "CA_BUNDLE": "", "RETURN_TO_ALLOWLIST": "https://flows.test/"}
    )


def connection(connection_id: str = "c1", owner: str = "alice-oid", tid: str = "tid") -> Connection:
    return Connection(
        id=connection_id,
        owner_oid=owner,
        owner_tid=tid,
        mailbox=f"{owner}@contoso.test",
        scopes=["Mail.ReadWrite"],
        status=ConnectionStatus.ACTIVE,
        created_at=NOW,
    )


class MemoryConnections:
    """ConnectionStore's contract over dicts."""

    def __init__(self, *rows: Connection) -> None:
        self.rows = {c.id: c for c in rows}
        self.caches: dict[str, bytes] = {}
        self.owners: dict[tuple[str, str, str], str] = {}
        self.reads = 0
        self.deleted: list[str] = []

    async def get(self, connection_id: str) -> Connection | None:
        self.reads += 1
        return self.rows.get(connection_id)

    async def claim_id(self, tenant_id: str, oid: str, mailbox: str, new_id: str) -> str:
        return self.owners.setdefault((tenant_id, oid, mailbox), new_id)

    async def save(self, connection: Connection, cache: bytes) -> None:
        self.rows[connection.id] = connection
        self.caches[connection.id] = cache

    async def list_for_owner(self, tenant_id: str, oid: str) -> list[Connection]:
        return [c for c in self.rows.values() if (c.owner_tid, c.owner_oid) == (tenant_id, oid)]

    async def list_all(self) -> list[Connection]:
        return list(self.rows.values())

    async def list_application(self) -> list[Connection]:
        return [c for c in self.rows.values() if c.is_application]

    async def save_application(self, connection: Connection) -> None:
        self.rows[connection.id] = connection

    async def set_allowed(self, connection_id: str, allowed: tuple[str, ...]) -> None:
        self.rows[connection_id] = replace(self.rows[connection_id], allowed=allowed)

    async def delete(self, connection: Connection) -> None:
        self.deleted.append(connection.id)
        self.rows.pop(connection.id, None)


@dataclass
class MemorySignIns:
    """SignInSealer's contract: the sign-in travels in the browser's cookie, which only opens
    for the state it was sealed for."""

    sealed: dict[str, tuple[str, dict[str, Any], str | None]] = field(default_factory=dict)
    opened: int = 0

    async def cookie_for(self, flow: dict[str, Any], return_to: str | None, now: datetime) -> str:
        cookie = f"sealed-{len(self.sealed)}"
        self.sealed[cookie] = (str(flow["state"]), flow, return_to)
        return cookie

    async def flow_from(self, cookie: str | None, state: str, now: datetime) -> PendingFlow:
        if cookie not in self.sealed or self.sealed[cookie][0] != state:
            raise FlowRejected("state_foreign")
        self.opened += 1
        _, flow, return_to = self.sealed[cookie]
        return PendingFlow(flow, return_to)


class FakeCache:
    def serialize(self) -> str:
        return '{"RefreshToken": {}}'


class FakeIdentity:
    """MsalClient's initiate/redeem with the claims an identity token would carry."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.hints: list[str | None] = []

    def initiate(
        self, login_hint: str | None, claims_challenge: str | None = None
    ) -> dict[str, Any]:
        self.hints.append(login_hint)
        return {"state": "state-1", "auth_uri": "https://login.test/authorize?state=state-1"}

    def redeem(self, flow: dict[str, Any], params: dict[str, str]) -> tuple[AuthResult, Any]:
        return AuthResult(self.claims, ["Mail.ReadWrite", "User.Read"], "uid.utid"), FakeCache()


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0

    def __call__(self) -> float:
        return self.mono


def good_claims(settings: Settings) -> dict[str, Any]:
    tenant = str(settings.TENANT_ID)
    return {
        "tid": tenant,
        "iss": f"{str(settings.AUTHORITY_HOST).rstrip('/')}/{tenant}/v2.0",
        "aud": str(settings.CLIENT_ID),
        "oid": "alice-oid",
        "preferred_username": "Alice@Contoso.test",
    }


@dataclass
class Parts:
    service: ConnectionService
    store: MemoryConnections
    signins: MemorySignIns
    identity: FakeIdentity
    audit: MemoryAuditSink
    clock: Clock


def parts(settings: Settings, *rows: Connection, claims: dict[str, Any] | None = None) -> Parts:
    store, signins, audit, clock = (
        MemoryConnections(*rows),
        MemorySignIns(),
        MemoryAuditSink(),
        Clock(),
    )
    identity = FakeIdentity(claims if claims is not None else good_claims(settings))
    service = ConnectionService(
        settings,
        identity,  # type: ignore[arg-type]
        signins,  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        audit,
        clock=lambda: NOW,
        monotonic=clock,
    )
    return Parts(service, store, signins, identity, audit, clock)


# -- who may see a connection ---------------------------------------------------------------


async def test_the_owner_gets_their_connection(settings: Settings) -> None:
    p = parts(settings, connection())

    assert (await p.service.get(ALICE, "c1", write=True)).id == "c1"


@pytest.mark.parametrize("caller", [BOB, OTHER_TENANT_APP, NO_ROLE_APP])
async def test_someone_elses_connection_answers_like_one_that_does_not_exist(
    settings: Settings, caller: Caller
) -> None:
    p = parts(settings, connection())

    with pytest.raises(ConnectionNotFound):
        await p.service.get(caller, "c1")
    with pytest.raises(ConnectionNotFound):
        await p.service.get(caller, "no-such-id")


async def test_an_app_with_the_read_role_may_read_but_not_write(settings: Settings) -> None:
    p = parts(settings, connection())

    assert (await p.service.get(READER_APP, "c1")).id == "c1"
    with pytest.raises(Forbidden):
        await p.service.get(READER_APP, "c1", write=True)
    assert (await p.service.get(WRITER_APP, "c1", write=True)).id == "c1"


async def test_a_recently_read_connection_is_not_read_again_within_the_window(
    settings: Settings,
) -> None:
    p = parts(settings, connection())

    await p.service.get(ALICE, "c1")
    await p.service.get(ALICE, "c1")
    p.clock.mono += 16  # past the 15 s window
    await p.service.get(ALICE, "c1")

    assert p.store.reads == 2


async def test_the_window_never_lets_someone_else_through(settings: Settings) -> None:
    p = parts(settings, connection())
    await p.service.get(ALICE, "c1")

    with pytest.raises(ConnectionNotFound):
        await p.service.get(BOB, "c1")


async def test_a_person_lists_their_own_and_a_role_holding_app_lists_all(
    settings: Settings,
) -> None:
    p = parts(settings, connection("c1"), connection("c2", owner="bob-oid"))

    assert [c.id for c in await p.service.list(ALICE)] == ["c1"]
    assert sorted(c.id for c in await p.service.list(READER_APP)) == ["c1", "c2"]
    assert await p.service.list(NO_ROLE_APP) == []


# -- deletion -------------------------------------------------------------------------------


async def test_deleting_runs_the_hooks_first_then_removes_and_audits(settings: Settings) -> None:
    p = parts(settings, connection())
    seen: list[tuple[str, bool]] = []

    async def hook(doomed: Connection, cid: str) -> None:
        seen.append((doomed.id, doomed.id in p.store.rows))

    p.service.delete_hooks.append(hook)
    await p.service.delete(ALICE, "c1", "corr")

    assert seen == [("c1", True)]  # the grant still existed while the hook ran
    assert p.store.deleted == ["c1"]
    [event] = p.audit.events
    assert (event.action, event.connection_id, event.caller_oid) == (
        "connection.revoked",
        "c1",
        "alice-oid",
    )


async def test_a_read_only_app_cannot_delete(settings: Settings) -> None:
    p = parts(settings, connection())

    with pytest.raises(Forbidden):
        await p.service.delete(READER_APP, "c1", "corr")

    assert p.store.deleted == []


async def test_a_deleted_connection_is_not_served_from_the_workers_memory(
    settings: Settings,
) -> None:
    p = parts(settings, connection())
    await p.service.get(ALICE, "c1")

    await p.service.delete(ALICE, "c1", "corr")

    with pytest.raises(ConnectionNotFound):
        await p.service.get(ALICE, "c1")


# -- the browser flow -----------------------------------------------------------------------


@pytest.mark.parametrize("hint", ["not an address", "a@b c", "<x>@contoso.test"])
async def test_a_malformed_login_hint_is_refused(settings: Settings, hint: str) -> None:
    p = parts(settings)

    with pytest.raises(ValidationFailed):
        await p.service.start_login(hint, None, "corr")

    assert p.identity.hints == []


@pytest.mark.parametrize(
    "return_to", ["https://evil.test/", "https://flows.test.evil.test/", "https://flows.test/\\x"]
)
async def test_return_to_outside_the_allow_list_is_refused(
    settings: Settings, return_to: str
) -> None:
    with pytest.raises(ValidationFailed):
        await parts(settings).service.start_login(None, return_to, "corr")


async def test_a_sign_in_stores_the_connection_for_the_id_tokens_owner(settings: Settings) -> None:
    p = parts(settings)
    start = await p.service.start_login("alice@contoso.test", "https://flows.test/done", "c")

    connected = await p.service.finish_login(
        {"state": "state-1", "code": "abc"}, start.browser_secret, "c"
    )

    stored = p.store.rows[connected.connection.id]
    assert (stored.owner_oid, stored.mailbox, stored.status) == (
        "alice-oid",
        "alice@contoso.test",
        ConnectionStatus.ACTIVE,
    )
    assert connected.return_to == "https://flows.test/done"
    assert [e.action for e in p.audit.events] == ["auth.login_started", "auth.callback"]


async def test_the_same_person_and_mailbox_keep_one_connection_id(settings: Settings) -> None:
    p = parts(settings)
    ids = []
    for _ in range(2):
        start = await p.service.start_login(None, None, "c")
        done = await p.service.finish_login({"state": "state-1"}, start.browser_secret, "c")
        ids.append(done.connection.id)

    assert ids[0] == ids[1]


@pytest.mark.parametrize(
    ("claim", "value"),
    [("tid", "other"), ("iss", "https://evil.test/v2.0"), ("aud", "other"), ("oid", "")],
)
async def test_an_identity_token_not_for_this_app_is_refused(
    settings: Settings, claim: str, value: str
) -> None:
    claims = {**good_claims(settings), claim: value}
    p = parts(settings, claims=claims)
    start = await p.service.start_login(None, None, "c")

    with pytest.raises(SignInFailed) as refused:
        await p.service.finish_login({"state": "state-1"}, start.browser_secret, "c")

    assert refused.value.reason == "id_token_invalid"
    assert p.store.rows == {}
    assert p.audit.events[-1].outcome == Outcome.FAILURE


async def test_a_callback_from_another_browser_is_refused(settings: Settings) -> None:
    p = parts(settings)
    await p.service.start_login(None, None, "c")

    with pytest.raises(SignInFailed) as refused:
        await p.service.finish_login({"state": "state-1"}, "another-browser", "c")

    assert refused.value.reason == "state_foreign"


async def test_a_refused_consent_is_403_and_never_opens_the_flow(settings: Settings) -> None:
    p = parts(settings)
    start = await p.service.start_login(None, None, "c")

    with pytest.raises(SignInFailed) as refused:
        await p.service.finish_login(
            {"state": "state-1", "error": "access_denied"}, start.browser_secret, "c"
        )

    assert (refused.value.reason, refused.value.http_status) == ("access_denied", 403)
    assert p.signins.opened == 0  # nothing redeemed; the callback then clears the cookie
