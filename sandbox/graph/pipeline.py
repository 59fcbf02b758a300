"""The transport-free request model shared by the HTTP endpoint and `$batch`: a Graph request
in, a Graph response out, with auth, mailbox resolution, permission checks and throttling.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sandbox.graph import errors
from sandbox.graph.errors import GraphError

if TYPE_CHECKING:
    from sandbox.context import SandboxContext
    from sandbox.directory import User
    from sandbox.graph.store import Mailbox
    from sandbox.principal import Principal

# settings_*: mailboxSettings and outlook/masterCategories (MailboxSettings.Read/ReadWrite).
Need = Literal["read", "write", "send", "settings_read", "settings_write"]

# Graph's request size limit for JSON bodies (upload sessions exist for anything larger).
MAX_JSON_BODY = 4 * 1024 * 1024

_IMMUTABLE_PREFERENCE = re.compile(r'idtype\s*=\s*"?immutableid"?', re.IGNORECASE)


@dataclass
class GraphRequest:
    method: str
    path: str  # below /v1.0, e.g. "/me/messages"
    params: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # scheme://host:port of the request, for nextLink and uploadUrl
    principal: Principal | None = None

    @property
    def immutable_ids(self) -> bool:
        return bool(_IMMUTABLE_PREFERENCE.search(self.headers.get("prefer", "")))

    @property
    def body_type(self) -> str:
        """`Prefer: outlook.body-content-type="text"|"html"` (HTML when absent)."""
        value = (self.prefer("outlook.body-content-type") or "html").lower()
        return "text" if value == "text" else "html"

    def prefer(self, name: str) -> str | None:
        for part in self.headers.get("prefer", "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name.lower():
                return value.strip().strip('"')
        return None

    def json(self, *, required: bool = True) -> Any:
        if len(self.body) > MAX_JSON_BODY:
            raise GraphError(
                413, "RequestEntityTooLarge", "The request payload exceeds the 4 MB limit."
            )
        if not self.body.strip():
            if required:
                raise _unreadable()
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _unreadable() from None


def _unreadable() -> GraphError:
    return errors.bad_request(
        "Unable to read JSON request payload. Please ensure Content-Type header is set and"
        " payload is of valid JSON format."
    )


@dataclass
class GraphResponse:
    status: int
    body: Any = None  # JSON-serialisable, or None
    raw: bytes | bytearray | memoryview | None = None  # a non-JSON body ($value)
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """The mailbox a request addresses (`/me` or `/users/{id|upn}`) and what follows."""

    user: User
    mailbox: Mailbox
    rest: list[str]
    base_path: str  # "/me" or "/users/{ref}", as the caller wrote it


def split_path(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def resolve_target(ctx: SandboxContext, request: GraphRequest) -> Target:
    principal = request.principal
    assert principal is not None
    segments = split_path(request.path)
    if not segments:
        raise errors.unknown_segment("")
    head = segments[0].lower()
    if head == "me":
        if principal.kind != "user" or principal.upn is None:
            raise errors.bad_request(
                "/me request is only valid with delegated authentication flow."
            )
        user = ctx.directory.find(principal.upn)
        if user is None:
            raise errors.invalid_user(principal.upn)
        rest, base_path = segments[1:], "/me"
    elif head == "users":
        if len(segments) < 2:
            raise errors.bad_request("The sandbox implements only mail under /users/{id}.")
        user = ctx.directory.find(segments[1])
        if user is None:
            raise errors.invalid_user(segments[1])
        rest, base_path = segments[2:], f"/users/{segments[1]}"
    else:
        raise errors.unknown_segment(segments[0])
    mailbox = ctx.mail.ensure_mailbox(user)
    return Target(user=user, mailbox=mailbox, rest=rest, base_path=base_path)


_APP_ROLES: dict[str, frozenset[str]] = {
    "read": frozenset({"Mail.Read", "Mail.ReadWrite"}),
    "write": frozenset({"Mail.ReadWrite"}),
    "send": frozenset({"Mail.Send"}),
    "settings_read": frozenset({"MailboxSettings.Read", "MailboxSettings.ReadWrite"}),
    "settings_write": frozenset({"MailboxSettings.ReadWrite"}),
}
_OWN_SCOPES: dict[str, frozenset[str]] = {
    "read": frozenset({"Mail.Read", "Mail.ReadWrite", "Mail.Read.Shared", "Mail.ReadWrite.Shared"}),
    "write": frozenset({"Mail.ReadWrite", "Mail.ReadWrite.Shared"}),
    "send": frozenset({"Mail.Send", "Mail.Send.Shared"}),
    "settings_read": frozenset({"MailboxSettings.Read", "MailboxSettings.ReadWrite"}),
    "settings_write": frozenset({"MailboxSettings.ReadWrite"}),
}
_OTHER_SCOPES: dict[str, frozenset[str]] = {
    "read": frozenset({"Mail.Read.Shared", "Mail.ReadWrite.Shared"}),
    "write": frozenset({"Mail.ReadWrite.Shared"}),
    "send": frozenset({"Mail.Send.Shared"}),
    # MailboxSettings has no `.Shared` variant: a delegated token reaches only its own user's
    # settings and categories.
    "settings_read": frozenset(),
    "settings_write": frozenset(),
}


def authorize(ctx: SandboxContext, principal: Principal, mailbox_user: User, need: Need) -> None:
    """Graph's permission model for mail: app roles reach every mailbox; delegated scopes reach
    the user's own mailbox, and another one only with a `.Shared` scope *and* a mailbox grant
    (Exchange's full-access / send-as permission, `directory.may_access_mailbox`)."""
    if principal.kind == "app":
        if not principal.roles & _APP_ROLES[need]:
            raise errors.access_denied()
        check_management_scope(ctx, principal, mailbox_user)
        return
    own = principal.upn is not None and principal.upn.lower() == mailbox_user.upn
    wanted = _OWN_SCOPES[need] if own else _OTHER_SCOPES[need]
    if not principal.scopes & wanted:
        raise errors.access_denied()
    if not own:
        caller = ctx.directory.find(principal.upn or "")
        if caller is None or not ctx.directory.may_access_mailbox(caller, mailbox_user):
            raise errors.access_denied()


def check_management_scope(ctx: SandboxContext, principal: Principal, mailbox_user: User) -> None:
    """Exchange's RBAC for Applications: an app token reaches only mailboxes in the app's
    management scope. Exchange answers a mailbox outside it exactly like a missing
    permission (403 ErrorAccessDenied), so a client cannot tell the two apart from the
    answer alone."""
    scope = ctx.directory.app_scopes.get(principal.app_id)
    if scope is not None and not scope.covers(mailbox_user):
        raise errors.access_denied()


def throttle_key(principal: Principal, mailbox: Mailbox) -> tuple[str, str]:
    return (principal.app_id, mailbox.upn)


def error_response(
    ctx: SandboxContext, failure: GraphError, request_id: str, client_request_id: str
) -> GraphResponse:
    """Graph's error body for `failure`, dated by the sandbox clock (HTTP and `$batch` alike)."""
    date = ctx.controls.now().strftime("%Y-%m-%dT%H:%M:%S")
    body = errors.error_body(
        failure.code,
        failure.message,
        date=date,
        request_id=request_id,
        client_request_id=client_request_id,
    )
    return GraphResponse(failure.status, body, headers=dict(failure.headers))
