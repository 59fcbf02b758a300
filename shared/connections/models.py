"""The connection record (plain data; the encrypted token cache is stored beside it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ConnectionStatus(StrEnum):
    # No `revoked`: deleting a connection removes its row (and grant) outright, so no stored
    # connection is ever in that state.
    ACTIVE = "active"
    REAUTH_REQUIRED = "reauth_required"
    # Application connections only: the daily check found the mailbox outside the app's
    # Exchange RBAC for Applications scope (or the app's Graph permissions gone).
    OUT_OF_SCOPE = "out_of_scope"


class ConnectionKind(StrEnum):
    # A person connected their mailbox; their sealed MSAL grant is used (`/me`).
    DELEGATED = "delegated"
    # An admin connected a mailbox for the app itself: client-credentials tokens, no grant to
    # store, `/users/{mailbox}`; Exchange's management scope decides what the app reaches.
    APPLICATION = "application"


@dataclass
class Connection:
    id: str  # random, URL-safe, ≥ 128 bits
    owner_oid: str
    owner_tid: str
    mailbox: str  # the connected user's UPN (lower-case)
    scopes: list[str]
    status: ConnectionStatus
    created_at: datetime
    last_used_at: datetime | None = None
    last_refreshed_at: datetime | None = None
    # MSAL's account key in the connection's own token cache ("uid.utid").
    home_account_id: str = ""
    # The time of the due-index hint the connection is armed with (shared/store/due.py).
    due_at: datetime | None = None
    # Claims JSON a resource demanded when the grant could not satisfy it without the person
    # (CAE step-up): the loginUrl carries it, so that reconnecting satisfies it.
    reauth_claims: str | None = None
    kind: ConnectionKind = ConnectionKind.DELEGATED
    # Application connections: who besides the creator (owner_oid) may use it: app ids,
    # user object ids or UPNs (lower-case).
    allowed: tuple[str, ...] = ()
    display_name: str | None = None

    @property
    def is_application(self) -> bool:
        return self.kind is ConnectionKind.APPLICATION
