"""`GET .../mailFolders/{id}/messages/delta`: Graph's delta query for messages in one folder.

Tokens are opaque to clients and self-contained here (the store's change sequence number),
so the sandbox keeps no per-client sync state: `$skiptoken` pages a round, `$deltatoken`
starts the next one with what changed since the previous round ended, removals as
`@removed` entries.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sandbox.graph import errors, odata
from sandbox.graph.calls import Call
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import GraphResponse
from sandbox.graph.store import Folder, Message
from sandbox.graph.views import message_json

DEFAULT_PAGE_SIZE = 10
_FILTER_ONLY = (
    "The '$filter' parameter value is not supported for 'Messages' resource; only a value of"
    " 'receivedDateTime ge value' is supported."
)


def _encode(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(token: str, folder: Folder) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("f") != folder.id:
            raise ValueError
        return state
    except (ValueError, UnicodeDecodeError):
        raise GraphError(
            400, "ErrorInvalidUrlQuery", "The sync state or delta token is invalid."
        ) from None


def sync_state_not_found() -> GraphError:
    """What Exchange answers for a sync state it no longer holds (expired, or reset): the
    client must start over with a fresh delta round."""
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state is not found. Restart the sync from the beginning.",
    )


def _received_filter(raw: str) -> tuple[str, str]:
    parser = odata.FilterParser(raw, odata.MESSAGE_FILTER_PATHS)
    node = parser.parse()
    if (
        node.kind != "cmp"
        or node.args[0] not in ("ge", "gt")
        or node.args[1].args[0] != ["receivedDateTime"]
    ):
        raise GraphError(400, "ErrorInvalidUrlQuery", _FILTER_ONLY)
    return node.args[0], node.args[2]


def delta(call: Call, folder: Folder) -> GraphResponse:
    call.authorize("read")
    params: dict[str, str] = {}
    for name, raw in call.request.params:
        key = name.lower() if name.startswith("$") else "$" + name.lower()
        if key in params:
            raise errors.bad_request(f"Query option '{key}' was specified more than once.")
        params[key] = raw
    for key in params:
        if key not in (
            "$select",
            "$filter",
            "$top",
            "$skiptoken",
            "$deltatoken",
            "$expand",
            "$orderby",
            "$changetype",
        ):
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                f"The query parameter '{key}' is not supported with delta.",
            )
    store = call.store
    if "$skiptoken" in params or "$deltatoken" in params:
        token = params.get("$skiptoken") or params.get("$deltatoken") or ""
        state = _decode(token, folder)
        if int(state.get("e", 0)) != call.mailbox.delta_epoch:
            raise sync_state_not_found()
        if "$deltatoken" in params:
            state = {**state, "u": store.seq, "o": 0}
    else:
        select = odata.parse_select(params["$select"], "message") if "$select" in params else None
        size = DEFAULT_PAGE_SIZE
        preferred = call.request.prefer("odata.maxpagesize")
        if preferred and preferred.isdigit():
            size = max(1, min(int(preferred), odata.MAX_TOP))
        if "$top" in params:
            size = max(1, min(odata.parse_int_option("$top", params["$top"]), odata.MAX_TOP))
        state = {"f": folder.id, "s": 0, "u": store.seq, "o": 0, "sel": select, "p": size}
        if call.mailbox.delta_epoch:
            state["e"] = call.mailbox.delta_epoch
        if "$orderby" in params:
            if " ".join(params["$orderby"].split()).lower() != "receiveddatetime desc":
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    "The only supported $orderby expression for delta is 'receivedDateTime desc'.",
                )
            state["ord"] = 1
        if "$expand" in params:
            if params["$expand"].strip().lower() != "attachments":
                raise odata.unknown_property(params["$expand"].strip())
            state["exp"] = 1
        if "$changetype" in params:
            requested = params["$changetype"].strip().lower()
            if requested not in ("created", "updated", "deleted"):
                raise GraphError(
                    400, "ErrorInvalidUrlQuery", f"The changeType '{requested}' is not valid."
                )
            state["ct"] = requested
        if "$filter" in params:
            op, bound = _received_filter(params["$filter"])
            state["flt"] = [op, bound]
    since, until, offset = int(state["s"]), int(state["u"]), int(state["o"])
    change_type = state.get("ct")
    changed = [
        m
        for m in call.mailbox.messages_in(folder.id)
        if since < m.changed <= until
        and _passes(m, state.get("flt"))
        and (
            change_type is None
            or (change_type == "created" and m.arrived > since)
            or (change_type == "updated" and m.arrived <= since)
        )
    ]
    if state.get("ord"):
        changed.sort(key=lambda m: (m.props["receivedDateTime"], m.seq), reverse=True)
    else:
        changed.sort(key=lambda m: (m.changed, m.seq))
    removed = []
    if since > 0 and change_type in (None, "deleted"):
        present = {m.immutable_id for m in call.mailbox.messages_in(folder.id)}
        seen: set[str] = set()
        for tomb in call.mailbox.tombstones:
            if (
                tomb.folder_id == folder.id
                and since < tomb.seq <= until
                and tomb.immutable_id not in present
                and tomb.immutable_id not in seen
            ):
                seen.add(tomb.immutable_id)
                removed.append(tomb)
    if change_type == "deleted":
        changed = []
    entries: list[Any] = [*changed, *removed]
    size = int(state["p"])
    chunk = entries[offset : offset + size]
    immutable = call.immutable
    value: list[dict[str, Any]] = []
    for entry in chunk:
        if isinstance(entry, Message):
            value.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    **message_json(
                        entry,
                        immutable=immutable,
                        select=state.get("sel"),
                        expand_attachments=bool(state.get("exp")),
                        body_type=call.request.body_type,
                    ),
                }
            )
        else:
            value.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": entry.immutable_id if immutable else entry.regular_id,
                    "@removed": {"reason": "deleted"},
                }
            )
    body: dict[str, Any] = {
        "@odata.context": f"{call.graph_base}/$metadata#Collection(message)",
        "value": value,
    }
    base = f"{call.graph_base}{call.request.path}"
    if offset + size < len(entries):
        body["@odata.nextLink"] = f"{base}?$skiptoken={_encode({**state, 'o': offset + size})}"
    else:
        next_state = {**state, "s": until, "o": 0}
        next_state.pop("u", None)
        body["@odata.deltaLink"] = f"{base}?$deltatoken={_encode(next_state)}"
    return GraphResponse(200, body)


def _passes(message: Message, flt: list[str] | None) -> bool:
    if not flt:
        return True
    op, value = flt
    received = message.props["receivedDateTime"]
    return bool(received >= value if op == "ge" else received > value)
