"""Graph calls on a connection's mailbox for the notification modules: the connection's
access token attached, and one retry with a fresh token after a 401."""

from __future__ import annotations

from shared.connections.models import Connection
from shared.connections.tokens import TokenService
from shared.graph import GraphClient, GraphRequest, GraphResponse, GraphUnauthorized


class MailboxGraph:
    def __init__(self, tokens: TokenService, graph: GraphClient) -> None:
        self._tokens = tokens
        self._graph = graph

    async def call(self, connection: Connection, request: GraphRequest, cid: str) -> GraphResponse:
        token = await self._tokens.access_token(connection, cid)
        key = connection.mailbox.lower()
        try:
            return await self._graph.send(request, token=token, mailbox_key=key, correlation_id=cid)
        except GraphUnauthorized:
            # A revoked or rotated access token: one fresh one, then give up.
            self._tokens.forget(connection.id)
            token = await self._tokens.access_token(connection, cid, force_refresh=True)
            return await self._graph.send(request, token=token, mailbox_key=key, correlation_id=cid)
