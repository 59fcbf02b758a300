"""`authenticate_graph`, the check the Graph half runs on every request (in process)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sandbox.context import SandboxContext
from sandbox.directory import GRAPH_APP_ID, GRAPH_RESOURCE
from sandbox.identity.tokens import mint_api_token, mint_graph_token
from sandbox.identity.verify import authenticate_graph, verify_api_token
from sandbox.principal import TokenRejected
from sandbox.settings import SandboxSettings


@pytest.fixture
def ctx(tmp_path: Path) -> SandboxContext:
    return SandboxContext.create(SandboxSettings(state_dir=tmp_path))


def _alice_token(ctx: SandboxContext, audience: str | None = None) -> str:
    alice = ctx.directory.users["alice@contoso.test"]
    return mint_graph_token(
        ctx,
        client_id=ctx.directory.app.client_id,
        user=alice,
        scopes=["Mail.ReadWrite", "User.Read"],
        audience=audience or GRAPH_APP_ID,
    ).value


def test_delegated_token_gives_a_user_principal(ctx: SandboxContext) -> None:
    principal = authenticate_graph(ctx, f"Bearer {_alice_token(ctx)}")

    assert principal.kind == "user"
    assert principal.upn == "alice@contoso.test"
    assert principal.scopes == {"Mail.ReadWrite", "User.Read"}
    assert principal.roles == frozenset()
    assert principal.app_id == ctx.directory.app.client_id
    assert principal.oid == ctx.directory.users["alice@contoso.test"].id
    assert principal.tenant_id == ctx.directory.tenant_id


def test_graph_uri_audience_is_accepted_too(ctx: SandboxContext) -> None:
    principal = authenticate_graph(ctx, f"bearer {_alice_token(ctx, GRAPH_RESOURCE)}")

    assert principal.upn == "alice@contoso.test"


def test_app_token_gives_an_app_principal_with_roles(ctx: SandboxContext) -> None:
    token = mint_graph_token(
        ctx, client_id=ctx.directory.app.client_id, user=None, roles=["Mail.ReadWrite"]
    ).value

    principal = authenticate_graph(ctx, f"Bearer {token}")

    assert principal.kind == "app"
    assert principal.upn is None
    assert principal.roles == {"Mail.ReadWrite"}
    assert principal.scopes == frozenset()


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer not.a.jwt"])
def test_missing_or_malformed_header_is_rejected(ctx: SandboxContext, header: str | None) -> None:
    with pytest.raises(TokenRejected) as rejected:
        authenticate_graph(ctx, header)

    assert rejected.value.code == "InvalidAuthenticationToken"


def test_token_for_another_audience_is_rejected(ctx: SandboxContext) -> None:
    alice = ctx.directory.users["alice@contoso.test"]
    api_token = mint_api_token(ctx, client_id="caller", user=alice, scopes=["access_as_user"])

    with pytest.raises(TokenRejected, match=r"audience|issuer"):
        authenticate_graph(ctx, f"Bearer {api_token.value}")


def test_expired_token_is_rejected_on_the_sandbox_clock(ctx: SandboxContext) -> None:
    token = _alice_token(ctx)
    ctx.controls.set_clock_offset(3601)

    with pytest.raises(TokenRejected, match="expired"):
        authenticate_graph(ctx, f"Bearer {token}")


def test_tampered_token_is_rejected(ctx: SandboxContext) -> None:
    header, payload, signature = _alice_token(ctx).split(".")
    forged = f"{header}.{payload[:-4]}AAAA.{signature}"

    with pytest.raises(TokenRejected):
        authenticate_graph(ctx, f"Bearer {forged}")


def test_token_survives_one_key_roll_and_fails_after_two(ctx: SandboxContext) -> None:
    token = _alice_token(ctx)

    ctx.identity.keys.roll()
    after_one = authenticate_graph(ctx, f"Bearer {token}").upn
    ctx.identity.keys.roll()

    assert after_one == "alice@contoso.test"
    with pytest.raises(TokenRejected):
        authenticate_graph(ctx, f"Bearer {token}")


def test_reset_keeps_keys_so_outstanding_tokens_still_verify(ctx: SandboxContext) -> None:
    token = _alice_token(ctx)

    ctx.reset()

    assert authenticate_graph(ctx, f"Bearer {token}").upn == "alice@contoso.test"


def test_api_token_verifies_for_the_api(ctx: SandboxContext) -> None:
    alice = ctx.directory.users["alice@contoso.test"]
    token = mint_api_token(ctx, client_id="caller", user=alice, scopes=["access_as_user"]).value

    claims = verify_api_token(ctx, token)

    assert claims["aud"] == ctx.directory.app.client_id
    assert claims["scp"] == "access_as_user"


def test_unsigned_token_is_rejected(ctx: SandboxContext) -> None:
    _, payload, _ = _alice_token(ctx).split(".")
    kid = ctx.identity.keys.current.kid
    unsigned_header = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": kid}).encode())
        .rstrip(b"=")
        .decode()
    )

    with pytest.raises(TokenRejected):
        authenticate_graph(ctx, f"Bearer {unsigned_header}.{payload}.")


def test_old_codes_are_pruned_but_recent_ones_kept(ctx: SandboxContext) -> None:
    from sandbox.identity.state import CODE_RETENTION, AuthorizationCode

    now = ctx.controls.now()
    for name, age in (("old", CODE_RETENTION * 2), ("recent", CODE_RETENTION / 2)):
        ctx.identity.codes[name] = AuthorizationCode(
            value=name,
            client_id="c",
            redirect_uri="r",
            upn="alice@contoso.test",
            grants=set(),
            oidc=set(),
            resource_order=[],
            code_challenge="x",
            nonce=None,
            issued_at=now - age,
        )

    ctx.identity.prune_codes(now)

    assert set(ctx.identity.codes) == {"recent"}
