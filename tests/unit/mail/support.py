"""Real mail services over a scripted Graph (httpx.MockTransport) and in-memory parts: a
connection lookup that counts authorizations and a token source that counts refreshes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.audit import MemoryAuditSink
from shared.auth.caller import Caller
from shared.auth.policy import authorize_connection
from shared.connections.mailbox import ConnectedMailbox, Mailboxes
from shared.connections.models import Connection, ConnectionStatus
from shared.errors import ConnectionNotFound
from shared.graph.client import GraphClient
from shared.graph.cursor import CursorCodec
from shared.mail.service import MailReader
from shared.mail.writer import MailWriter, WriteLimits
from tests.unit.graph.support import BASE, VirtualTime

ALICE = Caller("user", "tid", "alice-oid", "app", frozenset({"access_as_user"}), frozenset())
MALLORY = Caller("user", "tid", "mallory-oid", "app", frozenset({"access_as_user"}), frozenset())
READER_APP = Caller(
    "app", "tid", "app-oid", "reader", frozenset(), frozenset({"Connections.Read.All"})
)
CONNECTION_ID = "conn-0000000000000000000000"
MESSAGE_ID = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"


def alice_connection() -> Connection:
    return Connection(
        id=CONNECTION_ID,
        owner_oid="alice-oid",
        owner_tid="tid",
        mailbox="Alice@Contoso.test",
        scopes=["Mail.ReadWrite", "Mail.Send"],
        status=ConnectionStatus.ACTIVE,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


class CountingConnections:
    """ConnectionService.get's contract over a dict: the ownership rule, counted."""

    def __init__(self, *connections: Connection) -> None:
        self.rows = {c.id: c for c in connections}
        self.authorizations = 0

    async def get(self, caller: Caller, connection_id: str, *, write: bool = False) -> Connection:
        self.authorizations += 1
        connection = self.rows.get(connection_id)
        if connection is None:
            raise ConnectionNotFound()
        authorize_connection(caller, connection.owner_oid, connection.owner_tid, write=write)
        return connection


class FakeTokens:
    """Hands out `token-1`, `token-2`, …; a forced refresh is a new one."""

    def __init__(self) -> None:
        self.issued = 0
        self.refreshes = 0
        self.forgotten: list[str] = []
        self.claims: list[str] = []

    async def access_token(
        self, connection: Connection, correlation_id: str, *, force_refresh: bool = False
    ) -> str:
        self.issued += 1
        self.refreshes += force_refresh
        return f"token-{self.issued}"

    async def refresh_for_claims(
        self, connection: Connection, claims: str, correlation_id: str
    ) -> str:
        self.claims.append(claims)
        return await self.access_token(connection, correlation_id, force_refresh=True)

    def forget(self, connection_id: str) -> None:
        self.forgotten.append(connection_id)


Handler = Callable[[httpx.Request], Any]


@dataclass
class ScriptedGraph:
    """Answers each request with `handler`, recording it."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [
            f"{r.method} {r.url.raw_path.decode().removeprefix('/v1.0')}" for r in self.requests
        ]


def answer(status: int = 200, body: Any = None, request_id: str = "rid-1") -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else b""
    headers = {"request-id": request_id}
    if body is not None:
        headers["content-type"] = "application/json"
    return httpx.Response(status, content=content, headers=headers)


@dataclass
class Rig:
    graph: ScriptedGraph
    client: GraphClient
    connections: CountingConnections
    tokens: FakeTokens
    mailboxes: Mailboxes
    audit: MemoryAuditSink
    cursors: CursorCodec

    def reader(self) -> MailReader:
        return MailReader(self.mailboxes, self.cursors, self.audit)

    def writer(self) -> MailWriter:
        return MailWriter(None, self.audit, WriteLimits(40 * 1024 * 1024, 500))  # type: ignore[arg-type]

    async def open(
        self, caller: Caller = ALICE, mailbox: str | None = None, *, write: bool = False
    ) -> ConnectedMailbox:
        return await self.mailboxes.open(
            caller, CONNECTION_ID, mailbox, write=write, correlation_id="corr-1"
        )


def rig(handler: Handler) -> Rig:
    graph = ScriptedGraph(handler)
    time = VirtualTime()
    client = GraphClient(
        BASE, transport=httpx.MockTransport(graph), sleep=time.sleep, clock=time.clock
    )
    connections = CountingConnections(alice_connection())
    tokens = FakeTokens()
    return Rig(
        graph,
        client,
        connections,
        tokens,
        Mailboxes(connections, tokens, client),
        MemoryAuditSink(),
        CursorCodec(b"k" * 32, BASE, clock=lambda: 1_000_000.0),
    )
