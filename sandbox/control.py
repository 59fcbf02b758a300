"""The control API under `/_sandbox` (loopback only): reset, users, tokens, request log,
faults, latency, clock, signing keys, identity behaviour switches, the app's credentials
(federated records, certificates, managed identities) and claims challenges.

Request bodies are validated with pydantic models that forbid unknown fields, so a typo in a
test's control call fails with 400 instead of silently doing nothing.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.directory import ManagementScope, stable_id
from sandbox.identity.authorize import AUTHORIZE_ERROR_DEFAULTS
from sandbox.identity.claims import ClaimsDemand
from sandbox.identity.credentials import EXCHANGE_AUDIENCE, FederatedCredential
from sandbox.identity.credentials import register_certificate as parse_certificate
from sandbox.identity.managed_identity import PATH as IDENTITY_PATH
from sandbox.identity.state import InjectedError
from sandbox.identity.tokens import CALLER_APP_ID, mint_api_token, v2_issuer

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

UPN_PATTERN = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+$")

REFRESH_ERROR_DEFAULTS: dict[int, str] = {
    700082: "The refresh token has expired due to inactivity. The token was issued on "
    "{issued} and was inactive for 90.00:00:00.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is "
    "needed. The user might have changed or reset their password.",
    70008: "The provided authorization code or refresh token has expired due to inactivity. "
    "Send a new interactive authorization request for this user and resource.",
    65001: "The user or administrator has not consented to use the application. Send an "
    "interactive authorization request for this user and resource.",
    50076: "Due to a configuration change made by your administrator, or because you moved to "
    "a new location, you must use multi-factor authentication to access the resource.",
    50000: "There was an error issuing a token or an issue with our sign-in service.",
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class UserBody(_Body):
    upn: str
    display_name: str | None = Field(default=None, alias="displayName")
    shared_mailbox_access: list[str] = Field(default_factory=list, alias="sharedMailboxAccess")
    shared_mailbox: bool = Field(default=False, alias="sharedMailbox")


class FaultBody(_Body):
    method: str | None = None
    path_regex: str = Field(alias="pathRegex")
    status: int = Field(ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | None = None
    times: int | None = Field(default=None, ge=1)
    fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0, le=600_000, alias="latencyMs")

    @model_validator(mode="after")
    def _regex_compiles(self) -> FaultBody:
        try:
            re.compile(self.path_regex)
        except re.error as bad:
            raise ValueError(f"pathRegex does not compile: {bad}") from None
        return self


class LatencyBody(_Body):
    identity_ms: int = Field(default=0, ge=0, le=600_000, alias="identityMs")
    graph_ms: int = Field(default=0, ge=0, le=600_000, alias="graphMs")


class ClockBody(_Body):
    offset_seconds: float = Field(alias="offsetSeconds")


class TokenBody(_Body):
    user: str | None = None
    app: bool = False
    scopes: list[str] | None = None
    roles: list[str] | None = None
    # Security groups' object ids, as Entra's `groups` claim (a registration set to emit them).
    groups: list[str] | None = None
    client_id: str | None = Field(default=None, alias="clientId")
    lifetime_seconds: int | None = Field(default=None, ge=1, alias="lifetimeSeconds")

    @model_validator(mode="after")
    def _user_or_app(self) -> TokenBody:
        if (self.user is None) == (not self.app):
            raise ValueError('give either "user" or "app": true')
        if self.app and self.scopes is not None:
            raise ValueError('app tokens carry "roles", not "scopes"')
        if self.user is not None and self.roles is not None:
            raise ValueError('user tokens carry "scopes", not "roles"')
        if self.app and self.groups is not None:
            raise ValueError('"groups" is a claim of user tokens')
        return self


class ConsentBody(_Body):
    auto: bool


class RefreshModeBody(_Body):
    strict: bool


class AuthorizeErrorBody(_Body):
    error: str
    code: str | None = None  # "AADSTS65004"; defaults per error
    description: str | None = None
    upn: str | None = None  # only sign-ins whose login_hint is this user
    times: int | None = Field(default=1, ge=1)


class RefreshErrorBody(_Body):
    error: str = "invalid_grant"
    code: str = "AADSTS700082"
    description: str | None = None
    suberror: str | None = None
    upn: str | None = None
    times: int | None = Field(default=1, ge=1)
    status: int = Field(default=400, ge=400, le=599)


class RevokeBody(_Body):
    upn: str


class AppRolesBody(_Body):
    resource: Literal["api", "graph"]
    roles: list[str]


# Application permissions of Microsoft Graph an admin may grant the app (admin consent).
GRANTABLE_GRAPH_ROLES = frozenset(
    {
        "Mail.Read",
        "Mail.ReadWrite",
        "Mail.Send",
        "MailboxSettings.Read",
        "MailboxSettings.ReadWrite",
    }
)


class AppGrantsBody(_Body):
    roles: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_roles(self) -> AppGrantsBody:
        unknown = sorted(set(self.roles) - GRANTABLE_GRAPH_ROLES)
        if unknown:
            raise ValueError(f"not a grantable Graph application permission: {unknown}")
        return self


class AppScopeBody(_Body):
    all: bool = False
    mailboxes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _all_or_list(self) -> AppScopeBody:
        if self.all and self.mailboxes:
            raise ValueError('give either "all": true or "mailboxes", not both')
        return self


class ManagedIdentityBody(_Body):
    client_id: str | None = Field(default=None, alias="clientId", pattern=r"^[0-9a-fA-F-]{36}$")


class FederatedCredentialBody(_Body):
    name: str | None = Field(default=None, max_length=120)
    issuer: str = Field(min_length=1, max_length=600)
    subject: str = Field(min_length=1, max_length=600)
    audiences: list[str] = Field(default_factory=lambda: [EXCHANGE_AUDIENCE], min_length=1)


class CertificateBody(_Body):
    certificate: str = Field(min_length=1, max_length=64 * 1024)  # PEM


class ClaimsChallengeBody(_Body):
    user: str
    mode: Literal["refresh", "interaction"]


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "message": message}, status_code=400)


async def _parse(request: Request, model: type[M]) -> M | JSONResponse:
    try:
        raw = await request.body()
        return model.model_validate_json(raw or b"{}")
    except ValidationError as invalid:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in invalid.errors()
        )
        return _bad_request(details)


def _aadsts_number(code: str) -> int | None:
    match = re.fullmatch(r"(?:AADSTS)?(\d{5,7})", code.strip(), flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "upn": user.upn,
        "id": user.id,
        "displayName": user.display_name,
        "sharedMailboxAccess": sorted(user.shared_mailbox_access),
        "sharedMailbox": user.is_shared_mailbox,
    }


def routes(ctx: SandboxContext) -> list[BaseRoute]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def reset(request: Request) -> Response:
        ctx.reset()
        logger.info("sandbox reset")
        return Response(status_code=204)

    async def list_users(request: Request) -> Response:
        return JSONResponse([_user_json(u) for u in ctx.directory.users.values()])

    async def add_user(request: Request) -> Response:
        body = await _parse(request, UserBody)
        if isinstance(body, JSONResponse):
            return body
        upn = body.upn.strip().lower()
        if not UPN_PATTERN.match(upn):
            return _bad_request(f"upn '{body.upn}' is not a user principal name")
        domain = ctx.directory.domain.lower()
        if upn.rsplit("@", 1)[1] != domain:
            # Entra only accepts UPN suffixes that are verified domains of the tenant.
            return _bad_request(f"upn must be in the tenant's verified domain '{domain}'")
        if upn in ctx.directory.users:
            return JSONResponse(
                {"error": "conflict", "message": f"user '{upn}' already exists"}, status_code=409
            )
        missing = [m for m in body.shared_mailbox_access if m.lower() not in ctx.directory.users]
        if missing:
            return _bad_request(f"sharedMailboxAccess names unknown mailboxes: {missing}")
        user = ctx.directory.add_user(
            upn, body.display_name, body.shared_mailbox_access, body.shared_mailbox
        )
        ctx.mail.ensure_mailbox(user)
        return JSONResponse(_user_json(user), status_code=201)

    async def tokens(request: Request) -> Response:
        return JSONResponse(ctx.identity.issued)

    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.controls.requests.clear()
            return Response(status_code=204)
        return JSONResponse(list(ctx.controls.requests))

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.controls.faults.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse([f.describe() for f in ctx.controls.faults])
        body = await _parse(request, FaultBody)
        if isinstance(body, JSONResponse):
            return body
        fault = ctx.controls.add_fault(
            path_regex=body.path_regex,
            status=body.status,
            method=body.method,
            headers=body.headers,
            body=body.body,
            times=body.times,
            fraction=body.fraction,
            latency_ms=body.latency_ms,
        )
        return JSONResponse({"id": fault.id}, status_code=201)

    async def delete_fault(request: Request) -> Response:
        if ctx.controls.remove_fault(request.path_params["fault_id"]):
            return Response(status_code=204)
        return JSONResponse({"error": "not_found", "message": "no such fault"}, status_code=404)

    async def latency(request: Request) -> Response:
        body = await _parse(request, LatencyBody)
        if isinstance(body, JSONResponse):
            return body
        ctx.controls.latency.identity_ms = body.identity_ms
        ctx.controls.latency.graph_ms = body.graph_ms
        return Response(status_code=204)

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _parse(request, ClockBody)
            if isinstance(body, JSONResponse):
                return body
            ctx.controls.set_clock_offset(body.offset_seconds)
            return Response(status_code=204)
        return JSONResponse(
            {
                "now": ctx.controls.now().isoformat().replace("+00:00", "Z"),
                "offsetSeconds": ctx.controls.clock_offset.total_seconds(),
            }
        )

    async def mint_token(request: Request) -> Response:
        body = await _parse(request, TokenBody)
        if isinstance(body, JSONResponse):
            return body
        client_id = body.client_id or CALLER_APP_ID
        if body.user is not None:
            user = ctx.directory.users.get(body.user.lower())
            if user is None:
                return _bad_request(f"unknown user '{body.user}'")
            if user.is_shared_mailbox:
                return _bad_request(f"'{user.upn}' is a shared mailbox and cannot sign in")
            scopes = body.scopes if body.scopes is not None else list(ctx.directory.app.scopes)
            issued = mint_api_token(
                ctx,
                client_id=client_id,
                user=user,
                scopes=scopes,
                lifetime=body.lifetime_seconds,
                groups=body.groups,
            )
        else:
            issued = mint_api_token(
                ctx,
                client_id=client_id,
                user=None,
                roles=body.roles or [],
                lifetime=body.lifetime_seconds,
            )
        return JSONResponse({"access_token": issued.value, "expires_in": issued.expires_in})

    async def roll_keys(request: Request) -> Response:
        key = ctx.identity.keys.roll()
        return JSONResponse({"kid": key.kid}, status_code=201)

    async def consent(request: Request) -> Response:
        body = await _parse(request, ConsentBody)
        if isinstance(body, JSONResponse):
            return body
        ctx.identity.auto_consent = body.auto
        return Response(status_code=204)

    async def refresh_mode(request: Request) -> Response:
        body = await _parse(request, RefreshModeBody)
        if isinstance(body, JSONResponse):
            return body
        ctx.identity.strict_refresh = body.strict
        return Response(status_code=204)

    async def authorize_error(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.identity.authorize_errors.clear()
            return Response(status_code=204)
        body = await _parse(request, AuthorizeErrorBody)
        if isinstance(body, JSONResponse):
            return body
        default_code, default_text = AUTHORIZE_ERROR_DEFAULTS.get(
            body.error, (50000, "There was an error signing you in.")
        )
        code = _aadsts_number(body.code) if body.code else default_code
        if code is None:
            return _bad_request("code must look like AADSTS65004")
        injected = InjectedError(
            error=body.error,
            code=code,
            description=body.description or default_text,
            upn=body.upn.lower() if body.upn else None,
            times=body.times,
        )
        ctx.identity.authorize_errors.append(injected)
        return JSONResponse(injected.describe(), status_code=201)

    async def refresh_error(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.identity.refresh_errors.clear()
            return Response(status_code=204)
        body = await _parse(request, RefreshErrorBody)
        if isinstance(body, JSONResponse):
            return body
        code = _aadsts_number(body.code)
        if code is None:
            return _bad_request("code must look like AADSTS700082")
        description = body.description or REFRESH_ERROR_DEFAULTS.get(
            code, "Provided grant is invalid or malformed."
        ).replace("{issued}", ctx.controls.now().strftime("%Y-%m-%dT%H:%M:%S.0000000Z"))
        suberror = body.suberror
        if suberror is None and code == 65001:
            suberror = "consent_required"
        injected = InjectedError(
            error=body.error,
            code=code,
            description=description,
            suberror=suberror,
            upn=body.upn.lower() if body.upn else None,
            times=body.times,
            status=body.status,
        )
        ctx.identity.refresh_errors.append(injected)
        return JSONResponse(injected.describe(), status_code=201)

    async def revoke(request: Request) -> Response:
        body = await _parse(request, RevokeBody)
        if isinstance(body, JSONResponse):
            return body
        if body.upn.lower() not in ctx.directory.users:
            return _bad_request(f"unknown user '{body.upn}'")
        revoked = ctx.identity.revoke_user(body.upn)
        return JSONResponse({"revoked": revoked})

    async def app_roles(request: Request) -> Response:
        body = await _parse(request, AppRolesBody)
        if isinstance(body, JSONResponse):
            return body
        ctx.identity.app_roles[body.resource] = tuple(body.roles)
        return Response(status_code=204)

    def _known_app(request: Request) -> str | None:
        client_id = str(request.path_params["client_id"]).lower()
        return client_id if client_id == ctx.directory.app.client_id else None

    def _no_such_app() -> JSONResponse:
        return JSONResponse(
            {"error": "not_found", "message": "no app registration with this client id"},
            status_code=404,
        )

    async def app_grants(request: Request) -> Response:
        """Admin consent to Graph application permissions: POST sets them, DELETE revokes
        them all (tokens issued later carry no `roles`), GET shows them."""
        if _known_app(request) is None:
            return _no_such_app()
        if request.method == "DELETE":
            ctx.identity.app_roles["graph"] = ()
            return Response(status_code=204)
        if request.method == "POST":
            body = await _parse(request, AppGrantsBody)
            if isinstance(body, JSONResponse):
                return body
            ctx.identity.app_roles["graph"] = tuple(sorted(set(body.roles)))
        return JSONResponse({"roles": list(ctx.identity.app_roles.get("graph", ()))})

    async def app_scope(request: Request) -> Response:
        """Exchange RBAC for Applications: the mailboxes the app's permissions reach."""
        client_id = _known_app(request)
        if client_id is None:
            return _no_such_app()
        if request.method == "POST":
            body = await _parse(request, AppScopeBody)
            if isinstance(body, JSONResponse):
                return body
            mailboxes = {m.strip().lower() for m in body.mailboxes}
            unknown = sorted(m for m in mailboxes if ctx.directory.find(m) is None)
            if unknown:
                return _bad_request(f"mailboxes names unknown mailboxes: {unknown}")
            ctx.directory.app_scopes[client_id] = ManagementScope(
                all=body.all, mailboxes={u.upn for m in mailboxes if (u := ctx.directory.find(m))}
            )
        elif request.method == "DELETE":
            # No assignment left: the Entra grant alone decides (every mailbox).
            ctx.directory.app_scopes.pop(client_id, None)
        scope = ctx.directory.app_scopes.get(client_id)
        if scope is None:
            return JSONResponse({"scoped": False, "all": True, "mailboxes": []})
        return JSONResponse(
            {"scoped": True, "all": scope.all, "mailboxes": sorted(scope.mailboxes)}
        )

    async def managed_identity(request: Request) -> Response:
        body = await _parse(request, ManagedIdentityBody)
        if isinstance(body, JSONResponse):
            return body
        state = ctx.identity.credentials
        identity = state.add_managed_identity(body.client_id)
        return JSONResponse(
            {
                "clientId": identity.client_id,
                "principalId": identity.principal_id,
                "identityEndpoint": f"{ctx.settings.base_url}{IDENTITY_PATH}",
                "identityHeader": state.identity_header,
                # What a federated credential for this identity names (Entra's values).
                "issuer": v2_issuer(ctx),
                "subject": identity.principal_id,
                "audience": EXCHANGE_AUDIENCE,
            },
            status_code=201,
        )

    async def federated_credentials(request: Request) -> Response:
        records = ctx.identity.credentials.federated
        if request.method == "DELETE":
            records.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse([r.describe() for r in records])
        body = await _parse(request, FederatedCredentialBody)
        if isinstance(body, JSONResponse):
            return body
        record = FederatedCredential(
            id=stable_id(f"fic:{len(records)}:{body.issuer}:{body.subject}"),
            name=body.name or f"credential-{len(records) + 1}",
            issuer=body.issuer,
            subject=body.subject,
            audiences=tuple(body.audiences),
        )
        records.append(record)
        return JSONResponse(record.describe(), status_code=201)

    async def certificates(request: Request) -> Response:
        registered = ctx.identity.credentials.certificates
        if request.method == "DELETE":
            registered.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse([c.describe() for c in registered])
        body = await _parse(request, CertificateBody)
        if isinstance(body, JSONResponse):
            return body
        try:
            certificate = parse_certificate(body.certificate)
        except ValueError:
            return _bad_request("certificate must be a PEM X.509 certificate")
        registered.append(certificate)
        return JSONResponse(certificate.describe(), status_code=201)

    async def claims_challenge(request: Request) -> Response:
        demands = ctx.identity.claims_demands
        if request.method == "DELETE":
            demands.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse([d.describe() for d in demands])
        body = await _parse(request, ClaimsChallengeBody)
        if isinstance(body, JSONResponse):
            return body
        if body.user.lower() not in ctx.directory.users:
            return _bad_request(f"unknown user '{body.user}'")
        demand = ClaimsDemand.create(body.user, body.mode, ctx.controls.timestamp())
        demands.append(demand)
        return JSONResponse(demand.describe(), status_code=201)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/users", list_users, methods=["GET"]),
        Route("/users", add_user, methods=["POST"]),
        Route("/tokens", tokens, methods=["GET"]),
        Route("/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/faults/{fault_id}", delete_fault, methods=["DELETE"]),
        Route("/latency", latency, methods=["POST"]),
        Route("/clock", clock, methods=["GET", "POST"]),
        Route("/token", mint_token, methods=["POST"]),
        Route("/keys/roll", roll_keys, methods=["POST"]),
        Route("/identity/consent", consent, methods=["POST"]),
        Route("/identity/refresh-mode", refresh_mode, methods=["POST"]),
        Route("/identity/authorize-error", authorize_error, methods=["POST", "DELETE"]),
        Route("/identity/refresh-error", refresh_error, methods=["POST", "DELETE"]),
        Route("/identity/revoke", revoke, methods=["POST"]),
        Route("/identity/app-roles", app_roles, methods=["POST"]),
        Route("/apps/{client_id}/grants", app_grants, methods=["GET", "POST", "DELETE"]),
        Route("/apps/{client_id}/scope", app_scope, methods=["GET", "POST", "DELETE"]),
        Route("/managed-identity", managed_identity, methods=["POST"]),
        Route(
            "/identity/federated-credentials",
            federated_credentials,
            methods=["GET", "POST", "DELETE"],
        ),
        Route("/identity/certificates", certificates, methods=["GET", "POST", "DELETE"]),
        Route("/claims-challenge", claims_challenge, methods=["GET", "POST", "DELETE"]),
    ]
