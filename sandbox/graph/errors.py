"""Graph's error answers: one exception type that handlers raise, rendered in Graph's body shape
(`{"error": {"code", "message", "innerError": {...}}}`) by the request pipeline.
"""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """A Graph error response; `code` and `message` are Graph's own strings."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(
    code: str, message: str, *, date: str, request_id: str, client_request_id: str
) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": date,
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


# Graph's recurring answers, with Graph's wording.
def access_denied() -> GraphError:
    return GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def id_malformed() -> GraphError:
    return GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


def invalid_user(ref: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def body_read_error(message: str) -> GraphError:
    return GraphError(400, "RequestBodyRead", message)


def unknown_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def method_not_allowed() -> GraphError:
    return GraphError(
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
