"""The one error hierarchy: typed domain errors, each with a stable code and an HTTP status.

Services raise these; `shared.http.problems` renders any of them as RFC 9457
problem+json. Codes are public (docs/errors.md, api.md): extend, never rename.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One validation problem: where (`loc`, as pydantic reports it) and what."""

    loc: tuple[str | int, ...]
    msg: str


class ApiError(Exception):
    """Base of every error a caller may see. `detail` must be safe to show: no secrets,
    no tokens, no message content, no Graph response bodies."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})
        self.status_override = status

    @property
    def http_status(self) -> int:
        return self.status_override or self.status


class ValidationFailed(ApiError):
    code, status, title = "validation_failed", 400, "The request is not valid"


class InvalidCursor(ApiError):
    code, status, title = "invalid_cursor", 400, "The cursor is not valid"


class Unauthorized(ApiError):
    code, status, title = "unauthorized", 401, "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"', **kwargs.pop("headers", {})}
        super().__init__(detail, headers=headers, **kwargs)


class SignInFailed(ApiError):
    """The browser sign-in could not complete; `reason` is a stable code (never the identity
    provider's description text)."""

    code, status, title = "sign_in_failed", 400, "The mailbox could not be connected"

    def __init__(self, reason: str, detail: str | None = None, status: int = 400) -> None:
        super().__init__(detail, extensions={"reason": reason}, status=status)
        self.reason = reason


class Forbidden(ApiError):
    code, status, title = "forbidden", 403, "Not allowed"


class CsrfRejected(ApiError):
    """A browser form post without this session's anti-forgery token (or from another site)."""

    code, status, title = "csrf_rejected", 403, "The form could not be verified"


class NotFound(ApiError):
    code, status, title = "not_found", 404, "Not found"


class ConnectionNotFound(ApiError):
    code, status, title = "connection_not_found", 404, "Connection not found"


class ExportNotFound(ApiError):
    code, status, title = "export_not_found", 404, "Export not found"


class ExportItemNotFound(ApiError):
    code, status, title = "export_item_not_found", 404, "Export item not found"


class ExportNotCompleted(ApiError):
    code, status, title = "export_not_completed", 409, "The export has not completed"


class MethodNotAllowed(ApiError):
    code, status, title = "method_not_allowed", 405, "Method not allowed"

    def __init__(self, allowed: Sequence[str], detail: str | None = None) -> None:
        super().__init__(detail, headers={"Allow": ", ".join(allowed)})


class Conflict(ApiError):
    code, status, title = "conflict", 409, "Conflict"


class MailboxOutOfScope(ApiError):
    """An application connection's mailbox is outside what Exchange Online lets the app reach
    (RBAC for Applications); only an Exchange administrator can change that."""

    code, status, title = "mailbox_out_of_scope", 403, "The mailbox is outside the app's scope"


class ReauthRequired(ApiError):
    """Delegated: the person must connect again (`loginUrl`). Application connections have
    no person to send anywhere: without `login_url` an administrator must grant the app's
    permissions again, and the answer carries no `loginUrl`."""

    code, status, title = "reauth_required", 409, "The mailbox must be connected again"

    def __init__(self, login_url: str | None, detail: str | None = None) -> None:
        super().__init__(detail, extensions={"loginUrl": login_url} if login_url else None)


class PayloadTooLarge(ApiError):
    code, status, title = "payload_too_large", 413, "The request is too large"


class TooManyNotifications(ApiError):
    """More change notifications in one POST than Graph batches (docs/triggers.md): refused
    whole, before any lookup, so the anonymous endpoint cannot multiply work."""

    code, status, title = "too_many_notifications", 413, "Too many notifications in one request"


class UnsupportedMediaType(ApiError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class GraphFailure(ApiError):
    """Base of every error that came from calling Microsoft Graph, whatever public code it
    answers with: Graph's own error answers (`shared.graph.errors.error_for`: throttling,
    502 `graph_error`, and Graph's 400/403/404/409/413 as the matching 4xx) and Graph
    unreachable. As httpx separates `RequestError` from `HTTPStatusError`, callers that must
    know whether Graph may have acted (the Idempotency-Key guard) test this type; errors
    raised before any Graph call are never of it."""

    @property
    def graph_code(self) -> str | None:
        """Graph's `error.code` (or `HTTP<status>`), when Graph answered."""
        code = self.extensions.get("graphCode")
        return str(code) if code is not None else None


class GraphThrottled(GraphFailure):
    code, status, title = "graph_throttled", 429, "Microsoft Graph is throttling this mailbox"

    def __init__(self, retry_after_seconds: int, detail: str | None = None, status: int = 429):
        super().__init__(
            detail, headers={"Retry-After": str(max(1, retry_after_seconds))}, status=status
        )


class GraphError(GraphFailure):
    code, status, title = "graph_error", 502, "Microsoft Graph returned an error"

    def __init__(self, graph_code: str, detail: str | None = None) -> None:
        super().__init__(detail, extensions={"graphCode": graph_code})


class GraphUnavailable(GraphFailure):
    code, status, title = "graph_unavailable", 503, "Microsoft Graph is unavailable"


class IdentityUnavailable(ApiError):
    """The identity provider could not refresh a connection's access (5xx, timeout): nothing
    was sent to Graph. Callers see the same answer as for Graph being down (the mailbox
    cannot be reached either way, and the public code stays `graph_unavailable`); the type
    says where it came from."""

    code, status, title = "graph_unavailable", 503, "Microsoft Graph is unavailable"


class StorageUnavailable(ApiError):
    code, status, title = "storage_unavailable", 503, "Storage is unavailable"


class KeyProviderUnavailable(ApiError):
    code, status, title = "key_provider_unavailable", 503, "Key material is unavailable"


class AuthorityUnavailable(ApiError):
    """The identity provider's signing keys could not be fetched, so no token can be checked."""

    code, status, title = "authority_unavailable", 503, "The identity provider is unavailable"


class DependencyUnavailable(ApiError):
    """Readiness: one or more dependencies are down (`unavailable` names them)."""

    code, status, title = "dependency_unavailable", 503, "A dependency is unavailable"

    def __init__(self, unavailable: Sequence[str], reasons: dict[str, str] | None = None) -> None:
        extensions: dict[str, object] = {"unavailable": list(unavailable)}
        if reasons:
            # Short codes (e.g. appCredential: AADSTS700213), never a message or a secret.
            extensions["reasons"] = dict(reasons)
        super().__init__(f"Unavailable: {', '.join(unavailable)}", extensions=extensions)


class InternalError(ApiError):
    code, status, title = "internal_error", 500, "Internal error"


def all_error_types() -> list[type[ApiError]]:
    """Every concrete error class (for docs/errors.md and the OpenAPI document)."""
    seen: list[type[ApiError]] = []
    pending: list[type[ApiError]] = [ApiError]
    while pending:
        cls = pending.pop(0)
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                pending.append(sub)
    return seen
