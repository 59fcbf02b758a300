"""How Entra's v2 endpoint reads a `scope` parameter: OIDC scopes, Graph permissions (bare or
prefixed with Graph's URI / app id) and this API's scopes (prefixed with its app id URI).

A bare permission such as `Mail.ReadWrite` means Microsoft Graph, as on Entra. A request can
name several resources (for consent) but a token is for one resource: the first named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sandbox.directory import GRAPH_APP_ID, GRAPH_DELEGATED_SCOPES, GRAPH_RESOURCE, Directory

Resource = Literal["graph", "api"]

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
DEFAULT = ".default"
GRAPH_PERMISSIONS = tuple(s for s in GRAPH_DELEGATED_SCOPES if s not in OIDC_SCOPES)


class InvalidScope(Exception):
    """A scope names an unknown resource or permission (AADSTS70011 / AADSTS500011)."""

    def __init__(self, scope: str, unknown_resource: bool = False) -> None:
        super().__init__(scope)
        self.scope = scope
        self.unknown_resource = unknown_resource


@dataclass
class ScopeRequest:
    oidc: set[str] = field(default_factory=set)
    # Permissions per resource, in the order resources were first named.
    permissions: dict[Resource, list[str]] = field(default_factory=dict)

    @property
    def first_resource(self) -> Resource | None:
        return next(iter(self.permissions), None)

    def add(self, resource: Resource, permission: str) -> None:
        perms = self.permissions.setdefault(resource, [])
        if permission not in perms:
            perms.append(permission)

    def grants(self) -> set[tuple[Resource, str]]:
        return {(r, p) for r, perms in self.permissions.items() for p in perms}


def _canonical(permission: str, known: tuple[str, ...], scope: str) -> str:
    if permission == DEFAULT:
        return DEFAULT
    for candidate in known:
        if candidate.lower() == permission.lower():
            return candidate
    raise InvalidScope(scope)


def parse_scope(raw: str | None, directory: Directory) -> ScopeRequest:
    """Split a space-separated `scope` parameter into OIDC scopes and resource permissions."""
    request = ScopeRequest()
    app = directory.app
    api_prefixes = (app.app_id_uri.lower() + "/", app.client_id.lower() + "/")
    graph_prefixes = (GRAPH_RESOURCE.lower() + "/", GRAPH_APP_ID.lower() + "/")
    for scope in (raw or "").split():
        lowered = scope.lower()
        if lowered in OIDC_SCOPES:
            request.oidc.add(lowered)
            continue
        graph_prefix = next((p for p in graph_prefixes if lowered.startswith(p)), None)
        api_prefix = next((p for p in api_prefixes if lowered.startswith(p)), None)
        if graph_prefix is not None:
            permission = scope[len(graph_prefix) :]
            request.add("graph", _canonical(permission, GRAPH_PERMISSIONS, scope))
        elif api_prefix is not None:
            permission = scope[len(api_prefix) :]
            request.add("api", _canonical(permission, app.scopes, scope))
        elif "/" in scope or ":" in scope:
            raise InvalidScope(scope, unknown_resource=True)
        else:
            request.add("graph", _canonical(scope, GRAPH_PERMISSIONS, scope))
    return request


def expand_default(resource: Resource, permissions: list[str], directory: Directory) -> list[str]:
    """`.default` asks for every permission configured on the registration for the resource
    (static consent); in the sandbox that is every delegated permission it knows.
    """
    if DEFAULT not in permissions:
        return list(permissions)
    everything = list(GRAPH_PERMISSIONS) if resource == "graph" else list(directory.app.scopes)
    return [*dict.fromkeys([p for p in permissions if p != DEFAULT] + everything)]


def qualified(resource: Resource, permission: str, directory: Directory) -> str:
    """The form Entra echoes in a token response's `scope`: Graph's permissions bare,
    other resources' prefixed with their app id URI.
    """
    if resource == "graph":
        return permission
    return f"{directory.app.app_id_uri}/{permission}"
