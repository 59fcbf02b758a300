"""Mail folders: the top-level list (hidden folders only on request), child folders, and
create/rename/delete with Exchange's rules for distinguished (well-known) folders."""

from __future__ import annotations

from typing import Any

from sandbox.graph import errors, odata, schema
from sandbox.graph.calls import Call, page
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import GraphResponse
from sandbox.graph.store import MSGFOLDERROOT, Folder
from sandbox.graph.views import folder_json

DEFAULT_PAGE_SIZE = 10


def _include_hidden(call: Call) -> bool:
    for name, value in call.request.params:
        if name.lower() == "includehiddenfolders":
            return value.strip().lower() == "true"
    return False


def list_folders(call: Call, parent: Folder | None) -> GraphResponse:
    call.authorize("read")
    params = [(k, v) for k, v in call.request.params if k.lower() != "includehiddenfolders"]
    query = odata.parse_query(params, entity="mailFolder", allow_search=False)
    mailbox = call.mailbox
    parent = parent or mailbox.wk(MSGFOLDERROOT)
    folders = mailbox.children(parent.id)
    if not _include_hidden(call):
        folders = [f for f in folders if not f.is_hidden]
    views = [folder_json(mailbox, f) for f in folders]
    if query.filter is not None:
        node = query.filter
        views = [v for v in views if odata.evaluate(node, v)]
    for path, descending in reversed(query.orderby):
        key = odata.sort_key(path)
        views.sort(key=key, reverse=descending)
    select = query.select
    context = (
        "mailFolders"
        if parent.well_known == MSGFOLDERROOT
        else (f"mailFolders('{parent.id}')/childFolders")
    )
    body = page(
        call,
        views,
        lambda v: (
            v if select is None else {"id": v["id"], **{s: v[s] for s in select if s != "id"}}
        ),
        top=query.top,
        skip=query.skip,
        default_size=DEFAULT_PAGE_SIZE,
        count=query.count,
        context=context,
    )
    return GraphResponse(200, body)


def get_folder(call: Call, ref: str) -> GraphResponse:
    call.authorize("read")
    query = odata.parse_query(call.request.params, entity="mailFolder", collection=False)
    folder = call.folder(ref)
    body: dict[str, Any] = {"@odata.context": call.context_url("mailFolders/$entity")}
    body.update(folder_json(call.mailbox, folder, query.select))
    return GraphResponse(200, body)


def _check_name(call: Call, parent: Folder, name: Any, exclude: Folder | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise errors.bad_request("The displayName property is required.", "ErrorInvalidRequest")
    for sibling in call.mailbox.children(parent.id):
        if sibling is not exclude and sibling.display_name.lower() == name.lower():
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
    return name


def create_folder(call: Call, parent: Folder | None) -> GraphResponse:
    call.authorize("write")
    body = schema.check_object("mailFolder", _object(call.request.json()), allow_navigation=False)
    for name in body:
        if name not in ("displayName", "isHidden") and not name.startswith("@"):
            raise GraphError(400, "ErrorInvalidPropertySet", "Set action is invalid for property.")
    parent = parent or call.mailbox.wk(MSGFOLDERROOT)
    name = _check_name(call, parent, body.get("displayName"))
    folder = call.store.create_folder(
        call.mailbox, parent, name, hidden=bool(body.get("isHidden", False))
    )
    result: dict[str, Any] = {"@odata.context": call.context_url("mailFolders/$entity")}
    result.update(folder_json(call.mailbox, folder))
    return GraphResponse(201, result)


def update_folder(call: Call, ref: str) -> GraphResponse:
    call.authorize("write")
    folder = call.folder(ref)
    body = schema.check_object("mailFolder", _object(call.request.json()), allow_navigation=False)
    for name in body:
        if name != "displayName" and not name.startswith("@"):
            raise GraphError(400, "ErrorInvalidPropertySet", "Set action is invalid for property.")
    if "displayName" in body:
        if folder.well_known is not None:
            raise GraphError(
                400,
                "ErrorCannotRenameDistinguishedFolder",
                "Distinguished folders cannot be renamed.",
            )
        parent = call.mailbox.folders[folder.parent_id or ""]
        folder.display_name = _check_name(call, parent, body["displayName"], exclude=folder)
    result: dict[str, Any] = {"@odata.context": call.context_url("mailFolders/$entity")}
    result.update(folder_json(call.mailbox, folder))
    return GraphResponse(200, result)


def delete_folder(call: Call, ref: str) -> GraphResponse:
    call.authorize("write")
    folder = call.folder(ref)
    if folder.well_known is not None:
        raise GraphError(
            400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
        )
    call.store.delete_folder(call.mailbox, folder)
    return GraphResponse(204)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.body_read_error("The request body must be a JSON object.")
    return value
