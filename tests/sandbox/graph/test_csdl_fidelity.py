"""Fidelity to Microsoft's v1.0 metadata: what the sandbox emits and accepts, checked against
the official CSDL (read at test time from the folder beside the checkout, never copied)."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sandbox.graph import rules, schema, views
from tests.sandbox.graph.support import ALICE, BOB, Graph, error_code, seed, user_token
from tests.support.sandbox import SandboxServer

CSDL_PATH = Path(__file__).resolve().parents[3] / ".." / "shared" / "graph" / "v1.0-Prod.csdl"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass
class StructuredType:
    name: str
    base: str | None
    properties: dict[str, str] = field(default_factory=dict)
    non_nullable: set[str] = field(default_factory=set)
    navigation: dict[str, str] = field(default_factory=dict)
    abstract: bool = False


@dataclass
class Csdl:
    types: dict[str, StructuredType]
    enums: dict[str, list[str]]
    actions: list[tuple[str, dict[str, str]]]  # (name, parameters incl. bindingParameter)

    def chain(self, name: str) -> list[StructuredType]:
        out = []
        current: str | None = name
        while current is not None:
            found = self.types[current]
            out.append(found)
            current = found.base
        return out

    def all_properties(self, name: str) -> dict[str, str]:
        props: dict[str, str] = {}
        for t in self.chain(name):
            props.update(t.properties)
            props.update(t.navigation)
        return props

    def non_nullable(self, name: str) -> set[str]:
        return set().union(*(t.non_nullable for t in self.chain(name)))


def _local(type_ref: str | None) -> str | None:
    if type_ref is None:
        return None
    return type_ref.removeprefix("graph.").removeprefix("microsoft.graph.")


@cache
def load_csdl() -> Csdl:
    if not CSDL_PATH.exists():
        # CI and every checkout have ../shared beside them: a missing file is a failure.
        pytest.fail(f"Microsoft's CSDL is not beside the checkout at {CSDL_PATH}")
    # Microsoft's own metadata file from beside the checkout, not untrusted input.
    root = ET.parse(CSDL_PATH).getroot()  # noqa: S314
    graph_schema = next(
        s for s in root.iter(f"{EDM}Schema") if s.get("Namespace") == "microsoft.graph"
    )
    types: dict[str, StructuredType] = {}
    enums: dict[str, list[str]] = {}
    actions: list[tuple[str, dict[str, str]]] = []
    for element in graph_schema:
        tag = element.tag.removeprefix(EDM)
        if tag in ("EntityType", "ComplexType"):
            t = StructuredType(
                name=element.get("Name", ""),
                base=_local(element.get("BaseType")),
                abstract=element.get("Abstract") == "true",
            )
            for prop in element.findall(f"{EDM}Property"):
                t.properties[prop.get("Name", "")] = prop.get("Type", "")
                if prop.get("Nullable") == "false":
                    t.non_nullable.add(prop.get("Name", ""))
            for nav in element.findall(f"{EDM}NavigationProperty"):
                t.navigation[nav.get("Name", "")] = nav.get("Type", "")
            types[t.name] = t
        elif tag == "EnumType":
            enums[element.get("Name", "")] = [
                m.get("Name", "") for m in element.findall(f"{EDM}Member")
            ]
        elif tag == "Action" and element.get("IsBound") == "true":
            params = {
                p.get("Name", ""): p.get("Type", "") for p in element.findall(f"{EDM}Parameter")
            }
            actions.append((element.get("Name", ""), params))
    return Csdl(types=types, enums=enums, actions=actions)


# --- the sandbox's embedded schema is Microsoft's ---------------------------------------
@pytest.mark.parametrize("name", sorted(schema.ENTITY_TYPES))
def test_embedded_entity_types_match_the_csdl(name: str) -> None:
    csdl = load_csdl()
    base, props = schema.ENTITY_TYPES[name]

    assert csdl.types[name].base == base
    assert csdl.types[name].properties == props
    assert csdl.types[name].navigation == schema.NAVIGATION.get(name, {})


@pytest.mark.parametrize("name", sorted(schema.COMPLEX_TYPES))
def test_embedded_complex_types_match_the_csdl(name: str) -> None:
    assert load_csdl().types[name].properties == schema.COMPLEX_TYPES[name]


@pytest.mark.parametrize("name", sorted(schema.ENUM_TYPES))
def test_embedded_enums_match_the_csdl(name: str) -> None:
    assert load_csdl().enums[name] == list(schema.ENUM_TYPES[name])


BINDINGS = {
    "sendMail": "graph.user",
    "createUploadSession": "Collection(graph.attachment)",
    "getMailTips": "graph.user",
}


@pytest.mark.parametrize("action", sorted(schema.ACTION_PARAMETERS))
def test_embedded_action_parameters_match_the_csdl(action: str) -> None:
    binding = BINDINGS.get(action, "graph.message")
    candidates = [
        params
        for name, params in load_csdl().actions
        if name == action and params.get("bindingParameter") == binding
    ]

    assert len(candidates) == 1
    expected = {k: v for k, v in candidates[0].items() if k != "bindingParameter"}
    assert expected == schema.ACTION_PARAMETERS[action]


def test_embedded_mailbox_settings_properties_match_the_csdl() -> None:
    assert load_csdl().types["mailboxSettings"].properties == schema.MAILBOX_SETTINGS_PROPERTIES
    assert set(schema.MAILBOX_SETTINGS_PROPERTIES) >= schema.MAILBOX_SETTINGS_WRITABLE


def test_every_referenced_type_is_embedded() -> None:
    refs: set[str] = set()
    for _, props in schema.ENTITY_TYPES.values():
        refs |= set(props.values())
    for props in schema.COMPLEX_TYPES.values():
        refs |= set(props.values())
    for ref in refs:
        inner = ref.removeprefix("Collection(").removesuffix(")")
        if inner.startswith("Edm."):
            continue
        name = inner.removeprefix("graph.")
        assert name in schema.COMPLEX_TYPES or name in schema.ENUM_TYPES, ref


# --- what the sandbox emits is typed as the CSDL says ------------------------------------
def check_value(csdl: Csdl, type_ref: str, value: Any, where: str) -> None:
    if value is None:
        return
    if type_ref.startswith("Collection("):
        assert isinstance(value, list), where
        inner = type_ref[len("Collection(") : -1]
        for i, item in enumerate(value):
            check_value(csdl, inner, item, f"{where}[{i}]")
        return
    if type_ref == "Edm.String":
        assert isinstance(value, str), where
    elif type_ref == "Edm.Boolean":
        assert isinstance(value, bool), where
    elif type_ref in ("Edm.Int32", "Edm.Int64"):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif type_ref == "Edm.DateTimeOffset":
        assert isinstance(value, str) and ISO_Z.match(value), f"{where}: {value!r}"
    elif type_ref == "Edm.Binary":
        assert isinstance(value, str), where
        base64.b64decode(value, validate=True)
    else:
        name = _local(type_ref) or ""
        if name in csdl.enums:
            assert value in csdl.enums[name], f"{where}: {value!r} not in {name}"
        else:
            assert isinstance(value, dict), where
            check_object(csdl, name, value, where)


def check_object(csdl: Csdl, type_name: str, obj: dict[str, Any], where: str) -> set[str]:
    odata_type = obj.get("@odata.type")
    if isinstance(odata_type, str) and odata_type.startswith("#microsoft.graph."):
        type_name = odata_type.removeprefix("#microsoft.graph.")
    props = csdl.all_properties(type_name)
    for name in csdl.non_nullable(type_name):
        if name in obj:
            assert obj[name] is not None, f"{where}.{name} is not nullable"
    for name, value in obj.items():
        if name.startswith("@"):
            continue
        assert name in props, f"{where}: '{name}' is not a property of {type_name}"
        check_value(csdl, props[name], value, f"{where}.{name}")
    return {f"{type_name}.{k}" for k in obj if not k.startswith("@")}


def _responses(
    sandbox: SandboxServer, alice: Graph, bob: Graph
) -> list[tuple[str, dict[str, Any]]]:
    seed(
        sandbox,
        ALICE,
        count=1,
        template={
            "subject": "with every property",
            "ccRecipients": [{"emailAddress": {"name": "Bob", "address": BOB}}],
            "replyTo": [{"emailAddress": {"address": "replies@example.test"}}],
            "internetMessageHeaders": [{"name": "X-Sandbox", "value": "1"}],
            "flag": {
                "flagStatus": "complete",
                "completedDateTime": {"dateTime": "2026-01-02T00:00:00", "timeZone": "UTC"},
            },
        },
    )
    out: list[tuple[str, dict[str, Any]]] = []
    listing = alice.get("/me/messages?$top=50&$expand=attachments").json()["value"]
    out += [("message", m) for m in listing]
    one = alice.get(
        f"/me/messages/{listing[0]['id']}",
        params={"$select": "uniqueBody,internetMessageHeaders,body,flag,replyTo"},
    ).json()
    out.append(("message", one))
    draft = alice.post("/me/messages", json={"subject": "draft"}).json()
    out.append(("message", draft))
    out += [
        ("mailFolder", f)
        for f in alice.get("/me/mailFolders?includeHiddenFolders=true&$top=50").json()["value"]
    ]
    out.append(("mailFolder", alice.get("/me/mailFolders/recoverableitemsdeletions").json()))
    with_attachments = alice.get(
        "/me/messages", params={"$filter": "hasAttachments eq true", "$top": 50}
    ).json()["value"]
    for message in with_attachments:
        for attachment in alice.get(f"/me/messages/{message['id']}/attachments").json()["value"]:
            out.append(("attachment", attachment))
    out += [
        ("message", m) for m in alice.get("/me/mailFolders/inbox/messages/delta").json()["value"]
    ]
    out += [("message", m) for m in bob.get("/me/messages").json()["value"]]
    return out


def test_emitted_properties_exist_in_the_csdl_with_compatible_types(
    sandbox: SandboxServer, alice: Graph, bob: Graph
) -> None:
    csdl = load_csdl()
    seen: set[str] = set()

    for type_name, obj in _responses(sandbox, alice, bob):
        seen |= check_object(csdl, type_name, obj, type_name)

    # The check covered the mail types the app uses, not just a handful of fields.
    for expected in (
        "message.flag",
        "message.from",
        "message.body",
        "message.toRecipients",
        "message.attachments",
        "message.uniqueBody",
        "mailFolder.isHidden",
        "fileAttachment.contentBytes",
        "fileAttachment.size",
    ):
        assert expected in seen, expected


def test_the_full_default_message_shape_is_graphs(alice: Graph) -> None:
    message = alice.get("/me/messages?$top=1").json()["value"][0]

    # Graph's default properties, in the order the views render them (each is checked
    # against the CSDL above); $select-only ones (uniqueBody, headers) stay out.
    assert set(message) == {"@odata.etag", "id", *views.MESSAGE_ORDER}
    assert not set(views.SELECT_ONLY) & set(message)


# --- what the sandbox refuses, it refuses as Graph does ---------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/me/messages", {"subject": "x", "notAProperty": 1}),
        (
            "POST",
            "/me/messages",
            {"toRecipients": [{"emailAddress": {"address": "a@b.c", "phone": "1"}}]},
        ),
        ("POST", "/me/messages", {"body": {"contentType": "text", "content": "x", "font": "a"}}),
        ("POST", "/me/mailFolders", {"displayName": "x", "colour": "red"}),
        ("POST", "/me/sendMail", {"message": {"subject": "x", "priority": "high"}}),
    ],
)
def test_bodies_with_properties_unknown_to_the_csdl_are_rejected(
    alice: Graph, method: str, path: str, body: dict[str, Any]
) -> None:
    response = alice.http.request(method, path, json=body)

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"
    assert "does not exist on type 'microsoft.graph." in response.json()["error"]["message"]


def test_patch_with_an_unknown_property_is_rejected(alice: Graph) -> None:
    message = alice.get("/me/messages?$top=1").json()["value"][0]

    response = alice.patch(f"/me/messages/{message['id']}", json={"isUnread": True})

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"


# --- inbox rules (sandbox/graph/rules.py) -------------------------------------------------
def test_the_rule_predicates_and_actions_the_sandbox_runs_are_graphs() -> None:
    csdl = load_csdl()

    assert set(csdl.types["messageRulePredicates"].properties) >= rules.SUPPORTED_PREDICATES
    assert set(csdl.types["messageRuleActions"].properties) >= rules.SUPPORTED_ACTIONS
    assert csdl.types["mailFolder"].navigation["messageRules"] == "Collection(graph.messageRule)"


def test_an_emitted_message_rule_with_every_supported_part_is_typed_as_the_csdl_says(
    sandbox: SandboxServer,
) -> None:
    token = user_token(sandbox, ALICE, ["MailboxSettings.ReadWrite", "Mail.ReadWrite"])
    graph = Graph(sandbox, token, immutable=True)
    someone = [{"emailAddress": {"name": "Someone", "address": "someone@example.test"}}]
    predicates = {
        "subjectContains": ["a"],
        "bodyContains": ["b"],
        "bodyOrSubjectContains": ["c"],
        "fromAddresses": someone,
        "senderContains": ["d"],
        "recipientContains": ["e"],
        "sentToAddresses": someone,
        "sentToMe": True,
        "sentCcMe": True,
        "sentToOrCcMe": True,
        "sentOnlyToMe": True,
        "hasAttachments": True,
        "importance": "high",
    }
    actions = {
        "moveToFolder": "archive",
        "copyToFolder": "archive",
        "delete": True,
        "permanentDelete": True,
        "markAsRead": True,
        "markImportance": "low",
        "assignCategories": ["Red category"],
        "stopProcessingRules": True,
    }
    try:
        created = graph.post(
            "/me/mailFolders/inbox/messageRules",
            json={
                "displayName": "everything",
                "sequence": 1,
                "conditions": predicates,
                "exceptions": predicates,
                "actions": actions,
            },
        )
        listed = graph.get("/me/mailFolders/inbox/messageRules").json()["value"]
    finally:
        graph.close()

    assert created.status_code == 201, created.text
    assert set(predicates) == rules.SUPPORTED_PREDICATES
    assert set(actions) == rules.SUPPORTED_ACTIONS
    seen: set[str] = set()
    for shown in (created.json(), *listed):
        seen |= check_object(load_csdl(), "messageRule", shown, "messageRule")
    assert {"messageRule.conditions", "messageRule.exceptions", "messageRule.actions"} <= seen
