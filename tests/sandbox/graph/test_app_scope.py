"""Application permissions as Entra grants them and Exchange scopes them: admin consent per
app (`/_sandbox/apps/{clientId}/grants`), RBAC for Applications management scopes
(`/_sandbox/apps/{clientId}/scope`), and who may subscribe to which mailbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.identity.tokens import unverified_claims
from tests.sandbox.graph.support import ALICE, BOB, Graph, app_token, error_code
from tests.support.receiver import Receiver, start_receiver
from tests.support.sandbox import SandboxServer

SUPPORT = "support@contoso.test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.stop()


def _add_user(sandbox: SandboxServer, upn: str, **extra: object) -> None:
    with sandbox.client() as control:
        control.post("/_sandbox/users", json={"upn": upn, **extra}).raise_for_status()


def _set_scope(sandbox: SandboxServer, body: dict[str, object]) -> None:
    with sandbox.client() as control:
        control.post(f"/_sandbox/apps/{sandbox.client_id}/scope", json=body).raise_for_status()


def _subscription(resource: str, receiver: Receiver) -> dict[str, str]:
    expiry = (datetime.now(UTC) + timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "changeType": "created",
        "notificationUrl": f"{receiver.url}/hook",
        "resource": resource,
        "expirationDateTime": expiry,
        "clientState": "s3cret-state",
    }


def test_the_default_grant_and_scope_reach_the_shared_mailbox(app: Graph) -> None:
    response = app.get(f"/users/{SUPPORT}/mailFolders/inbox")

    assert response.status_code == 200, response.text


def test_a_mailbox_outside_the_management_scope_is_access_denied(
    sandbox: SandboxServer, app: Graph
) -> None:
    _add_user(sandbox, "hr@contoso.test", sharedMailbox=True)

    response = app.get("/users/hr@contoso.test/mailFolders/inbox")

    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"
    assert response.json()["error"]["message"] == (
        "Access is denied. Check credentials and try again."
    )


def test_widening_the_scope_lets_the_app_in(sandbox: SandboxServer, app: Graph) -> None:
    _add_user(sandbox, "hr@contoso.test", sharedMailbox=True)
    _set_scope(sandbox, {"mailboxes": [SUPPORT, "HR@contoso.test"]})

    assert app.get("/users/hr@contoso.test/mailFolders/inbox").status_code == 200
    # The scope replaced the default one: alice is outside now.
    assert app.get(f"/users/{ALICE}/mailFolders/inbox").status_code == 403


def test_an_organization_wide_scope_reaches_every_mailbox(
    sandbox: SandboxServer, app: Graph
) -> None:
    _add_user(sandbox, "hr@contoso.test", sharedMailbox=True)
    _set_scope(sandbox, {"all": True})

    assert app.get("/users/hr@contoso.test/messages?$top=1").status_code == 200


def test_the_scope_does_not_limit_delegated_access(sandbox: SandboxServer, alice: Graph) -> None:
    _set_scope(sandbox, {"mailboxes": [BOB]})

    assert alice.get(f"/users/{SUPPORT}/messages?$top=1").status_code == 200


def test_the_scope_is_readable(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        body = control.get(f"/_sandbox/apps/{sandbox.client_id}/scope").json()

    assert body == {"scoped": True, "all": False, "mailboxes": [ALICE, BOB, SUPPORT]}


@pytest.mark.parametrize(
    "body",
    [{"mailboxes": ["nobody@contoso.test"]}, {"all": True, "mailboxes": [BOB]}, {"bogus": 1}],
)
def test_a_bad_scope_is_refused(sandbox: SandboxServer, body: dict[str, object]) -> None:
    with sandbox.client() as control:
        response = control.post(f"/_sandbox/apps/{sandbox.client_id}/scope", json=body)

    assert response.status_code == 400


def test_an_unknown_app_is_not_found(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        grants = control.post("/_sandbox/apps/not-an-app/grants", json={"roles": ["Mail.Read"]})
        scope = control.get("/_sandbox/apps/not-an-app/scope")

    assert (grants.status_code, scope.status_code) == (404, 404)


def test_granted_roles_appear_in_the_next_app_token(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.post(
            f"/_sandbox/apps/{sandbox.client_id}/grants", json={"roles": ["Mail.Read"]}
        ).raise_for_status()

    claims = unverified_claims(app_token(sandbox))

    assert claims["roles"] == ["Mail.Read"]


def test_an_unknown_role_cannot_be_granted(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        response = control.post(
            f"/_sandbox/apps/{sandbox.client_id}/grants",
            json={"roles": ["Directory.ReadWrite.All"]},
        )

    assert response.status_code == 400


def test_a_revoked_grant_leaves_tokens_without_roles_that_graph_refuses(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    with sandbox.client() as control:
        revoked = control.delete(f"/_sandbox/apps/{sandbox.client_id}/grants")
        shown = control.get(f"/_sandbox/apps/{sandbox.client_id}/grants").json()
    token = app_token(sandbox)

    response = make_graph(token).get(f"/users/{SUPPORT}/mailFolders/inbox")

    assert revoked.status_code == 204
    assert shown == {"roles": []}
    assert unverified_claims(token)["roles"] == []
    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"


def test_reset_restores_grants_and_scope(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.delete(f"/_sandbox/apps/{sandbox.client_id}/grants").raise_for_status()
        control.post(
            f"/_sandbox/apps/{sandbox.client_id}/scope", json={"mailboxes": [BOB]}
        ).raise_for_status()
        control.post("/_sandbox/reset").raise_for_status()
        grants = control.get(f"/_sandbox/apps/{sandbox.client_id}/grants").json()
        scope = control.get(f"/_sandbox/apps/{sandbox.client_id}/scope").json()

    assert set(grants["roles"]) >= {"Mail.ReadWrite", "Mail.Send"}
    assert scope["mailboxes"] == [ALICE, BOB, SUPPORT]


def test_an_app_subscribes_to_a_shared_mailbox_folder(app: Graph, receiver: Receiver) -> None:
    body = _subscription(f"users/{SUPPORT}/mailFolders/inbox/messages", receiver)

    response = app.post("/subscriptions", json=body)

    assert response.status_code == 201, response.text


def test_a_delegated_subscription_on_another_mailbox_is_refused_even_with_full_access(
    alice: Graph, receiver: Receiver
) -> None:
    body = _subscription(f"users/{SUPPORT}/mailFolders/inbox/messages", receiver)

    response = alice.post("/subscriptions", json=body)

    assert response.status_code == 403
    assert error_code(response) == "ExtensionError"
    assert receiver.handshakes == []


def test_a_user_token_can_carry_the_users_groups(sandbox: SandboxServer) -> None:
    group = "0b5a1f7e-8d2c-4c4e-9a1b-2f3e4d5c6b7a"
    with sandbox.client() as control:
        minted = control.post("/_sandbox/token", json={"user": ALICE, "groups": [group]})
        refused = control.post("/_sandbox/token", json={"app": True, "groups": [group]})

    assert unverified_claims(minted.json()["access_token"])["groups"] == [group]
    assert refused.status_code == 400
