"""OData query options for mail collections, as Outlook's Graph endpoint treats them.

Parses and evaluates `$filter` (the operators and properties Outlook supports that the product
uses), `$orderby` (with Outlook's "InefficientFilter" rule), `$select`, `$search` (a KQL
subset), `$top`/`$skip`/`$count`/`$skiptoken`. Anything outside that fails with a 400 the way
Graph fails; nothing is silently ignored.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.graph.errors import GraphError, bad_request
from sandbox.graph.schema import ENUM_TYPES, entity_properties
from sandbox.graph.store import normalise_datetime

MAX_TOP = 1000
MAX_SEARCH_RESULTS = 1000

# Outlook's type names, as its parse errors spell them.
OUTLOOK_TYPE = {
    "message": "Microsoft.OutlookServices.Message",
    "mailFolder": "Microsoft.OutlookServices.MailFolder",
    "attachment": "Microsoft.OutlookServices.Attachment",
}

# Filterable paths of a message and their types: str, bool, datetime, enum:<name>,
# recipients (collection of recipient), strings (collection of string).
MESSAGE_FILTER_PATHS: dict[str, str] = {
    "subject": "str",
    "bodyPreview": "str",
    "conversationId": "str",
    "internetMessageId": "str",
    "parentFolderId": "str",
    "isRead": "bool",
    "isDraft": "bool",
    "hasAttachments": "bool",
    "isReadReceiptRequested": "bool",
    "isDeliveryReceiptRequested": "bool",
    "importance": "enum:importance",
    "inferenceClassification": "enum:inferenceClassificationType",
    "flag/flagStatus": "enum:followupFlagStatus",
    "receivedDateTime": "datetime",
    "sentDateTime": "datetime",
    "createdDateTime": "datetime",
    "lastModifiedDateTime": "datetime",
    "from/emailAddress/address": "str",
    "from/emailAddress/name": "str",
    "sender/emailAddress/address": "str",
    "sender/emailAddress/name": "str",
    "categories": "strings",
    "toRecipients": "recipients",
    "ccRecipients": "recipients",
    "bccRecipients": "recipients",
    "replyTo": "recipients",
}
RECIPIENT_PATHS = {"emailAddress/address": "str", "emailAddress/name": "str"}

MESSAGE_ORDERBY_PATHS = frozenset(
    {
        "receivedDateTime",
        "sentDateTime",
        "createdDateTime",
        "lastModifiedDateTime",
        "subject",
        "importance",
        "isRead",
        "hasAttachments",
        "flag/flagStatus",
        "from/emailAddress/address",
        "from/emailAddress/name",
    }
)

_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_OP_KIND = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_SWAPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_INVALID_NODES = "The query filter contains one or more invalid nodes."


def invalid_nodes() -> GraphError:
    return GraphError(400, "ErrorInvalidUrlQueryFilter", _INVALID_NODES)


def unknown_property(name: str, entity: str = "message") -> GraphError:
    return GraphError(
        400,
        "RequestBroker--ParseUri",
        f"Could not find a property named '{name}' on type '{OUTLOOK_TYPE[entity]}'.",
    )


def filter_syntax(position: int, text: str) -> GraphError:
    return bad_request(f"Invalid filter clause: Syntax error at position {position} in '{text}'.")


# --- $filter -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, datetime, number, punct
    value: str
    pos: int


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}
          (?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})?)?)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[(),/:])
    )""",
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise filter_syntax(start, text)
        kind = match.lastgroup or "punct"
        value = match.group(kind)
        tokens.append(Token(kind, value, match.start(kind)))
        pos = match.end()
    return tokens


@dataclass
class Node:
    kind: str  # or, and, not, cmp, func, path, lit, any
    args: list[Any] = field(default_factory=list)


class FilterParser:
    def __init__(self, text: str, paths: dict[str, str], entity: str = "message") -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.paths = paths
        self.entity = entity
        self.properties_in_order: list[str] = []
        self.lambda_vars: dict[str, str] = {}  # variable -> collection type

    # token helpers
    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise filter_syntax(len(self.text), self.text)
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token.value != value:
            raise filter_syntax(token.pos, self.text)

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "ident" and token.value in words

    def parse(self) -> Node:
        if not self.tokens:
            raise bad_request("Invalid filter clause: The $filter expression must not be empty.")
        node = self.parse_or()
        if self.peek() is not None:
            raise filter_syntax(self.tokens[self.i].pos, self.text)
        self.check_boolean(node)
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.at_word("or"):
            self.take()
            node = Node("or", [node, self.parse_and()])
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.at_word("and"):
            self.take()
            node = Node("and", [node, self.parse_not()])
        return node

    def parse_not(self) -> Node:
        if self.at_word("not"):
            self.take()
            return Node("not", [self.parse_not()])
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        left = self.parse_primary()
        token = self.peek()
        if token is not None and token.kind == "ident" and token.value in _COMPARISONS:
            self.take()
            right = self.parse_primary()
            return self.typed_comparison(token.value, left, right)
        if (
            token is not None
            and token.kind == "ident"
            and token.value in {"has", "in", "add", "sub", "mul", "div", "mod"}
        ):
            raise invalid_nodes()
        return left

    def parse_primary(self) -> Node:
        token = self.take()
        if token.kind == "punct" and token.value == "(":
            node = self.parse_or()
            self.expect(")")
            return node
        if token.kind == "string":
            return Node("lit", [token.value[1:-1].replace("''", "'"), "string"])
        if token.kind == "datetime":
            return Node("lit", [normalise_datetime(token.value), "datetime"])
        if token.kind == "number":
            return Node("lit", [float(token.value), "number"])
        if token.kind == "ident":
            if token.value in ("true", "false"):
                return Node("lit", [token.value == "true", "bool"])
            if token.value == "null":
                return Node("lit", [None, "null"])
            nxt = self.peek()
            if nxt is not None and nxt.value == "(":
                return self.parse_function(token)
            return self.parse_path(token)
        raise filter_syntax(token.pos, self.text)

    def parse_function(self, name: Token) -> Node:
        self.expect("(")
        args = [self.parse_or()]
        while self.peek() is not None and self.peek().value == ",":  # type: ignore[union-attr]
            self.take()
            args.append(self.parse_or())
        self.expect(")")
        fn = name.value
        if fn in ("contains", "startswith"):
            if len(args) != 2:
                raise bad_request(
                    f"Invalid filter clause: No function signature for the function with name"
                    f" '{fn}' matches the specified arguments."
                )
            target, literal = args
            if target.kind != "path" or literal.kind != "lit" or literal.args[1] != "string":
                raise invalid_nodes()
            if target.args[1] != "str":
                raise invalid_nodes()
            return Node("func", [fn, target, literal.args[0]])
        if fn in (
            "endswith",
            "tolower",
            "toupper",
            "length",
            "indexof",
            "substring",
            "trim",
            "concat",
            "year",
            "month",
            "day",
        ):
            raise invalid_nodes()
        raise bad_request(
            f"Invalid filter clause: An unknown function with name '{fn}' was found. This may"
            " also be a function import or a key lookup on a navigation property, which is not"
            " allowed."
        )

    def parse_path(self, first: Token) -> Node:
        segments = [first.value]
        while self.peek() is not None and self.peek().value == "/":  # type: ignore[union-attr]
            self.take()
            segment = self.take()
            if segment.kind != "ident":
                raise filter_syntax(segment.pos, self.text)
            if segment.value in ("any", "all"):
                return self.parse_lambda(segments, segment)
            segments.append(segment.value)
        if segments[0] in self.lambda_vars:
            collection = self.lambda_vars[segments[0]]
            rest = "/".join(segments[1:])
            if collection == "strings":
                if rest:
                    raise invalid_nodes()
                return Node("path", [segments, "str"])
            path_type = RECIPIENT_PATHS.get(rest)
            if path_type is None:
                raise invalid_nodes()
            return Node("path", [segments, path_type])
        return self.resolve(segments)

    def resolve(self, segments: list[str]) -> Node:
        path = "/".join(segments)
        known = entity_properties(self.entity)
        if segments[0] not in known:
            raise unknown_property(segments[0], self.entity)
        path_type = self.paths.get(path)
        if path_type is None:
            raise invalid_nodes()
        self.note_property(path)
        return Node("path", [segments, path_type])

    def note_property(self, path: str) -> None:
        if path not in self.properties_in_order:
            self.properties_in_order.append(path)

    def parse_lambda(self, segments: list[str], which: Token) -> Node:
        if which.value == "all":
            raise invalid_nodes()
        collection = self.resolve(segments)
        collection_type = collection.args[1]
        if collection_type not in ("recipients", "strings"):
            raise invalid_nodes()
        self.expect("(")
        var = self.take()
        if var.kind != "ident":
            raise filter_syntax(var.pos, self.text)
        self.expect(":")
        self.lambda_vars[var.value] = collection_type
        body = self.parse_or()
        del self.lambda_vars[var.value]
        self.expect(")")
        self.check_boolean(body)
        return Node("any", [segments, var.value, body])

    def typed_comparison(self, op: str, left: Node, right: Node) -> Node:
        if left.kind == "lit" and right.kind == "path":
            left, right, op = right, left, _SWAPPED[op]
        if left.kind != "path" or right.kind != "lit":
            raise invalid_nodes()
        path_type: str = left.args[1]
        value, literal_type = right.args
        if path_type in ("recipients", "strings"):
            raise invalid_nodes()
        if literal_type == "null":
            if op not in ("eq", "ne"):
                raise invalid_nodes()
            return Node("cmp", [op, left, None])
        edm = _edm(path_type)
        found = {
            "string": "Edm.String",
            "datetime": "Edm.DateTimeOffset",
            "bool": "Edm.Boolean",
            "number": "Edm.Int32",
        }[literal_type]
        compatible = (
            (path_type == "str" and literal_type == "string")
            or (path_type == "bool" and literal_type == "bool")
            or (path_type == "datetime" and literal_type == "datetime")
            or (path_type.startswith("enum:") and literal_type == "string")
        )
        if not compatible:
            raise bad_request(
                "Invalid filter clause: A binary operator with incompatible types was detected."
                f" Found operand types '{edm}' and '{found}' for operator kind '{_OP_KIND[op]}'."
            )
        if path_type.startswith("enum:"):
            members = ENUM_TYPES[path_type[5:]]
            match = next((m for m in members if m.lower() == str(value).lower()), None)
            if match is None:
                raise bad_request(
                    f"Invalid filter clause: The string '{value}' is not a valid enumeration type"
                    " constant."
                )
            value = match
        if path_type == "bool" and op not in ("eq", "ne"):
            raise invalid_nodes()
        return Node("cmp", [op, left, value])

    def check_boolean(self, node: Node) -> None:
        if node.kind in ("path", "lit"):
            if node.kind == "path" and node.args[1] == "bool":
                return  # `isRead` alone is a boolean expression
            raise bad_request(
                "Invalid filter clause: The $filter expression must evaluate to a single boolean"
                " value."
            )
        for child in node.args:
            if isinstance(child, Node) and node.kind in ("and", "or", "not"):
                self.check_boolean(child)


def _edm(path_type: str) -> str:
    if path_type.startswith("enum:"):
        return f"microsoft.graph.{path_type[5:]}"
    return {"str": "Edm.String", "bool": "Edm.Boolean", "datetime": "Edm.DateTimeOffset"}.get(
        path_type, "Edm.String"
    )


def lookup(item: dict[str, Any], segments: list[str]) -> Any:
    value: Any = item
    for segment in segments:
        if not isinstance(value, dict):
            return None
        value = value.get(segment)
    return value


def _cmp(op: str, actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        actual = actual.lower()
    if isinstance(expected, str):
        expected = expected.lower()
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if actual is None or expected is None:
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "ge":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def evaluate(node: Node, item: dict[str, Any], scope: dict[str, Any] | None = None) -> bool:
    kind = node.kind
    if kind == "and":
        return evaluate(node.args[0], item, scope) and evaluate(node.args[1], item, scope)
    if kind == "or":
        return evaluate(node.args[0], item, scope) or evaluate(node.args[1], item, scope)
    if kind == "not":
        return not evaluate(node.args[0], item, scope)
    if kind == "path":  # a boolean property on its own
        return bool(_value(node, item, scope))
    if kind == "cmp":
        op, path, expected = node.args
        return _cmp(op, _value(path, item, scope), expected)
    if kind == "func":
        fn, path, literal = node.args
        actual = _value(path, item, scope)
        if not isinstance(actual, str):
            return False
        if fn == "contains":
            return literal.lower() in actual.lower()
        return actual.lower().startswith(literal.lower())
    if kind == "any":
        segments, var, body = node.args
        collection = lookup(item, segments) or []
        return any(evaluate(body, item, {**(scope or {}), var: element}) for element in collection)
    raise invalid_nodes()


def _value(path: Node, item: dict[str, Any], scope: dict[str, Any] | None) -> Any:
    segments: list[str] = path.args[0]
    if scope and segments[0] in scope:
        element = scope[segments[0]]
        return lookup(element, segments[1:]) if len(segments) > 1 else element
    return lookup(item, segments)


# --- $search (KQL subset) --------------------------------------------------------------------
_KQL_PROPERTIES = {
    "from": ("from",),
    "to": ("toRecipients",),
    "cc": ("ccRecipients",),
    "bcc": ("bccRecipients",),
    "participants": ("from", "toRecipients", "ccRecipients", "bccRecipients"),
    "recipients": ("toRecipients", "ccRecipients", "bccRecipients"),
    "subject": ("subject",),
    "body": ("body",),
    "attachment": ("attachmentNames",),
}
# KQL properties compared as values rather than searched as text.
_KQL_VALUES = {
    "hasattachment": "hasAttachments",
    "hasattachments": "hasAttachments",
    "importance": "importance",
    "received": "receivedDateTime",
    "sent": "sentDateTime",
}


@dataclass
class SearchTerm:
    text: str
    properties: tuple[str, ...] | None  # None: free text over from, subject and body
    negated: bool = False


@dataclass
class Search:
    groups: list[list[SearchTerm]]  # OR of ANDs

    def matches(self, item: dict[str, Any]) -> bool:
        return any(all(_term_matches(t, item) for t in group) for group in self.groups)


def _field_texts(item: dict[str, Any], prop: str) -> list[str]:
    value = item.get(prop)
    if prop == "body":
        return [str((value or {}).get("content") or "")]
    if prop == "attachmentNames":
        return list(value or [])
    if prop == "from":
        address = (value or {}).get("emailAddress") or {}
        return [str(address.get("address") or ""), str(address.get("name") or "")]
    if prop.endswith("Recipients"):
        out: list[str] = []
        for recipient in value or []:
            address = recipient.get("emailAddress") or {}
            out += [str(address.get("address") or ""), str(address.get("name") or "")]
        return out
    return [str(value or "")]


def _value_matches(prop: str, wanted: str, item: dict[str, Any]) -> bool:
    value = item.get(prop)
    wanted = wanted.lower()
    if prop == "hasAttachments":
        return bool(value) == (wanted in ("true", "yes", "1"))
    if prop == "importance":
        return str(value).lower() == ("normal" if wanted == "medium" else wanted)
    # received:/sent: a date (MM/DD/YYYY or YYYY-MM-DD) matches that whole UTC day.
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", wanted)
    day = f"{match[3]}-{int(match[1]):02d}-{int(match[2]):02d}" if match else wanted[:10]
    return str(value or "")[:10] == day


def _term_matches(term: SearchTerm, item: dict[str, Any]) -> bool:
    if term.properties and term.properties[0].startswith("="):
        return _value_matches(term.properties[0][1:], term.text, item) != term.negated
    props = term.properties or ("from", "subject", "body")
    needle = term.text.lower()
    found = any(needle in text.lower() for prop in props for text in _field_texts(item, prop))
    return found != term.negated


def parse_search(raw: str) -> Search:
    """`$search="..."`: the value must be enclosed in double quotes, as Graph requires."""
    value = raw.strip()
    if len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
        bad = 0 if not value.startswith('"') else len(value)
        char = value[bad] if bad < len(value) else " "
        raise bad_request(
            f"Syntax error: character '{char}' is not valid at position {bad} in '{value}'."
        )
    inner = value[1:-1].replace('\\"', '"')
    if not inner.strip():
        raise bad_request("Syntax error: the search query must not be empty.")
    tokens = re.findall(r'(-?)(?:(\w+):)?(?:"([^"]*)"|(\S+))', inner)
    groups: list[list[SearchTerm]] = [[]]
    negate_next = False
    for minus, prop, phrase, word in tokens:
        if not prop and not phrase and word in ("AND",):
            continue
        if not prop and not phrase and word == "OR":
            groups.append([])
            continue
        if not prop and not phrase and word == "NOT":
            negate_next = True
            continue
        properties: tuple[str, ...] | None = None
        if prop and prop.lower() in _KQL_VALUES:
            properties = ("=" + _KQL_VALUES[prop.lower()],)
        elif prop:
            properties = _KQL_PROPERTIES.get(prop.lower())
            if properties is None:
                # An unknown KQL property is searched as free text, as Exchange does.
                word = f"{prop}:{phrase or word}"
                phrase = ""
        text = phrase or word
        groups[-1].append(SearchTerm(text, properties, negated=bool(minus) or negate_next))
        negate_next = False
    groups = [g for g in groups if g]
    if not groups:
        raise bad_request("Syntax error: the search query must not be empty.")
    return Search(groups)


def _split_expand(value: str) -> list[str]:
    """Split `$expand` on commas outside parentheses (nested options hold commas too)."""
    parts, depth, current = [], 0, ""
    for char in value:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return parts


def _expand_select(nested: str) -> list[str]:
    """`$select=a,b` inside `attachments(...)`: the only nested option the sandbox supports."""
    option, _, value = nested.partition("=")
    if option.strip().lower() != "$select" or not value.strip():
        raise bad_request(f"The sandbox supports only $select inside $expand, not '{nested}'.")
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in ATTACHMENT_SELECTABLE]
    if unknown:
        raise unknown_property(unknown[0], "attachment")
    return names


ATTACHMENT_SELECTABLE = frozenset(
    {
        "id",
        "name",
        "contentType",
        "size",
        "isInline",
        "lastModifiedDateTime",
        "contentId",
        "contentLocation",
        "contentBytes",
    }
)


# --- the whole query -------------------------------------------------------------------------
@dataclass
class Query:
    select: list[str] | None = None
    expand_attachments: bool = False
    # `$expand=attachments($select=id,name)`: the attachment properties to return.
    expand_attachment_select: list[str] | None = None
    filter: Node | None = None
    filter_properties: list[str] = field(default_factory=list)
    orderby: list[tuple[str, bool]] = field(default_factory=list)  # (path, descending)
    search: Search | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    skiptoken: int | None = None


SUPPORTED_OPTIONS = {
    "$select",
    "$filter",
    "$orderby",
    "$search",
    "$top",
    "$skip",
    "$count",
    "$expand",
    "$skiptoken",
}


def options(params: list[tuple[str, str]]) -> dict[str, str]:
    """System query options by canonical `$name`, rejecting repeats and unknown `$` options.
    Graph v1.0 also accepts them without the `$`."""
    found: dict[str, str] = {}
    for raw_name, value in params:
        name = raw_name if raw_name.startswith("$") else "$" + raw_name
        name = name.lower()
        if not raw_name.startswith("$") and name not in SUPPORTED_OPTIONS:
            continue  # not an OData option: Graph ignores unknown plain parameters
        if name not in SUPPORTED_OPTIONS:
            raise bad_request(f"The query parameter '{raw_name}' is not supported.")
        if name in found:
            raise bad_request(
                f"Query option '{name}' was specified more than once, but it must be specified"
                " at most once."
            )
        found[name] = value
    return found


def parse_select(raw: str, entity: str) -> list[str]:
    known = entity_properties(entity)
    by_lower = {name.lower(): name for name in known}
    selected: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        canonical = by_lower.get(name.lower())
        if canonical is None:
            raise unknown_property(name, entity)
        if canonical not in selected:
            selected.append(canonical)
    return selected


def parse_int_option(name: str, raw: str) -> int:
    if not re.fullmatch(r"\d+", raw.strip()):
        raise bad_request(
            f"Invalid value '{raw}' for {name} query option found. The {name} query option"
            " requires a non-negative integer value."
        )
    return int(raw)


def parse_query(
    params: list[tuple[str, str]],
    *,
    entity: str = "message",
    collection: bool = True,
    allow_search: bool = True,
) -> Query:
    found = options(params)
    query = Query()
    if "$select" in found:
        query.select = parse_select(found["$select"], entity)
    if "$expand" in found:
        for part in _split_expand(found["$expand"]):
            name, _, nested = part.strip().partition("(")
            name = name.strip()
            if entity == "message" and name.lower() == "attachments":
                query.expand_attachments = True
                if nested:
                    query.expand_attachment_select = _expand_select(nested.rstrip(")"))
            elif entity == "mailFolder" and name.lower() in ("childfolders", "messages"):
                raise bad_request(f"The sandbox does not support $expand={name} on mail folders.")
            else:
                raise unknown_property(name, entity)
    if not collection:
        for name in ("$filter", "$orderby", "$search", "$top", "$skip", "$count", "$skiptoken"):
            if name in found:
                raise bad_request(
                    f"The query parameter '{name}' is not supported on a single entity."
                )
        return query
    if "$top" in found:
        top = parse_int_option("$top", found["$top"])
        if top < 1:
            raise bad_request(
                f"Invalid value '{found['$top']}' for $top query option found."
                " The $top query option must be between 1 and 1000."
            )
        # Outlook answers at most 1000 items per page; a larger $top is capped.
        query.top = min(top, MAX_TOP)
    if "$skip" in found:
        query.skip = parse_int_option("$skip", found["$skip"])
    if "$count" in found:
        value = found["$count"].strip().lower()
        if value not in ("true", "false"):
            raise bad_request(
                f"Invalid value '{found['$count']}' for $count query option found."
                " Valid values are 'true' and 'false'."
            )
        query.count = value == "true"
    if "$skiptoken" in found:
        query.skiptoken = decode_skiptoken(found["$skiptoken"])
    if "$search" in found:
        if not allow_search or entity != "message":
            raise bad_request("The query parameter '$search' is not supported on this resource.")
        for other in ("$filter", "$orderby", "$skip"):
            if other in found:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    f"The query parameter '{other}' is not supported with '$search'.",
                )
        query.search = parse_search(found["$search"])
    if "$filter" in found:
        paths = MESSAGE_FILTER_PATHS if entity == "message" else FOLDER_FILTER_PATHS
        parser = FilterParser(found["$filter"], paths, entity)
        query.filter = parser.parse()
        query.filter_properties = parser.properties_in_order
    if "$orderby" in found:
        query.orderby = parse_orderby(found["$orderby"], entity)
        if query.filter is not None and entity == "message":
            check_efficient(query.filter_properties, query.orderby)
    return query


FOLDER_FILTER_PATHS: dict[str, str] = {
    "id": "str",
    "displayName": "str",
    "parentFolderId": "str",
    "isHidden": "bool",
}
FOLDER_ORDERBY_PATHS = frozenset({"displayName"})


def parse_orderby(raw: str, entity: str) -> list[tuple[str, bool]]:
    allowed = MESSAGE_ORDERBY_PATHS if entity == "message" else FOLDER_ORDERBY_PATHS
    known = entity_properties(entity)
    out: list[tuple[str, bool]] = []
    for part in raw.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise bad_request(f"Syntax error at position 0 in '{raw}'.")
        path = words[0]
        descending = False
        if len(words) == 2:
            if words[1].lower() not in ("asc", "desc"):
                raise bad_request(f"Syntax error: character '{words[1]}' is not valid in '{raw}'.")
            descending = words[1].lower() == "desc"
        if path.split("/")[0] not in known:
            raise unknown_property(path.split("/")[0], entity)
        if path not in allowed:
            raise bad_request(
                "The $orderby expression must evaluate to a single value of primitive type."
            )
        out.append((path, descending))
    return out


def check_efficient(filter_properties: list[str], orderby: list[tuple[str, bool]]) -> None:
    """Outlook's rule for $filter with $orderby: the ordered properties must come first in the
    filter, in the same order; otherwise "InefficientFilter"."""
    ordered = [path for path, _ in orderby]
    # Observed on Exchange Online (not in Microsoft's docs): a flag restriction fails with any
    # $orderby, even one that leads the filter.
    if filter_properties[: len(ordered)] != ordered or "flag/flagStatus" in filter_properties:
        raise GraphError(
            400,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        )


def encode_skiptoken(offset: int) -> str:
    raw = json.dumps({"o": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_skiptoken(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset = int(json.loads(raw)["o"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("The $skiptoken value is invalid.", "ErrorInvalidUrlQuery") from None
    if offset < 0:
        raise bad_request("The $skiptoken value is invalid.", "ErrorInvalidUrlQuery")
    return offset


def sort_key(path: str) -> Callable[[dict[str, Any]], Any]:
    segments = path.split("/")

    def key(item: dict[str, Any]) -> Any:
        value = lookup(item, segments)
        if isinstance(value, str):
            if path == "importance":
                return (
                    ENUM_TYPES["importance"].index(value)
                    if value in ENUM_TYPES["importance"]
                    else 0
                )
            return (1, value.lower())
        if value is None:
            return (0, "")
        return (1, value)

    return key
