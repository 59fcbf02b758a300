"""The sandbox tenant's directory: the tenant, its users (and shared mailboxes), and the one
app registration the product uses. Identity and Graph both read it; the control API adds to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

TENANT_ID = "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b"
TENANT_DOMAIN = "contoso.test"

CLIENT_ID = "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10"
# A sandbox-only secret: it is also in local.settings.sample.json and opens nothing real.
CLIENT_SECRET = "sandbox-secret~3f1c8a5e-not-for-production"
APP_ID_URI = f"api://{CLIENT_ID}"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:7071/api/auth/callback"
# The app's "My connections" portal signs people in (OpenID Connect) with its own callback.
DEFAULT_PORTAL_REDIRECT_URI = "http://127.0.0.1:7071/api/portal/callback"
API_SCOPE = "access_as_user"
APP_ROLES = ("Connections.ReadWrite.All", "Connections.Read.All")

# Microsoft Graph's well-known application id and resource URI, as Entra uses them.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"

# Delegated Graph permissions the app registration may be granted (auto-consented).
GRAPH_DELEGATED_SCOPES = (
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Mail.Read.Shared",
    "Mail.ReadWrite.Shared",
    "Mail.Send.Shared",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "User.Read",
    "offline_access",
    "openid",
    "profile",
    "email",
)


def stable_id(name: str) -> str:
    """Deterministic GUIDs so that object ids survive a reset (tests compare them)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{name}"))


@dataclass
class User:
    upn: str
    display_name: str
    id: str
    # Mailboxes (by UPN) this user may read and send as, besides their own.
    shared_mailbox_access: set[str] = field(default_factory=set)
    # A shared mailbox has no sign-in of its own.
    is_shared_mailbox: bool = False


@dataclass
class AppRegistration:
    client_id: str
    client_secret: str
    app_id_uri: str
    redirect_uris: list[str]
    scopes: tuple[str, ...]
    roles: tuple[str, ...]


@dataclass
class ManagementScope:
    """Exchange Online RBAC for Applications: the mailboxes an app's application permissions
    reach (`New-ManagementRoleAssignment -App … -CustomResourceScope …`). `all` stands for
    an assignment without a scope (every mailbox of the organization)."""

    all: bool = False
    mailboxes: set[str] = field(default_factory=set)  # lower-case UPNs

    def covers(self, mailbox: User) -> bool:
        return self.all or mailbox.upn in self.mailboxes


@dataclass
class Directory:
    tenant_id: str
    domain: str
    app: AppRegistration
    users: dict[str, User] = field(default_factory=dict)  # keyed by lower-case UPN
    # Per client id. An app with no entry is not restricted by Exchange: its Entra grant
    # reaches every mailbox, as Graph's application permissions do without RBAC scoping.
    app_scopes: dict[str, ManagementScope] = field(default_factory=dict)

    def add_user(
        self,
        upn: str,
        display_name: str | None = None,
        shared_mailbox_access: list[str] | None = None,
        is_shared_mailbox: bool = False,
    ) -> User:
        key = upn.lower()
        user = User(
            upn=key,
            display_name=display_name or key.split("@", 1)[0].capitalize(),
            id=stable_id(key),
            shared_mailbox_access={m.lower() for m in shared_mailbox_access or []},
            is_shared_mailbox=is_shared_mailbox,
        )
        self.users[key] = user
        return user

    def find(self, id_or_upn: str) -> User | None:
        """Resolve `/users/{id|upn}` as Graph does: by object id or (case-insensitive) UPN."""
        key = id_or_upn.lower()
        if key in self.users:
            return self.users[key]
        return next((u for u in self.users.values() if u.id == key), None)

    def may_access_mailbox(self, user: User, mailbox: User) -> bool:
        return user.upn == mailbox.upn or mailbox.upn in user.shared_mailbox_access


def default_directory(extra_redirect_uris: tuple[str, ...] = ()) -> Directory:
    directory = Directory(
        tenant_id=TENANT_ID,
        domain=TENANT_DOMAIN,
        app=AppRegistration(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            app_id_uri=APP_ID_URI,
            redirect_uris=[DEFAULT_REDIRECT_URI, DEFAULT_PORTAL_REDIRECT_URI, *extra_redirect_uris],
            scopes=(API_SCOPE,),
            roles=APP_ROLES,
        ),
    )
    directory.add_user("alice@contoso.test", "Alice Example", ["support@contoso.test"])
    directory.add_user("bob@contoso.test", "Bob Example")
    directory.add_user("support@contoso.test", "Contoso Support", is_shared_mailbox=True)
    # The product's app is scoped to the default mailboxes; a mailbox added later is outside
    # until a test widens the scope (POST /_sandbox/apps/{clientId}/scope).
    directory.app_scopes[CLIENT_ID] = ManagementScope(
        mailboxes={"alice@contoso.test", "bob@contoso.test", "support@contoso.test"}
    )
    return directory
