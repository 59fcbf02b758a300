"""Clients for the graph tests: alice, bob and an app, each with a Graph token from the
sandbox's own token endpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.sandbox.graph.support import ALICE, BOB, Graph, app_token, user_token
from tests.support.sandbox import SandboxServer


@pytest.fixture
def alice(sandbox: SandboxServer) -> Iterator[Graph]:
    client = Graph(sandbox, user_token(sandbox, ALICE), immutable=True)
    yield client
    client.close()


@pytest.fixture
def alice_regular(sandbox: SandboxServer) -> Iterator[Graph]:
    """Alice without `Prefer: IdType="ImmutableId"`: regular (folder-dependent) ids."""
    client = Graph(sandbox, user_token(sandbox, ALICE))
    yield client
    client.close()


@pytest.fixture
def bob(sandbox: SandboxServer) -> Iterator[Graph]:
    client = Graph(sandbox, user_token(sandbox, BOB), immutable=True)
    yield client
    client.close()


@pytest.fixture
def app(sandbox: SandboxServer) -> Iterator[Graph]:
    client = Graph(sandbox, app_token(sandbox, ["Mail.ReadWrite", "Mail.Send"]), immutable=True)
    yield client
    client.close()


@pytest.fixture
def make_graph(sandbox: SandboxServer) -> Iterator[Callable[..., Graph]]:
    """Graph clients for ad-hoc tokens, closed after the test (open keep-alive connections
    would hold up the server's shutdown)."""
    made: list[Graph] = []

    def make(token: str, immutable: bool = False) -> Graph:
        client = Graph(sandbox, token, immutable=immutable)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
