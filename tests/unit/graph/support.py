"""Test doubles for the Graph client: a virtual clock and a scripted Graph (MockTransport)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.graph.client import GraphClient
from shared.graph.limiter import MailboxLimiter
from shared.graph.retry import RetryPolicy

BASE = "https://graph.test/v1.0"
TOKEN = "header.payload.signature"


@dataclass
class VirtualTime:
    """`clock` and `sleep` for the client: sleeping advances the clock, instantly."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def graph_error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": "Mailbox of carol@fabrikam.test: secret subject"}}
    return httpx.Response(status, json=body, headers=headers or {})


def ok(body: Any = None) -> httpx.Response:
    return httpx.Response(200, json=body or {"value": []}, headers={"request-id": "rid-1"})


@dataclass
class ScriptedGraph:
    """Answers requests from a list of responses (or exceptions), recording each request."""

    answers: list[httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


def make_client(
    answers: Iterable[httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]],
    *,
    time: VirtualTime | None = None,
    retry: RetryPolicy | None = None,
    limiter: MailboxLimiter | None = None,
) -> tuple[GraphClient, ScriptedGraph, VirtualTime]:
    graph = ScriptedGraph(list(answers))
    vt = time or VirtualTime()
    client = GraphClient(
        BASE,
        retry=retry or RetryPolicy(deadline_seconds=60, max_retry_after_seconds=30),
        limiter=limiter,
        transport=httpx.MockTransport(graph),
        sleep=vt.sleep,
        clock=vt.clock,
        rng=random.Random(7),
    )
    return client, graph, vt


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None
