"""Bearer-token validation with hand-forged tokens: each refusal, its reason, its audit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from shared.audit import MemoryAuditSink, Outcome
from shared.auth.jwks import SigningKeys
from shared.auth.policy import ROLE_READ_ALL, ROLE_READ_WRITE_ALL
from shared.auth.tokens import MAX_TOKEN_BYTES, JwtCallerAuthenticator
from shared.errors import AuthorityUnavailable, Forbidden, Unauthorized
from tests.unit.auth.conftest import COOLDOWN_SECONDS
from tests.unit.auth.forge import (
    ALICE_OID,
    APP_ID_URI,
    AUTHORITY_HOST,
    CALLER_APP,
    CALLER_SP,
    NOW,
    OTHER_TENANT,
    TENANT,
    V1_ISSUER,
    V2_ISSUER,
    Clock,
    FakeJwks,
    Signer,
    app_claims,
    b64url,
    random_kid,
    unsigned,
    user_claims,
)


async def refusal(
    authenticator: JwtCallerAuthenticator, token: str | None, audit: MemoryAuditSink
) -> tuple[Unauthorized, str | None]:
    header = None if token is None else f"Bearer {token}"
    with pytest.raises(Unauthorized) as caught:
        await authenticator.authenticate(header, correlation_id="corr-1")
    assert audit.events, "every refusal is audited"
    return caught.value, audit.events[-1].reason


# --- accepted tokens -------------------------------------------------------------------


async def test_a_delegated_v2_token_with_the_scope_is_accepted(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    caller = await authenticator.authenticate(f"Bearer {signer.sign(user_claims())}")

    assert caller.kind == "user"
    assert (caller.tenant_id, caller.oid, caller.app_id) == (TENANT, ALICE_OID, CALLER_APP)
    assert caller.scopes == frozenset({"access_as_user"})
    assert caller.upn == "alice@contoso.test"


async def test_an_app_token_with_a_role_is_accepted(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    token = signer.sign(app_claims([ROLE_READ_ALL]))

    caller = await authenticator.authenticate(f"Bearer {token}")

    assert caller.kind == "app"
    assert caller.oid == CALLER_SP
    assert caller.roles == frozenset({ROLE_READ_ALL})
    assert caller.upn is None


async def test_a_v1_token_with_the_app_id_uri_audience_is_accepted(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    claims = user_claims(aud=APP_ID_URI, iss=V1_ISSUER, azp=None, appid=CALLER_APP, ver="1.0")

    caller = await authenticator.authenticate(f"bearer {signer.sign(claims)}")

    assert caller.app_id == CALLER_APP


async def test_the_scope_is_found_among_several(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    token = signer.sign(user_claims(scp="User.Read access_as_user Mail.Read"))

    caller = await authenticator.authenticate(f"Bearer {token}")

    assert "access_as_user" in caller.scopes


# --- missing or unparseable ----------------------------------------------------------


async def test_a_missing_header_is_401_with_a_bare_bearer_challenge(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink
) -> None:
    error, reason = await refusal(authenticator, None, audit)

    assert reason == "missing_token"
    assert error.http_status == 401
    # RFC 6750 §3.1: no error code when the request carried no credentials.
    assert error.headers["WWW-Authenticate"] == "Bearer"


async def test_another_scheme_counts_as_no_token(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink
) -> None:
    with pytest.raises(Unauthorized):
        await authenticator.authenticate("Basic dXNlcjpwYXNz")

    assert audit.events[-1].reason == "missing_token"


async def test_garbage_is_a_malformed_token(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink
) -> None:
    error, reason = await refusal(authenticator, "not.a.jwt", audit)

    assert reason == "malformed_token"
    assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_an_oversized_token_is_refused_before_parsing(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, jwks: FakeJwks, signer: Signer
) -> None:
    token = signer.sign(user_claims(padding="x" * MAX_TOKEN_BYTES))

    error, reason = await refusal(authenticator, token, audit)

    assert reason == "token_too_large"
    assert "16 KB" in error.detail
    assert jwks.fetches == 0


# --- header: algorithm, kid, crit ----------------------------------------------------


async def test_alg_none_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = unsigned({"alg": "none", "typ": "JWT", "kid": signer.kid}, user_claims())

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "bad_algorithm"


async def test_hs256_signed_with_the_public_key_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    # The classic key confusion: the RSA public key (public!) used as an HMAC secret.
    public_pem = signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = unsigned({"alg": "HS256", "typ": "JWT", "kid": signer.kid}, user_claims())
    signing_input = forged.rsplit(".", 1)[0]
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "bad_algorithm"


@pytest.mark.parametrize("alg", ["RS384", "PS256", "ES256", "HS512"])
async def test_any_algorithm_but_rs256_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer, alg: str
) -> None:
    token = unsigned({"alg": alg, "kid": signer.kid}, user_claims(), b"sig")

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "bad_algorithm"


async def test_a_token_without_kid_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(), with_kid=False)

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "missing_kid"


async def test_a_crit_header_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(), headers={"crit": ["exp"]})

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "crit_header"


# --- signing keys --------------------------------------------------------------------


async def test_a_token_signed_by_another_key_with_a_known_kid_has_a_bad_signature(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    impostor = Signer(signer.kid)

    _, reason = await refusal(authenticator, impostor.sign(user_claims()), audit)

    assert reason == "bad_signature"


async def test_an_unknown_kid_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink
) -> None:
    error, reason = await refusal(authenticator, Signer("nobody").sign(user_claims()), audit)

    assert reason == "unknown_kid"
    assert error.http_status == 401


async def test_a_flood_of_random_kids_fetches_the_keys_at_most_once_per_cooldown(
    authenticator: JwtCallerAuthenticator, signer: Signer, jwks: FakeJwks, monotonic: Clock
) -> None:
    claims = user_claims()
    forged = [signer.sign(claims, headers={"kid": random_kid()}) for _ in range(1000)]

    async def attempt(token: str) -> None:
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(f"Bearer {token}")

    await asyncio.gather(*(attempt(t) for t in forged))  # a cold cache, all at once
    assert jwks.fetches == 1

    monotonic.advance(COOLDOWN_SECONDS - 1)
    for token in forged:
        await attempt(token)
    assert jwks.fetches == 1

    monotonic.advance(1)
    await asyncio.gather(*(attempt(t) for t in forged))
    assert jwks.fetches == 2


async def test_requests_arriving_during_a_fetch_share_it(
    authenticator: JwtCallerAuthenticator, signer: Signer, jwks: FakeJwks
) -> None:
    token = f"Bearer {signer.sign(user_claims())}"

    callers = await asyncio.gather(*(authenticator.authenticate(token) for _ in range(50)))

    assert {c.oid for c in callers} == {ALICE_OID}
    assert jwks.fetches == 1


async def test_known_keys_are_cached(
    authenticator: JwtCallerAuthenticator, signer: Signer, jwks: FakeJwks, monotonic: Clock
) -> None:
    for _ in range(5):
        monotonic.advance(COOLDOWN_SECONDS)
        await authenticator.authenticate(f"Bearer {signer.sign(user_claims())}")

    assert jwks.fetches == 1


async def test_a_key_rollover_is_picked_up_once_the_cooldown_has_passed(
    authenticator: JwtCallerAuthenticator,
    audit: MemoryAuditSink,
    signer: Signer,
    jwks: FakeJwks,
    monotonic: Clock,
) -> None:
    await authenticator.authenticate(f"Bearer {signer.sign(user_claims())}")  # keys cached
    rolled = Signer("next-kid")
    jwks.published = [rolled, signer]
    token = rolled.sign(user_claims())

    _, reason = await refusal(authenticator, token, audit)  # within the cooldown
    monotonic.advance(COOLDOWN_SECONDS)
    caller = await authenticator.authenticate(f"Bearer {token}")

    assert reason == "unknown_kid"
    assert caller.oid == ALICE_OID
    assert jwks.fetches == 2


async def test_a_rolled_key_is_picked_up_at_once_when_the_last_fetch_is_old(
    authenticator: JwtCallerAuthenticator, signer: Signer, jwks: FakeJwks, monotonic: Clock
) -> None:
    await authenticator.authenticate(f"Bearer {signer.sign(user_claims())}")
    monotonic.advance(3600)
    rolled = Signer("next-kid")
    jwks.published = [rolled]

    caller = await authenticator.authenticate(f"Bearer {rolled.sign(user_claims())}")

    assert caller.kind == "user"


async def test_an_unreachable_authority_is_503_and_is_not_retried_by_every_request(
    authenticator: JwtCallerAuthenticator,
    audit: MemoryAuditSink,
    signer: Signer,
    jwks: FakeJwks,
    monotonic: Clock,
) -> None:
    jwks.down = True
    token = f"Bearer {signer.sign(user_claims())}"

    for _ in range(3):
        with pytest.raises(AuthorityUnavailable) as caught:
            await authenticator.authenticate(token)
    assert caught.value.http_status == 503
    assert jwks.fetches == 1
    assert audit.events[-1].reason == "keys_unavailable"

    jwks.down = False
    monotonic.advance(COOLDOWN_SECONDS)
    assert (await authenticator.authenticate(token)).kind == "user"


async def test_a_symmetric_key_in_the_jwks_is_never_used(
    settings: Any, audit: MemoryAuditSink, wall: Clock, monotonic: Clock
) -> None:
    from jwt import PyJWKSet

    from shared.auth.tokens import TokenRules

    secret = b"shared-secret-0123456789abcdef0123456789"
    keys = SigningKeys(
        lambda: PyJWKSet.from_dict(
            {"keys": [{"kty": "oct", "kid": "sym", "k": b64url(secret), "alg": "HS256"}]}
        ),
        cooldown_seconds=60,
        clock=monotonic,
    )
    authenticator = JwtCallerAuthenticator(
        TokenRules.from_settings(settings), keys, audit, clock=wall
    )
    forged = unsigned({"alg": "RS256", "kid": "sym"}, user_claims())
    mac = hmac.new(secret, forged.rsplit(".", 1)[0].encode(), hashlib.sha256).digest()

    _, reason = await refusal(authenticator, f"{forged.rsplit('.', 1)[0]}.{b64url(mac)}", audit)

    assert reason == "unknown_kid"


# --- lifetime ------------------------------------------------------------------------


async def test_an_expired_token_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(exp=int(NOW) - 301))

    error, reason = await refusal(authenticator, token, audit)

    assert reason == "token_expired"
    assert error.detail == "The token has expired."


async def test_an_expired_token_within_the_skew_is_accepted(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    token = signer.sign(user_claims(exp=int(NOW) - 299))

    assert (await authenticator.authenticate(f"Bearer {token}")).kind == "user"


async def test_a_token_expiring_exactly_at_the_skew_edge_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    _, reason = await refusal(authenticator, signer.sign(user_claims(exp=int(NOW) - 300)), audit)

    assert reason == "token_expired"


async def test_a_token_not_valid_yet_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(nbf=int(NOW) + 301))

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "token_not_yet_valid"


async def test_nbf_within_the_skew_is_accepted(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    token = signer.sign(user_claims(nbf=int(NOW) + 299, iat=int(NOW) + 299))

    assert (await authenticator.authenticate(f"Bearer {token}")).kind == "user"


async def test_a_token_issued_in_the_future_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    _, reason = await refusal(authenticator, signer.sign(user_claims(iat=int(NOW) + 400)), audit)

    assert reason == "token_not_yet_valid"


async def test_a_token_without_exp_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    claims = user_claims()
    del claims["exp"]

    _, reason = await refusal(authenticator, signer.sign(claims), audit)

    assert reason == "missing_claims"


# --- audience, issuer, tenant ---------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    ["api://someone-else", "00000000-0000-0000-0000-000000000001", APP_ID_URI + "/", None],
)
async def test_a_token_for_another_audience_is_refused(
    authenticator: JwtCallerAuthenticator,
    audit: MemoryAuditSink,
    signer: Signer,
    aud: str | None,
) -> None:
    claims = user_claims()
    claims.pop("aud")
    if aud is not None:
        claims["aud"] = aud

    error, reason = await refusal(authenticator, signer.sign(claims), audit)

    assert reason == "bad_audience"
    assert error.detail == "The token's audience is not this API."


async def test_an_audience_list_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(aud=[user_claims()["aud"], "api://other"]))

    _, reason = await refusal(authenticator, token, audit)

    assert reason == "bad_audience"


@pytest.mark.parametrize(
    "aud",
    [
        "https://graph.microsoft.com",
        "https://graph.microsoft.com/",
        "00000003-0000-0000-c000-000000000000",
        "https://graph.microsoft.us",
        "https://dod-graph.microsoft.us",
        "https://microsoftgraph.chinacloudapi.cn",
    ],
)
async def test_a_graph_token_is_refused_with_its_own_reason(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, aud: str
) -> None:
    # Signed by a key the API does not know, as real Graph tokens are unverifiable here:
    # the reason must still name the mistake.
    token = Signer("graph-signing").sign(user_claims(aud=aud, iss=V1_ISSUER))

    error, reason = await refusal(authenticator, token, audit)

    assert reason == "graph_audience"
    assert "Microsoft Graph" in error.detail


@pytest.mark.parametrize(
    "iss",
    [
        f"{AUTHORITY_HOST}/{TENANT}",  # a prefix of the v2 issuer
        f"{AUTHORITY_HOST}/{TENANT}/v2",  # a prefix
        f"{AUTHORITY_HOST}/{TENANT}/v2.0/",  # a superstring
        f"{AUTHORITY_HOST}/{TENANT}/v2.0.evil.example",  # a superstring
        f"{AUTHORITY_HOST}.evil.example/{TENANT}/v2.0",
        f"https://sts.windows.net/{TENANT}",  # the v1 issuer without its slash
        f"https://sts.windows.net/{TENANT}/x",
        f"{AUTHORITY_HOST}/{OTHER_TENANT}/v2.0",
        f"https://sts.windows.net/{OTHER_TENANT}/",
        V2_ISSUER.upper(),
    ],
)
async def test_an_issuer_that_is_not_exactly_the_tenants_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer, iss: str
) -> None:
    _, reason = await refusal(authenticator, signer.sign(user_claims(iss=iss)), audit)

    assert reason == "bad_issuer"


@pytest.mark.parametrize("tid", [OTHER_TENANT, "contoso.test", TENANT.upper(), ""])
async def test_a_tid_other_than_the_tenant_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer, tid: str
) -> None:
    _, reason = await refusal(authenticator, signer.sign(user_claims(tid=tid)), audit)

    assert reason == "tenant_mismatch"


async def test_a_token_without_oid_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    claims = user_claims()
    del claims["oid"]

    _, reason = await refusal(authenticator, signer.sign(claims), audit)

    assert reason == "missing_claims"


# --- what the token grants ------------------------------------------------------------


async def test_a_token_with_neither_scp_nor_roles_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    _, reason = await refusal(authenticator, signer.sign(user_claims(scp=None)), audit)

    assert reason == "no_scope_or_roles"


async def test_a_delegated_token_without_this_apis_scope_is_refused(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(scp="User.Read Mail.Read access_as_user2"))

    error, reason = await refusal(authenticator, token, audit)

    assert reason == "missing_scope"
    assert "access_as_user" in error.detail


async def test_an_app_token_without_an_api_role_is_forbidden(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(app_claims(["Some.Other.Role"]))

    with pytest.raises(Forbidden) as caught:
        await authenticator.authenticate(f"Bearer {token}", correlation_id="corr-2")

    assert caught.value.http_status == 403
    event = audit.events[-1]
    assert (event.reason, event.caller_oid, event.caller_app_id, event.tenant_id) == (
        "missing_role",
        CALLER_SP,
        CALLER_APP,
        TENANT,
    )


async def test_an_app_token_with_read_write_is_accepted(
    authenticator: JwtCallerAuthenticator, signer: Signer
) -> None:
    token = signer.sign(app_claims([ROLE_READ_WRITE_ALL]))

    assert (await authenticator.authenticate(f"Bearer {token}")).kind == "app"


# --- what a refusal reveals -----------------------------------------------------------


async def test_a_denial_is_audited_without_the_token(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink, signer: Signer
) -> None:
    token = signer.sign(user_claims(aud="api://someone-else"))

    error, _ = await refusal(authenticator, token, audit)

    event = audit.events[-1]
    assert (event.action, event.outcome, event.correlation_id) == (
        "auth.denied",
        Outcome.DENIED,
        "corr-1",
    )
    assert event.caller_oid == ALICE_OID  # the signature verified: the ids are genuine
    record = repr(event.to_record())
    assert token not in record and token.split(".")[1] not in record
    assert "someone-else" not in error.detail


async def test_caller_ids_are_not_audited_from_an_unverified_token(
    authenticator: JwtCallerAuthenticator, audit: MemoryAuditSink
) -> None:
    await refusal(authenticator, Signer("nobody").sign(user_claims()), audit)

    event = audit.events[-1]
    assert (event.caller_oid, event.caller_app_id, event.tenant_id) == (None, None, None)
