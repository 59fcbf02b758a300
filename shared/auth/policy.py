"""Who may do what: the API's app roles and the per-connection ownership rule.

A delegated caller (a person, `scp`) acts only on connections they own (`oid` + `tid`); an
application caller (`roles`) acts on every connection of the tenant, reading with
`Connections.Read.All` and reading or writing with `Connections.ReadWrite.All`.

Application (app-only) connections are created and changed by admins: callers holding the
app role `Connections.Admin`, or people in the ADMIN_GROUP_ID group. Such a connection is
used by its creator and by whoever its allow-list names (an app id, a user object id or a
UPN), besides the tenant-wide roles above.
"""

from __future__ import annotations

from shared.auth.caller import Caller
from shared.errors import ConnectionNotFound, Forbidden

# The app roles this API's registration defines (app manifest `appRoles[].value`).
ROLE_READ_WRITE_ALL = "Connections.ReadWrite.All"
ROLE_READ_ALL = "Connections.Read.All"
ROLE_ADMIN = "Connections.Admin"
API_ROLES = frozenset({ROLE_READ_WRITE_ALL, ROLE_READ_ALL})


def _app_may(caller: Caller, *, write: bool) -> bool:
    if write:
        return ROLE_READ_WRITE_ALL in caller.roles
    return bool(caller.roles & API_ROLES)


def is_connections_admin(caller: Caller, admin_group_id: str | None) -> bool:
    """May create application connections and change who uses them."""
    if ROLE_ADMIN in caller.roles:
        return True
    return (
        caller.kind == "user"
        and admin_group_id is not None
        and admin_group_id.lower() in caller.groups
    )


def require_connections_admin(caller: Caller, admin_group_id: str | None) -> None:
    if not is_connections_admin(caller, admin_group_id):
        raise Forbidden(
            f"Only callers with the app role {ROLE_ADMIN} (or members of the admin group) may "
            "create or change application connections."
        )


def caller_identities(caller: Caller) -> frozenset[str]:
    """What an application connection's allow-list may name for this caller: a person by
    object id or UPN, an application by its app id or service principal object id. A
    person's client app id is never one of them: everyone using that client shares it."""
    if caller.kind == "user":
        names = {caller.oid.lower()}
        if caller.upn:
            names.add(caller.upn.lower())
        return frozenset(names)
    return frozenset({caller.app_id.lower(), caller.oid.lower()})


def may_use_application_connection(
    caller: Caller, owner_oid: str, owner_tid: str, allowed: tuple[str, ...]
) -> bool:
    if caller.tenant_id != owner_tid:
        return False
    if caller.oid == owner_oid:
        return True
    return bool(caller_identities(caller) & {a.lower() for a in allowed})


def require_api_access(caller: Caller, *, write: bool = False) -> None:
    """Refuse an application that holds none of this API's roles (or, for `write`, not the
    read-write one) with 403 `forbidden`.

    403 rather than 404 here: the refusal says nothing about any connection, only that the
    app was not granted this API. The authenticator applies the `write=False` form to every
    bearer route; operations that change something without naming a connection call it with
    `write=True`. Delegated callers always pass: what they may touch is decided per connection.
    """
    if write is False and ROLE_ADMIN in caller.roles:
        return  # an admin app reaches the routes; each connection is checked on its own
    if caller.kind == "app" and not _app_may(caller, write=write):
        needed = ROLE_READ_WRITE_ALL if write else f"{ROLE_READ_WRITE_ALL} or {ROLE_READ_ALL}"
        raise Forbidden(f"The application needs the app role {needed} for this operation.")


def authorize_connection(caller: Caller, owner_oid: str, owner_tid: str, *, write: bool) -> None:
    """Allow the caller to read (or `write`) the connection owned by `owner_oid`@`owner_tid`.

    A person who is not the owner gets 404 `connection_not_found`, exactly what a
    connection id that does not exist answers: a 403 would confirm that the id is someone
    else's connection (an existence oracle). An application with `Connections.Read.All`
    that tries to write gets 403: it can list every connection anyway, so there is nothing
    to hide, and the answer names the missing role. An application with no role at all is
    already refused by the authenticator; it gets 404 here too, should it ever get this far.
    """
    if caller.kind == "user":
        if caller.oid != owner_oid or caller.tenant_id != owner_tid:
            raise ConnectionNotFound("No such connection.")
        return
    if caller.tenant_id != owner_tid or not caller.roles & API_ROLES:
        raise ConnectionNotFound("No such connection.")
    require_api_access(caller, write=write)


def authorize_application_connection(
    caller: Caller, owner_oid: str, owner_tid: str, allowed: tuple[str, ...], *, write: bool
) -> None:
    """Allow the caller to use an application connection: its creator or someone on its
    allow-list (read and write alike: the allow-list grants use, not a kind of use), or an
    application with a tenant-wide role. Anyone else gets 404, as for delegated ones."""
    if may_use_application_connection(caller, owner_oid, owner_tid, allowed):
        return
    authorize_connection(caller, owner_oid, owner_tid, write=write)


def lists_all_connections(caller: Caller) -> bool:
    """True when `GET /api/connections` lists every connection (an app with a role);
    otherwise it lists only the caller's own."""
    return caller.kind == "app" and _app_may(caller, write=False)
