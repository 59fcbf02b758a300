"""The one renderer: any ApiError (or unexpected exception) → RFC 9457 problem+json."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import azure.functions as func

from shared.config import DEFAULT_PROBLEM_TYPE_BASE
from shared.errors import ApiError, InternalError
from shared.http.correlation import HEADER as CORRELATION_HEADER

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
DEFAULT_TYPE_BASE = DEFAULT_PROBLEM_TYPE_BASE


def problem_body(error: ApiError, correlation_id: str, type_base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"{type_base}{error.code}",
        "title": error.title,
        "status": error.http_status,
        "detail": error.detail,
        "code": error.code,
        "correlationId": correlation_id,
    }
    if error.errors:
        body["errors"] = [{"loc": list(e.loc), "msg": e.msg} for e in error.errors]
    # Extensions never override the standard members.
    body.update({k: v for k, v in error.extensions.items() if k not in body})
    return body


def render_problem(
    error: ApiError, correlation_id: str, type_base: str = DEFAULT_TYPE_BASE
) -> func.HttpResponse:
    headers = {**error.headers, CORRELATION_HEADER: correlation_id}
    return func.HttpResponse(
        body=json.dumps(problem_body(error, correlation_id, type_base)),
        status_code=error.http_status,
        headers=headers,
        mimetype=PROBLEM_JSON,
        charset="utf-8",
    )


def render_unexpected(
    exc: BaseException, correlation_id: str, type_base: str = DEFAULT_TYPE_BASE
) -> func.HttpResponse:
    # The only place an unknown exception is caught: log it (with the id the caller sees) and
    # answer with nothing internal in the body.
    # The exception's message is left out on purpose: library messages can quote request
    # data (tokens, addresses); the type and the frames are enough to find the fault.
    logger.error(
        "unhandled %s (correlation id %s)\n%s",
        type(exc).__name__,
        correlation_id,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    return render_problem(InternalError("An unexpected error occurred."), correlation_id, type_base)
