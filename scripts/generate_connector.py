"""Generate the Power Automate / Logic Apps custom connector from the API's own operations.

`connector/apiDefinition.swagger.json` (Swagger 2.0) is converted from the same OpenAPI 3.1
document `/api/openapi.json` serves (`build_openapi` over function_app's `API_BLUEPRINTS`), so
a route or model added there reaches the connector with `make connector`. Only operations
callers use with a bearer token belong in it (not the browser sign-in routes, not health).
`connector/apiProperties.json` (the `aad` identity provider) is written beside it.

The output is deterministic (same input, same bytes): tests/connector fails when the checked-in
files differ from a fresh run. Usage:

    python scripts/generate_connector.py                  # rewrite connector/ (placeholders)
    python scripts/generate_connector.py --check          # exit 1 if connector/ is stale
    python scripts/generate_connector.py --out build/connector --host func-x.azurewebsites.net \
        --resource-uri api://<api client id> --client-id <connector client id>
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR_DIR = ROOT / "connector"

TITLE = "Outlook Integration"  # connector titles carry neither "API" nor "Connector"
DESCRIPTION = (
    "Read and manage Outlook mailboxes through connections that people create once in a "
    "browser. The service keeps their grants encrypted and refreshed, so flows never handle "
    "OAuth tokens or secrets."
)
# Placeholders in the checked-in files; docs/deploy.md shows how to render real values.
PLACEHOLDER_HOST = "your-function-app.azurewebsites.net"
PLACEHOLDER_RESOURCE_URI = "api://00000000-0000-0000-0000-000000000000"
PLACEHOLDER_CLIENT_ID = "00000000-0000-0000-0000-000000000000"
SECURITY_NAME = "oauth2-auth"
API_SCOPE = "access_as_user"
# Power Automate's and Logic Apps' consent redirect service; with GlobalPerConnector each
# connector's URI is this plus its own suffix, shown in the portal.
REDIRECT_URL = "https://global.consent.azure-apim.net/redirect"
LIST_CONNECTIONS = "connections_list"

# Short, action-style summaries for the designer, in sentence case and worded as the Office
# 365 Outlook connector's where one matches (flow makers search for those words); the API's
# own sentence becomes the description. An operation without an entry gets a summary derived
# from its own sentence.
SUMMARIES: dict[str, str] = {
    "whoami": "Get my identity",
    "connections_list": "List connections",
    "connections_get": "Get a connection",
    "connections_delete": "Remove a connection",
    "connections_create": "Connect a shared mailbox (admin)",
    "connections_update": "Change who may use a shared mailbox (admin)",
    "messages_list": "List emails",
    "messages_get": "Get an email",
    "messages_mime": "Export an email as MIME",
    "exports_start": "Start a mailbox export",
    "exports_list": "List mailbox exports",
    "exports_get": "Get an export",
    "exports_delete": "Cancel or delete an export",
    "exports_manifest": "Get an export manifest",
    "exports_verify": "Verify an export",
    "exports_item": "Get an exported item",
    "messages_send": "Send an email",
    "messages_update": "Update an email",
    "messages_delete": "Delete an email",
    "messages_move": "Move an email",
    "messages_copy": "Copy an email",
    "messages_reply": "Reply to an email",
    "messages_replyAll": "Reply all to an email",
    "messages_forward": "Forward an email",
    "messages_bulk": "Act on many emails at once",
    "messages_flag": "Flag email",
    "messages_mark_read": "Mark as read or unread",
    "messages_assign_category": "Assign a category",
    "drafts_create": "Create a draft email",
    "drafts_update": "Update a draft email",
    "drafts_send": "Send a draft email",
    "messages_send_with_options": "Send email with options",
    "folders_list": "List folders",
    "folders_children": "List child folders",
    "folders_create": "Create a folder",
    "folders_rename": "Rename a folder",
    "folders_delete": "Delete a folder",
    "attachments_list": "List attachments",
    "attachments_get": "Get attachment metadata",
    "attachments_content": "Get attachment content",
    "attachments_add": "Add an attachment to a draft",
    "categories_list": "List categories",
    "automatic_replies_get": "Get automatic replies",
    "automatic_replies_update": "Set up automatic replies",
    "mail_tips_get": "Get mail tips for recipients",
    "subscriptions_create": "When a new email arrives (webhook)",
    "subscriptions_list": "List trigger subscriptions",
    "subscriptions_delete": "Remove a trigger subscription",
    "deliveries_list": "List trigger deliveries",
    "deliveries_redeliver": "Redeliver a trigger event",
    "option_subscriptions_create": "When an option is chosen (webhook)",
    "option_subscriptions_delete": "Remove an option trigger",
}
# The trigger's bookkeeping, which Power Automate does itself (it DELETEs the Location when
# a flow is turned off): kept out of the designer's action list.
INTERNAL_OPERATIONS = frozenset({"subscriptions_list", "subscriptions_delete"})
# The webhook trigger (docs/triggers.md): Power Automate registers its callback URL in the
# body's notificationUrl (x-ms-notification-url, hidden from flow authors), keeps the 201's
# Location header and DELETEs it when the flow is turned off. The 201 schema a trigger
# declares is what the flow sees of each call to the callback: the signed event.
TRIGGER_OPERATION = "subscriptions_create"
TRIGGER_REQUEST = "SubscriptionCreate"
TRIGGER_EVENT = "MessageEvent"
TRIGGER_MESSAGE = "TriggerMessage"
TRIGGER_HINT = "To see it work, send an email to the connected mailbox (or its folder)."
# Every webhook trigger: operation id -> (request definition, event model "module:Name",
# hint). Custom connectors have webhook triggers but no webhook actions (docs/logic-apps.md),
# so "Send email with options" reports choices through the second one.
TRIGGERS: dict[str, tuple[str, str, str]] = {
    TRIGGER_OPERATION: (TRIGGER_REQUEST, "shared.http.subscriptions:MessageEvent", TRIGGER_HINT),
    "option_subscriptions_create": (
        "OptionSubscriptionCreate",
        "shared.options.models:OptionChosenEvent",
        "To see it work, send email with options (no callback URL) and choose an option.",
    ),
}

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Descriptions of parameters whose model gives none (path parameters never have one).
PARAMETER_TEXT: dict[str, tuple[str, str]] = {
    "connectionId": ("Connection", "The connection (mailbox) to use; pick one from the list."),
    "messageId": ("Message ID", "The id of the message."),
    "draftId": ("Draft ID", "The id of the draft."),
    "folderId": ("Folder", "The folder: pick one, or a well-known name such as inbox."),
    "attachmentId": ("Attachment ID", "The id of the attachment."),
    "subscriptionId": ("Subscription ID", "The id of the trigger subscription."),
    "cursor": (
        "Cursor",
        "The nextCursor of the previous page; leave empty for the first page.",
    ),
    "top": ("Page Size", "How many items one page holds at most."),
    "unread": ("Unread", "Only unread (true) or only read (false) messages."),
    "flagged": ("Flagged", "Only flagged (true) or only unflagged (false) messages."),
    "from": ("From", "Only messages from this sender address."),
    "to": ("To", "Only messages to this recipient address."),
    "subjectContains": ("Subject Contains", "Only messages whose subject contains this text."),
    "hasAttachments": ("Has Attachments", "Only messages with (true) or without attachments."),
    "importance": ("Importance", "Only messages of this importance."),
    "receivedAfter": ("Received After", "Only messages received at or after this time."),
    "receivedBefore": ("Received Before", "Only messages received before this time."),
    "orderBy": ("Order By", "Sort order by received time; default: newest first."),
    "bodyType": ("Body Type", "Return the body as html or text."),
    "includeAttachments": (
        "Include Attachments",
        "Also return the attachments' metadata (not their content).",
    ),
    "mailbox": (
        "Shared Mailbox",
        "A shared mailbox (UPN or id) the connected user may access; default: their own.",
    ),
    "body": ("Body Part", "full: the whole body; unique: only the new text."),
    IDEMPOTENCY_HEADER: ("Idempotency Key", ""),  # its description is the API's own
}
# Listed under the designer's advanced actions, out of the everyday list: actions only an
# administrator can use (the API answers 403 to anyone else), and the trigger's deliveries,
# for support rather than for flows.
ADVANCED_OPERATIONS = frozenset(
    {"connections_create", "connections_update", "deliveries_list", "deliveries_redeliver"}
)

# Rarely used filters and knobs: shown under "Show advanced options".
ADVANCED = frozenset(
    {
        IDEMPOTENCY_HEADER,
        "cursor",
        "top",
        "mailbox",
        "select",
        "orderBy",
        "search",
        "to",
        "subjectContains",
        "hasAttachments",
        "importance",
        "flagged",
        "receivedAfter",
        "receivedBefore",
        "bodyType",
        "includeAttachments",
    }
)
# Base64 file content: Swagger's `format: byte`.
BYTE_PROPERTIES = frozenset({"contentBytes"})
# Parameters and request-body properties that name a folder or a category get a picker.
FOLDER_PARAMETERS = frozenset({"folder", "folderId", "destinationFolder", "parentFolder"})
LIST_FOLDERS = "folders_list"
LIST_CHILD_FOLDERS = "folders_children"
LIST_CATEGORIES = "categories_list"
# The property of a list response that holds an absolute URL of the next page. Power Automate
# and Logic Apps page only by following such a URL (x-ms-pageable); an opaque cursor
# (nextCursor) cannot be followed, so lists without it stay unpaged (docs/logic-apps.md).
NEXT_LINK = "nextLink"

_SCHEMA_KEYS = frozenset(
    {
        "$ref",
        "format",
        "title",
        "description",
        "default",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "enum",
        "type",
        "items",
        "allOf",
        "properties",
        "additionalProperties",
        "readOnly",
        "example",
    }
)
_PARAMETER_KEYS = frozenset(
    {
        "type",
        "format",
        "items",
        "default",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "enum",
        "multipleOf",
    }
)


def load_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of function_app's blueprints, exactly as /api/openapi.json.
    Run it in its own process (as `make connector` does): importing function_app validates
    settings from the environment, so the sample's values are put there for the import."""
    sys.path.insert(0, str(ROOT))
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    for name, value in sample["Values"].items():
        os.environ.setdefault(name, value)
    os.environ["CA_BUNDLE"] = ""  # none of these values reaches the description
    import function_app
    from shared.http.openapi import build_openapi

    return build_openapi(op for area in function_app.API_BLUEPRINTS for op in area.operations)


def pascal_case(operation_id: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", operation_id))


# Words written their own way in a Title Case summary; the rest get a capital first letter
# (small words only when they open the summary), as Microsoft's connector guidelines ask.
SPELLINGS = {"id": "ID", "ids": "IDs", "odata": "OData", "mime": "MIME", "url": "URL", "upn": "UPN"}
SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to"}
)


def title_case(text: str) -> str:
    words = text.split()
    out = []
    for i, word in enumerate(words):
        lower = word.lower()
        if lower in SPELLINGS:
            out.append(SPELLINGS[lower])
        elif i > 0 and lower in SMALL_WORDS:
            out.append(lower)
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def humanize(name: str) -> str:
    """`receivedDateTime` → `Received Date Time`, `@odata.type` → `OData Type`."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return title_case(re.sub(r"[^A-Za-z0-9]+", " ", words).lower())


def derived_summary(sentence: str) -> str:
    """First clause of the API's sentence, without its final period, at most 80 characters."""
    text = re.split(r"[(:;]", sentence, maxsplit=1)[0].strip().rstrip(".").strip()
    return text if len(text) <= 80 else text[:77].rstrip() + "..."


def swagger_schema(schema: Any) -> Any:
    """A JSON Schema 2020-12 (pydantic) schema as a Swagger 2.0 Schema Object."""
    if isinstance(schema, list):
        return [swagger_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    source = dict(schema)
    out: dict[str, Any] = {}
    nullable = False
    for union in ("anyOf", "oneOf"):
        branches = source.pop(union, None)
        if branches is None:
            continue
        concrete = [b for b in branches if b.get("type") != "null"]
        nullable = nullable or len(concrete) < len(branches)
        strings = [b for b in concrete if b.get("type") == "string"]
        if len(concrete) == 1:
            out.update(swagger_schema(concrete[0]))
        elif len(strings) == 1:
            # Swagger 2.0 has no union. A text the flow maker can type (e.g. recipients as
            # `a@x; b@y`) serves the designer best; the API still takes the other shapes.
            out.update(swagger_schema(strings[0]))
        # Several other concrete branches: any value is allowed.
    if isinstance(source.get("type"), list):
        types = [t for t in source["type"] if t != "null"]
        nullable = nullable or len(types) < len(source["type"])
        source["type"] = types[0] if len(types) == 1 else None
    if "const" in source:
        source.setdefault("enum", [source.pop("const")])
    if source.get("examples"):
        source["example"] = source["examples"][0]
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        value = source.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            source[bound.replace("exclusiveM", "m")] = value
            source[bound] = True
    if "$ref" in out:
        return out  # Swagger 2.0 ignores siblings of $ref
    for key, value in source.items():
        if key not in _SCHEMA_KEYS or value is None:
            continue
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/definitions/")
            return {key: out[key]}
        if key == "properties":
            out[key] = {name: _property(name, prop) for name, prop in sorted(value.items())}
        elif key in ("items", "additionalProperties", "allOf"):
            out[key] = swagger_schema(value)
        else:
            out[key] = value
    if nullable:
        out["x-nullable"] = True
    return out


def _property(name: str, schema: Any) -> Any:
    converted = swagger_schema(schema)
    if "$ref" in converted:
        return converted
    converted.pop("title", None)  # pydantic's "Nextcursor"-style titles help nobody
    converted["x-ms-summary"] = humanize(name)
    if name in BYTE_PROPERTIES and converted.get("type") == "string":
        converted["format"] = "byte"  # the designer then passes file content as base64
    return converted


def _parameter(raw: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    name = str(raw["name"])
    schema = swagger_schema(raw.get("schema", {"type": "string"}))
    if "$ref" in schema:  # an enum model: parameters cannot reference definitions
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    summary, text = PARAMETER_TEXT.get(name, (humanize(name), ""))
    description = str(schema.get("description") or text or f"{humanize(name)}.")
    param: dict[str, Any] = {
        "name": name,
        "in": raw["in"],
        "required": bool(raw.get("required", False)),
        "type": schema.get("type") or "string",
        "x-ms-summary": summary,
        "description": description,
    }
    for key in sorted(_PARAMETER_KEYS - {"type"}):
        if key in schema and schema[key] is not None:
            param[key] = schema[key]
    if name in ADVANCED and not param["required"]:
        param["x-ms-visibility"] = "advanced"
    if name == "connectionId":
        param["x-ms-dynamic-values"] = {
            "operationId": pascal_case(LIST_CONNECTIONS),
            "value-collection": "value",
            "value-path": "id",
            "value-title": "mailbox",
        }
    return param


def _pickers(
    name: str, schema: Mapping[str, Any], with_mailbox: bool, available: set[str]
) -> dict[str, Any]:
    """The designer's pickers for a parameter or body property naming a folder (a list of
    the top-level folders, and a tree that opens child folders) or a category."""
    # The two extensions spell "pass this operation's parameter" differently: dynamic values
    # `{"parameter": name}`, the tree `{"parameterReference": name}` (Logic Apps' model,
    # SwaggerCustomDynamicTreeParameter).
    passed = ["connectionId", "mailbox"] if with_mailbox else ["connectionId"]
    call: dict[str, Any] = {n: {"parameter": n} for n in passed}
    tree_call: dict[str, Any] = {n: {"parameterReference": n} for n in passed}
    if name in FOLDER_PARAMETERS and schema.get("type") == "string":
        if LIST_FOLDERS not in available or LIST_CHILD_FOLDERS not in available:
            return {}
        listing = {
            "itemsPath": "value",
            "itemValuePath": "id",
            "itemTitlePath": "displayName",
            "itemIsParent": "(childFolderCount gt 0)",
        }
        return {
            "x-ms-dynamic-values": {
                "operationId": pascal_case(LIST_FOLDERS),
                "parameters": call,
                "value-collection": "value",
                "value-path": "id",
                "value-title": "displayName",
            },
            "x-ms-dynamic-tree": {
                "settings": {"canSelectParentNodes": True, "canSelectLeafNodes": True},
                "open": {
                    "operationId": pascal_case(LIST_FOLDERS),
                    "parameters": tree_call,
                    **listing,
                },
                "browse": {
                    "operationId": pascal_case(LIST_CHILD_FOLDERS),
                    "parameters": {**tree_call, "folderId": {"selectedItemValuePath": "id"}},
                    **listing,
                },
            },
        }
    if LIST_CATEGORIES not in available:
        return {}
    categories = {
        "x-ms-dynamic-values": {
            "operationId": pascal_case(LIST_CATEGORIES),
            "parameters": call,
            "value-collection": "value",
            "value-path": "displayName",
            "value-title": "displayName",
        }
    }
    if name == "category" and schema.get("type") == "string":
        return categories
    if name == "categories" and schema.get("type") == "array":
        return {"items": {**schema.get("items", {}), **categories}}
    return {}


def _responses(raw: Mapping[str, Any], produces: set[str]) -> tuple[dict[str, Any], str | None]:
    """Swagger responses, and the definition name of the success body (if JSON)."""
    responses: dict[str, Any] = {}
    success_model: str | None = None
    for status, response in sorted(raw.items()):
        converted: dict[str, Any] = {"description": response["description"]}
        content: dict[str, Any] = response.get("content") or {}
        for media_type, body in sorted(content.items()):
            produces.add(media_type)
            converted["schema"] = swagger_schema(body["schema"])
            if status.startswith("2") and "$ref" in converted["schema"]:
                success_model = converted["schema"]["$ref"].rsplit("/", 1)[-1]
        responses[status] = converted
    return responses, success_model


def _is_bearer(operation: Mapping[str, Any]) -> bool:
    return any("bearer" in requirement for requirement in operation.get("security", []))


def build_definition(
    openapi: Mapping[str, Any],
    host: str,
    resource_uri: str,
    binary: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The Swagger 2.0 connector definition of the bearer operations in `openapi`; `binary`
    names the non-JSON success bodies (operation id → status → media type)."""
    definitions = {
        name: swagger_schema(schema)
        for name, schema in sorted(openapi["components"]["schemas"].items())
    }
    raw_ops = binary or {}
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    bodies: set[str] = set()  # definitions request bodies use (they get pickers)
    available = {op["operationId"] for item in openapi["paths"].values() for op in item.values()}
    for path, item in sorted(openapi["paths"].items()):
        for method, op in item.items():
            if not _is_bearer(op):
                continue
            produces: set[str] = set()
            responses, success_model = _responses(op["responses"], produces)
            for status, media_type in raw_ops.get(op["operationId"], {}).items():
                produces.add(media_type)
                responses[status]["schema"] = {"type": "string", "format": "binary"}
            parameters = [_parameter(p, definitions) for p in op.get("parameters", [])]
            names = {p["name"] for p in parameters}
            for param in parameters:
                param.update(_pickers(param["name"], param, "mailbox" in names, available))
            body = _request_body(op)
            if body is not None:
                parameters.append(body)
                bodies.update(_refs(body))
            operation: dict[str, Any] = {
                "operationId": pascal_case(op["operationId"]),
                "summary": SUMMARIES.get(op["operationId"], derived_summary(op["summary"])),
                "description": op["summary"],
                "tags": op.get("tags", []),
                "produces": sorted(produces) or ["application/json"],
                "parameters": parameters,
                "responses": responses,
            }
            if body is not None:
                operation["consumes"] = ["application/json"]
            if op["operationId"] in ADVANCED_OPERATIONS:
                operation["x-ms-visibility"] = "advanced"
            if op["operationId"] in INTERNAL_OPERATIONS:
                operation["x-ms-visibility"] = "internal"
            if method == "get" and NEXT_LINK in _list_properties(definitions, success_model):
                operation["x-ms-pageable"] = {"nextLinkName": NEXT_LINK}
            if op["operationId"] in TRIGGERS:
                _make_trigger(operation, definitions, *TRIGGERS[op["operationId"]])
            paths.setdefault(path, {})[method] = operation
            used.update(_refs(operation))
    for name in _closure(bodies, definitions):
        for prop_name, prop in definitions[name].get("properties", {}).items():
            # Body properties reach only the operation's connection: a shared mailbox given
            # as a query parameter is not theirs to reference (definitions are shared).
            prop.update(_pickers(prop_name, prop, False, available))
    return {
        "swagger": "2.0",
        "info": {"title": TITLE, "description": DESCRIPTION, "version": openapi["info"]["version"]},
        "host": host,
        "basePath": "/api",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": {name: definitions[name] for name in sorted(_closure(used, definitions))},
        "securityDefinitions": {
            SECURITY_NAME: {
                "type": "oauth2",
                "flow": "accessCode",
                "authorizationUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
                "tokenUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
                "scopes": {f"{resource_uri}/{API_SCOPE}": "Use connected mailboxes as you."},
            }
        },
        "security": [{SECURITY_NAME: []}],
        "tags": [],
        "x-ms-connector-metadata": [
            {
                "propertyName": "Website",
                "propertyValue": "https://github.com/outlook-integration-api/outlook-integration-api",
            },
            {
                "propertyName": "Privacy policy",
                "propertyValue": "https://github.com/outlook-integration-api/outlook-integration-api/blob/main/docs/security.md",
            },
            {"propertyName": "Categories", "propertyValue": "Communication;IT Operations"},
        ],
    }


def _make_trigger(
    operation: dict[str, Any], definitions: dict[str, Any], request_name: str, event: str, hint: str
) -> None:
    """Turn a webhook-registering operation into a webhook trigger (in place)."""
    import importlib

    module, name = event.split(":")
    model = getattr(importlib.import_module(module), name)
    operation["x-ms-trigger"] = "single"
    operation["x-ms-trigger-hint"] = hint
    request = definitions[request_name]
    for prop_name, prop in request["properties"].items():
        # The trigger's filters and knobs read as the actions' parameters of the same name:
        # the same summary, and the rarely used ones under "Show advanced options".
        if prop_name in PARAMETER_TEXT:
            prop["x-ms-summary"] = PARAMETER_TEXT[prop_name][0]
        if prop_name in ADVANCED and prop_name not in request.get("required", ()):
            prop["x-ms-visibility"] = "advanced"
    callback = request["properties"]["notificationUrl"]
    callback["x-ms-notification-url"] = True
    callback["x-ms-visibility"] = "internal"
    callback.pop("title", None)
    schema = swagger_schema(model.model_json_schema(ref_template="#/definitions/{model}"))
    schema.pop("title", None)
    if name == TRIGGER_EVENT and "Message" in definitions:
        # The mail trigger's message, typed, so that its fields appear as dynamic content.
        definitions[TRIGGER_MESSAGE] = _trigger_message(definitions["Message"])
        schema["properties"]["message"] = {"$ref": f"#/definitions/{TRIGGER_MESSAGE}"}
    definitions[name] = schema
    operation["responses"]["201"]["schema"] = {"$ref": f"#/definitions/{name}"}


def _trigger_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """The event's `message` (with Include message): the fields the delivery worker reads
    from Graph (shared.notifications.filters.MESSAGE_SELECT), typed as the Message model
    types them, so a flow sees Subject, From, Received Date Time... as outputs."""
    from shared.notifications.filters import MESSAGE_SELECT

    fields = [f.strip() for f in MESSAGE_SELECT.split(",") if f.strip()]
    properties = message.get("properties", {})
    return {
        "type": "object",
        "description": "The new message's headers (with Include message); never its body.",
        "x-ms-summary": "Message",
        "properties": {name: properties[name] for name in sorted(fields) if name in properties},
    }


def _binary_bodies() -> dict[str, dict[str, str]]:
    """Success responses without a JSON model (MIME, attachment bytes), from the route table:
    the OpenAPI document names no media type for them. function_app is already imported."""
    import function_app

    found: dict[str, dict[str, str]] = {}
    for area in function_app.API_BLUEPRINTS:
        for op in area.operations:
            for status, spec in op.responses.items():
                if spec.model is None and status != 204 and "json" not in spec.media_type:
                    for method in op.methods:
                        operation_id = (
                            op.operation_id
                            if len(op.methods) == 1
                            else f"{op.operation_id}_{method.lower()}"
                        )
                        found.setdefault(operation_id, {})[str(status)] = spec.media_type
    return found


def _request_body(op: Mapping[str, Any]) -> dict[str, Any] | None:
    request = op.get("requestBody")
    if not request:
        return None
    schema = request["content"]["application/json"]["schema"]
    return {
        "name": "body",
        "in": "body",
        "required": bool(request.get("required", True)),
        "x-ms-summary": "Body",
        "description": "The request body.",
        "schema": swagger_schema(schema),
    }


def _list_properties(definitions: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """The properties of a list response (`value` is an array), else nothing."""
    properties: dict[str, Any] = definitions.get(model or "", {}).get("properties", {})
    return properties if properties.get("value", {}).get("type") == "array" else {}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _closure(names: Iterable[str], definitions: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_refs(definitions[name]))
    return seen


def build_properties(
    definition: Mapping[str, Any], resource_uri: str, client_id: str
) -> dict[str, Any]:
    """apiProperties.json: Entra ID (aad) sign-in for this API's app id URI."""
    pageable = [
        (op["operationId"], op["x-ms-pageable"]["nextLinkName"])
        for item in definition["paths"].values()
        for op in item.values()
        if "x-ms-pageable" in op
    ]
    triggers = any(
        "x-ms-trigger" in op for item in definition["paths"].values() for op in item.values()
    )
    return {
        "properties": {
            "connectionParameters": {
                "token": {
                    "type": "oauthSetting",
                    "oAuthSettings": {
                        "identityProvider": "aad",
                        "clientId": client_id,
                        "scopes": [f"{resource_uri}/{API_SCOPE}"],
                        # Each connector gets its own redirect URI (required since 2024);
                        # the portal shows it once the connector is created.
                        "redirectMode": "GlobalPerConnector",
                        "redirectUrl": REDIRECT_URL,
                        "properties": {"IsFirstParty": "False"},
                        "customParameters": {
                            "loginUri": {"value": "https://login.microsoftonline.com"},
                            "tenantId": {"value": "common"},
                            "resourceUri": {"value": resource_uri},
                        },
                    },
                    "uiDefinition": {
                        "displayName": "Sign in with your work account",
                        "description": "The Entra ID account that calls the API.",
                        "tooltip": "Provide your work account",
                        "constraints": {"required": "true"},
                    },
                },
                "token:TenantId": {
                    "type": "string",
                    "metadata": {"sourceType": "AzureActiveDirectoryTenant"},
                    "uiDefinition": {
                        "constraints": {"required": "false", "hidden": "true"},
                        # The schema fixes this text (typo included).
                        "description": (
                            "The tenant ID of for the Azure Active Directory application"
                        ),
                        "displayName": "Tenant",
                    },
                },
            },
            "iconBrandColor": "#0F6CBD",
            "capabilities": ["actions", "triggers"] if triggers else ["actions"],
            "publisher": "Outlook Integration API maintainers",
            "stackOwner": "Outlook Integration API maintainers",
            "policyTemplateInstances": [
                {
                    "templateId": "updatenextlink",
                    "title": f"Route {name} through the connector",
                    "parameters": {
                        "x-ms-apimTemplate-operationName": [operation_id],
                        "x-ms-apimTemplateParameter.nextLinkPropertyName": name,
                    },
                }
                for operation_id, name in pageable
            ],
        }
    }


README_START = "<!-- operations:start (scripts/generate_connector.py) -->"
README_END = "<!-- operations:end -->"


def readme_operations(definition: Mapping[str, Any]) -> str:
    """The readme's "Supported Operations" list, one entry per connector operation."""
    lines = [README_START]
    for item in definition["paths"].values():
        for op in item.values():
            lines += ["", f"### {op['summary']}", "", op["description"]]
    return "\n".join([*lines, "", README_END])


def render_readme(current: str, definition: Mapping[str, Any]) -> str:
    start, end = current.index(README_START), current.index(README_END) + len(README_END)
    return current[:start] + readme_operations(definition) + current[end:]


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate(
    host: str = PLACEHOLDER_HOST,
    resource_uri: str = PLACEHOLDER_RESOURCE_URI,
    client_id: str = PLACEHOLDER_CLIENT_ID,
) -> dict[str, str]:
    """File name → content of the connector files."""
    definition = build_definition(load_openapi(), host, resource_uri, _binary_bodies())
    properties = build_properties(definition, resource_uri, client_id)
    readme = (CONNECTOR_DIR / "readme.md").read_text(encoding="utf-8")
    return {
        "apiDefinition.swagger.json": render(definition),
        "apiProperties.json": render(properties),
        "readme.md": render_readme(readme, definition),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CONNECTOR_DIR)
    parser.add_argument("--host", default=PLACEHOLDER_HOST)
    parser.add_argument("--resource-uri", default=PLACEHOLDER_RESOURCE_URI)
    parser.add_argument("--client-id", default=PLACEHOLDER_CLIENT_ID)
    parser.add_argument("--check", action="store_true", help="fail if --out is stale")
    args = parser.parse_args(argv)
    files = generate(args.host, args.resource_uri, args.client_id)
    stale = [
        name
        for name, text in files.items()
        if not (args.out / name).is_file() or (args.out / name).read_text(encoding="utf-8") != text
    ]
    if args.check:
        for name in stale:
            print(f"{args.out / name} is stale: run `make connector`", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(sorted(files))} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
