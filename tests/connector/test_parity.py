"""The connector as flow makers coming from Office 365 Outlook expect it: folder and category
pickers, Title Case field names, short sentence-case action names, one description of
Idempotency-Key, triggers in the capabilities, a typed trigger output, bytes typed as bytes,
recipients as text, and the simple actions as operations of their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from scripts import generate_connector as gen
from shared.notifications.filters import MESSAGE_SELECT
from tests.connector.test_connector import definition, operations, properties

# Words a sentence-case summary may capitalise besides its first: names and acronyms.
PROPER_WORDS = frozenset({"MIME", "ID", "Outlook", "Graph"})


def op_by_id(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    found = [(p, m, op) for p, m, op in operations() if op["operationId"] == operation_id]
    assert len(found) == 1, operation_id
    return found[0]


def ref_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def body_definitions() -> set[str]:
    """Definitions a request body reaches (their properties are inputs)."""
    pending = [
        ref_name(p["schema"])
        for _, _, op in operations()
        for p in op["parameters"]
        if p["in"] == "body" and "$ref" in p["schema"]
    ]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for prop in definition()["definitions"][name].get("properties", {}).values():
            for node in (prop, prop.get("items", {})):
                if "$ref" in node:
                    pending.append(ref_name(node))
    return seen


def inputs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, name, schema) of every non-body parameter and every request-body property."""
    for path, method, op in operations():
        for param in op["parameters"]:
            if param["in"] != "body":
                yield f"{method.upper()} {path}", param["name"], param
    for name in sorted(body_definitions()):
        for prop_name, prop in definition()["definitions"][name].get("properties", {}).items():
            yield f"definitions.{name}", prop_name, prop


def summaries() -> Iterator[tuple[str, str]]:
    """(where, x-ms-summary) of every parameter and every property of every definition."""
    for path, method, op in operations():
        for param in op["parameters"]:
            yield f"{method.upper()} {path} {param['name']}", param["x-ms-summary"]
    for name, schema in definition()["definitions"].items():
        for prop_name, prop in schema.get("properties", {}).items():
            if "$ref" not in prop:
                yield f"definitions.{name}.{prop_name}", prop.get("x-ms-summary", "")


# --- pickers ------------------------------------------------------------------------------
def test_every_folder_input_offers_the_folder_list_and_a_tree_into_child_folders() -> None:
    seen: list[str] = []

    for where, name, schema in inputs():
        if name not in gen.FOLDER_PARAMETERS:
            continue
        seen.append(where)
        values = schema["x-ms-dynamic-values"]
        tree = schema["x-ms-dynamic-tree"]
        assert values["operationId"] == "FoldersList", where
        assert (values["value-collection"], values["value-path"]) == ("value", "id"), where
        assert values["parameters"]["connectionId"] == {"parameter": "connectionId"}, where
        assert tree["open"]["operationId"] == "FoldersList", where
        assert tree["open"]["parameters"]["connectionId"] == {"parameterReference": "connectionId"}
        assert tree["browse"]["operationId"] == "FoldersChildren", where
        assert tree["browse"]["parameters"]["folderId"] == {"selectedItemValuePath": "id"}
        assert tree["settings"] == {"canSelectParentNodes": True, "canSelectLeafNodes": True}

    assert "definitions.SubscriptionCreate" in seen  # the trigger's folder
    assert "GET /connections/{connectionId}/messages" in seen
    assert "definitions.DestinationBody" in seen  # move and copy


def test_the_folder_pickers_call_operations_that_answer_what_they_read() -> None:
    path, method, children = op_by_id("FoldersChildren")
    _, _, listing = op_by_id("FoldersList")

    assert (method, path) == ("get", "/connections/{connectionId}/folders/{folderId}/children")
    assert "folderId" in {p["name"] for p in children["parameters"]}
    folder_list = definition()["definitions"][ref_name(listing["responses"]["200"]["schema"])]
    folder = definition()["definitions"][ref_name(folder_list["properties"]["value"]["items"])]
    assert {"id", "displayName", "childFolderCount"} <= set(folder["properties"])


def test_a_shared_mailbox_parameter_reaches_the_folder_picker_of_its_operation() -> None:
    _, _, op = op_by_id("MessagesList")
    (folder,) = [p for p in op["parameters"] if p["name"] == "folder"]

    assert folder["x-ms-dynamic-values"]["parameters"]["mailbox"] == {"parameter": "mailbox"}


def test_every_category_input_offers_the_mailboxs_categories() -> None:
    seen = []

    for where, name, schema in inputs():
        if name == "category":
            picker = schema["x-ms-dynamic-values"]
        elif name == "categories":
            picker = schema["items"]["x-ms-dynamic-values"]
        else:
            continue
        seen.append(where)
        assert picker["operationId"] == "CategoriesList", where
        assert picker["value-path"] == "displayName", where  # Graph stores category names

    assert "definitions.AssignCategoryBody" in seen
    assert "definitions.MessagePatchBody" in seen


def test_the_category_list_is_graphs_master_category_list() -> None:
    path, method, op = op_by_id("CategoriesList")
    answer = definition()["definitions"][ref_name(op["responses"]["200"]["schema"])]
    item = definition()["definitions"][ref_name(answer["properties"]["value"]["items"])]

    assert (method, path) == ("get", "/connections/{connectionId}/categories")
    assert set(item["properties"]) == {"id", "displayName", "color"}


# --- text -----------------------------------------------------------------------------------
def test_parameter_and_property_summaries_are_title_case() -> None:
    for where, summary in summaries():
        assert summary, where
        for i, word in enumerate(summary.split()):
            small = i > 0 and word in gen.SMALL_WORDS
            assert small or not word[0].isalpha() or word[0].isupper(), f"{where}: {summary!r}"


def test_operation_summaries_are_short_sentence_case_actions() -> None:
    for path, method, op in operations():
        summary, where = op["summary"], f"{method.upper()} {path}"
        words = summary.split()
        assert len(summary) <= 80, where
        assert summary[0].isupper(), where
        assert not re.search(r"[.!?:;,]$", summary), where
        assert len(words) >= 2, where  # "forward" was one lowercase word
        for word in words[1:]:
            bare = word.strip("()")
            assert bare in PROPER_WORDS or bare == bare.lower(), f"{where}: {summary!r}"


def test_flow_makers_find_the_simple_actions_under_outlooks_names() -> None:
    by_summary = {op["summary"]: (path, method) for path, method, op in operations()}

    assert by_summary["Flag email"][1] == "post"
    assert by_summary["Mark as read or unread"][0].endswith("/markRead")
    assert by_summary["Assign a category"][0].endswith("/assignCategory")
    assert {"Reply to an email", "Reply all to an email", "Forward an email"} <= set(by_summary)


def test_descriptions_are_short_and_idempotency_key_is_described_on_its_parameter_only() -> None:
    texts = set()

    for path, method, op in operations():
        where = f"{method.upper()} {path}"
        assert len(op["description"]) <= 160, where
        assert "Idempotency" not in op["description"], where
        for param in op["parameters"]:
            assert len(param["description"]) <= 240, f"{where} {param['name']}"
            if param["name"] == "Idempotency-Key":
                texts.add(param["description"])
                assert param["x-ms-visibility"] == "advanced", where
                assert param["x-ms-summary"] == "Idempotency Key", where

    assert len(texts) == 1
    assert "409" in next(iter(texts))


# --- properties, trigger, types ---------------------------------------------------------
def test_capabilities_include_triggers_and_each_connector_has_its_redirect_uri() -> None:
    props = properties()["properties"]
    oauth = props["connectionParameters"]["token"]["oAuthSettings"]

    assert props["capabilities"] == ["actions", "triggers"]
    assert any("x-ms-trigger" in op for _, _, op in operations())
    assert oauth["redirectMode"] == "GlobalPerConnector"


def test_the_trigger_outputs_the_new_messages_headers_typed() -> None:
    _, _, trigger = op_by_id("SubscriptionsCreate")
    event = definition()["definitions"][ref_name(trigger["responses"]["201"]["schema"])]
    message = definition()["definitions"][ref_name(event["properties"]["message"])]
    fields = message["properties"]

    assert fields["subject"]["type"] == "string"
    assert fields["subject"]["x-ms-summary"] == "Subject"
    assert fields["receivedDateTime"]["format"] == "date-time"
    assert fields["hasAttachments"]["type"] == "boolean"
    assert ref_name(fields["from"]) == "Recipient"
    assert ref_name(fields["toRecipients"]["items"]) == "Recipient"
    # Only what the app sends today (the delivery worker's $select), never the body.
    assert set(fields) == {f for f in MESSAGE_SELECT.split(",")}
    assert "body" not in fields


def test_the_trigger_takes_events_mailbox_and_filters_and_its_bookkeeping_is_internal() -> None:
    _, _, trigger = op_by_id("SubscriptionsCreate")
    (body,) = [p for p in trigger["parameters"] if p["in"] == "body"]
    inputs = definition()["definitions"][ref_name(body["schema"])]["properties"]

    assert {"events", "mailbox", "folder", "from", "to", "cc", "importance"} <= set(inputs)
    assert {"hasAttachments", "subjectContains", "includeMessage"} <= set(inputs)
    assert inputs["events"]["items"]["enum"] == ["created", "flagged"]
    assert (inputs["mailbox"]["x-ms-summary"], inputs["mailbox"]["x-ms-visibility"]) == (
        "Shared Mailbox",
        "advanced",
    )
    assert inputs["notificationUrl"]["x-ms-visibility"] == "internal"
    for op_id in ("SubscriptionsList", "SubscriptionsDelete"):
        assert op_by_id(op_id)[2]["x-ms-visibility"] == "internal", op_id
    for op_id in ("DeliveriesList", "DeliveriesRedeliver"):
        assert op_by_id(op_id)[2]["x-ms-visibility"] == "advanced", op_id


def test_attachment_content_is_typed_as_bytes() -> None:
    found = [
        (name, schema)
        for name, schema in definition()["definitions"].items()
        if "contentBytes" in schema.get("properties", {})
    ]

    assert found
    for name, schema in found:
        assert schema["properties"]["contentBytes"]["format"] == "byte", name


def test_recipients_are_typed_text_on_send_draft_reply_and_forward() -> None:
    for body in ("SendMessageBody", "DraftCreateBody", "ReplyBody"):
        for field in ("toRecipients", "ccRecipients", "bccRecipients"):
            prop = definition()["definitions"][body]["properties"][field]
            assert prop["type"] == "string", f"{body}.{field}"
            assert "semicolons" in prop["description"], f"{body}.{field}"
    for op_id in ("MessagesReply", "MessagesReplyAll", "MessagesForward", "DraftsCreate"):
        (body_param,) = [p for p in op_by_id(op_id)[2]["parameters"] if p["in"] == "body"]
        assert ref_name(body_param["schema"]) in ("ReplyBody", "DraftCreateBody"), op_id


def test_the_new_settings_routes_are_operations() -> None:
    expected = {
        "CategoriesList": ("get", "/connections/{connectionId}/categories"),
        "AutomaticRepliesGet": ("get", "/connections/{connectionId}/automaticReplies"),
        "AutomaticRepliesUpdate": ("patch", "/connections/{connectionId}/automaticReplies"),
        "MailTipsGet": ("post", "/connections/{connectionId}/mailTips"),
        "MessagesFlag": ("post", "/connections/{connectionId}/messages/{messageId}/flag"),
        "MessagesMarkRead": ("post", "/connections/{connectionId}/messages/{messageId}/markRead"),
    }

    for op_id, (method, path) in expected.items():
        found_path, found_method, _ = op_by_id(op_id)
        assert (found_method, found_path) == (method, path), op_id


# --- the generator's rules, on their own ----------------------------------------------------
def test_property_names_become_title_case_with_acronyms_spelled_out() -> None:
    assert gen.humanize("receivedDateTime") == "Received Date Time"
    assert gen.humanize("internetMessageId") == "Internet Message ID"
    assert gen.humanize("saveToSentItems") == "Save to Sent Items"
    assert gen.humanize("@odata.type") == "OData Type"


def test_a_union_with_a_text_branch_is_text_in_the_designer() -> None:
    converted = gen.swagger_schema(
        {"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "string"}]}
    )

    assert converted == {"type": "string"}


def test_pickers_are_left_out_when_the_listing_operations_are_not_there() -> None:
    folder = gen._pickers("folder", {"type": "string"}, False, {"messages_list"})
    category = gen._pickers("category", {"type": "string"}, False, {"messages_list"})

    assert folder == {} and category == {}
