"""A FunctionApp exercising what the dev host must serve; handlers record what they saw.

Every handler appends an :class:`Invocation` to :data:`recorder`, which tests wait on
(with a deadline) instead of sleeping.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func


@dataclass(frozen=True)
class Invocation:
    """One call of a sample function and what its trigger looked like."""

    function: str
    details: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Thread-safe log of invocations that tests can wait on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._invocations: list[Invocation] = []

    def record(self, function: str, **details: Any) -> None:
        with self._condition:
            self._invocations.append(Invocation(function, details))
            self._condition.notify_all()

    def calls(self, function: str) -> list[Invocation]:
        with self._condition:
            return [i for i in self._invocations if i.function == function]

    def wait_for(self, function: str, count: int = 1, timeout: float = 10.0) -> list[Invocation]:
        """The first ``count`` calls of ``function``; TimeoutError if they do not come in time."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                calls = [i for i in self._invocations if i.function == function]
                if len(calls) >= count:
                    return calls[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{function} called {len(calls)} times, wanted {count}")
                self._condition.wait(remaining)

    def clear(self) -> None:
        with self._condition:
            self._invocations.clear()


recorder = Recorder()
release = threading.Event()  # lets a "hold" work item finish

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


def _json(document: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json")


@app.route(route="echo/{*rest}", auth_level=func.AuthLevel.ANONYMOUS, trigger_arg_name="request")
def echo(request: func.HttpRequest) -> func.HttpResponse:
    """Sync handler: reports the request exactly as it received it."""
    return _json(
        {
            "thread": threading.current_thread().name,
            "method": request.method,
            "url": request.url,
            "params": dict(request.params),
            "route_params": dict(request.route_params),
            "headers": dict(request.headers),
            "body": request.get_body().decode("utf-8"),
        }
    )


@app.route(route="items/{id}", methods=["GET"], auth_level="anonymous")
async def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    """Async handler on a parameter route."""
    return _json(
        {
            "handler": "item_by_id",
            "id": req.route_params["id"],
            "thread": threading.current_thread().name,
        }
    )


@app.route(route="items/new", methods=["GET"], auth_level="anonymous")
def new_item_form(req: func.HttpRequest) -> func.HttpResponse:
    """A literal route overlapping items/{id}: it must win."""
    return _json({"handler": "new_item_form"})


@app.route(route="items/count/{n:int}", methods=["GET"], auth_level="anonymous")
def count_items(req: func.HttpRequest) -> func.HttpResponse:
    """An int-constrained parameter."""
    return _json({"handler": "count_items", "n": int(req.route_params["n"])})


@app.route(route="greet/{name?}", methods=["GET"], auth_level="anonymous")
def greet(req: func.HttpRequest) -> func.HttpResponse:
    """An optional trailing parameter."""
    return _json({"name": req.route_params.get("name")})


@app.route(route="submit", methods=["POST"], auth_level="anonymous")
def submit(req: func.HttpRequest) -> func.HttpResponse:
    """POST only; answers with headers, several values of one header and a status."""
    response = func.HttpResponse(
        req.get_body(),
        status_code=201,
        headers={"Location": "/api/items/42", "X-Request-Id": "abc"},
        mimetype="application/json",
    )
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    return response


@app.route(route="hello", auth_level="anonymous")
def hello(req: func.HttpRequest) -> func.HttpResponse:
    """Plain text with the default mimetype and charset."""
    return func.HttpResponse("héllo")


@app.route(route="context", auth_level="anonymous")
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Asks for the invocation context as well."""
    return _json({"function": context.function_name, "invocation_id": context.invocation_id})


@app.route(route="boom", auth_level="anonymous")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    """Always fails."""
    raise RuntimeError("secret detail that must not reach the client")


@app.route(route="nothing", auth_level="anonymous")
def nothing(req: func.HttpRequest) -> None:
    """Returns nothing: the host answers 204."""


@app.route(route="secure")
def secure(req: func.HttpRequest) -> func.HttpResponse:
    """No auth level given: the app's default (function)."""
    return _json({"handler": "secure"})


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    """Needs the master key."""
    return _json({"handler": "admin_only"})


@bp.route(auth_level="anonymous")
def blueprint_default_route(req: func.HttpRequest) -> func.HttpResponse:
    """Registered through a blueprint, no route: answers at its function name."""
    return _json({"handler": "blueprint_default_route"})


@bp.function_name("renamed")
@bp.route(route="renamed/{id:guid}", auth_level="anonymous")
def renamed_handler(req: func.HttpRequest) -> func.HttpResponse:
    """A function whose name differs from its Python name; guid constraint."""
    return _json({"handler": "renamed", "id": req.route_params["id"]})


@app.timer_trigger(schedule="%SCHEDULE_SETTING%", arg_name="timer")
def tick(timer: func.TimerRequest) -> None:
    """Fires on the schedule in app setting SCHEDULE_SETTING."""
    recorder.record("tick", past_due=timer.past_due, kind=type(timer).__name__)


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
async def failing_tick(timer: func.TimerRequest) -> None:
    """Every second; always fails after recording."""
    recorder.record("failing_tick")
    raise RuntimeError("timer failure")


@app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer")
def nightly(timer: func.TimerRequest) -> None:
    """Fires at 03:00 UTC: only ever run through the admin API in tests."""
    recorder.record("nightly", past_due=timer.past_due, kind=type(timer).__name__)


@bp.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="DevhostStorage")
def work_item(msg: func.QueueMessage) -> None:
    """Records each message; a body starting with 'fail' fails, one starting with 'hold'
    waits for `release` (so that a test can see it still running)."""
    body = msg.get_body().decode("utf-8")
    recorder.record(
        "work_item",
        body=body,
        id=msg.id,
        dequeue_count=msg.dequeue_count,
        kind=type(msg).__name__,
    )
    if body.startswith("hold"):
        release.wait(10)
    if body.startswith("fail"):
        raise ValueError("cannot process this message")


app.register_functions(bp)
