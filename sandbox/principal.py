"""Who is calling the sandbox's Graph: the validated claims of a Graph access token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "app"]
    tenant_id: str
    app_id: str
    oid: str
    upn: str | None  # the signed-in user's UPN for delegated tokens, None for app tokens
    scopes: frozenset[str]  # delegated permissions (`scp`), e.g. {"Mail.ReadWrite"}
    roles: frozenset[str]  # application permissions (`roles`)
    # Client capabilities the token carries (`xms_cc`); CP1 = can answer claims challenges.
    capabilities: frozenset[str] = frozenset()


class TokenRejected(Exception):
    """A Graph request's bearer token is missing, malformed, expired, or not for Graph.

    `code` is Graph's error code for the 401 body (InvalidAuthenticationToken).
    """

    def __init__(self, message: str, code: str = "InvalidAuthenticationToken") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
