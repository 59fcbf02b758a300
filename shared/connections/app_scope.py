"""What a Graph refusal means for an application connection, and what an admin must do.

Exchange Online answers a mailbox outside the app's RBAC for Applications scope and a
missing application permission alike: 403 `ErrorAccessDenied` "Access is denied. Check
credentials and try again.". The handle fetches a fresh app token once (an admin may have
changed the app's permissions) and reads its `roles`. A connection created while the token
carried Entra-granted permissions (kept as its `scopes`) whose fresh token lacks the one the
request needs lost that grant: 409 `reauth_required` without a loginUrl (an admin must grant
it again). Otherwise the mailbox is out of scope: 403 `mailbox_out_of_scope`, naming the
Exchange command that fixes it. That includes deployments where Exchange's RBAC for
Applications alone grants the permissions: their tokens carry no `roles` at all, and the
Exchange command is the fix there too. Pure functions: no SDK is loaded here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING

from shared.errors import MailboxOutOfScope, ReauthRequired

if TYPE_CHECKING:
    from shared.graph.client import GraphRequest

# What each kind of Graph request needs of the app (any one of the set).
MAIL_ROLES = frozenset({"Mail.Read", "Mail.ReadWrite", "Mail.Send"})
READ_ROLES = frozenset({"Mail.Read", "Mail.ReadWrite"})
WRITE_ROLES = frozenset({"Mail.ReadWrite"})
SEND_ROLES = frozenset({"Mail.Send"})


def rbac_command(client_id: str, mailbox: str) -> str:
    """The Exchange Online PowerShell an administrator runs to bring `mailbox` into the app's
    scope (docs/deploy.md has the whole procedure)."""
    return (
        f'New-ManagementScope -Name "Outlook Integration API" -RecipientRestrictionFilter '
        f"\"PrimarySmtpAddress -eq '{mailbox}'\"; "
        f'New-ManagementRoleAssignment -App {client_id} -Role "Application Mail.ReadWrite" '
        f'-CustomResourceScope "Outlook Integration API"; '
        f'New-ManagementRoleAssignment -App {client_id} -Role "Application Mail.Send" '
        f'-CustomResourceScope "Outlook Integration API"'
    )


def out_of_scope(client_id: str, mailbox: str) -> MailboxOutOfScope:
    return MailboxOutOfScope(
        "Exchange Online does not let this app reach the mailbox: it is outside the app's "
        "RBAC for Applications management scope. An Exchange administrator must add it, "
        f"e.g.: {rbac_command(client_id, mailbox)}"
    )


def admin_consent_required() -> ReauthRequired:
    return ReauthRequired(
        None,
        "The app no longer holds the Microsoft Graph application permissions this mailbox "
        "needs (Mail.ReadWrite, Mail.Send). An administrator must grant them again (admin "
        "consent); no sign-in by a person can restore them.",
    )


def needed_roles(request: GraphRequest) -> frozenset[str]:
    """The application permissions that let the app make `request` (any one of them)."""
    last = request.path.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    if last in _SENDING:
        return SEND_ROLES
    return READ_ROLES if request.is_read_only else WRITE_ROLES


_SENDING = frozenset({"sendMail", "send", "reply", "replyAll", "forward"})


def token_roles(token: str) -> frozenset[str]:
    """The `roles` of a Graph app token. Read without verifying: the token came straight from
    Entra over TLS to us, and is only read to explain a refusal Graph already made."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        return frozenset()
    roles = claims.get("roles") if isinstance(claims, dict) else None
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(r for r in roles if isinstance(r, str))
