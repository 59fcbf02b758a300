"""Route templates as the Functions host (ASP.NET Core routing) reads them: parse, match, rank.

Supported per path segment: a literal (matched case-insensitively), ``{name}``,
``{name?}`` (optional, trailing only), ``{name=default}``, ``{*rest}`` / ``{**rest}``
(catch-all, last, may be empty) and constraints such as ``{id:int}``. The constraints
``int``, ``long``, ``alpha``, ``guid`` and ``bool`` are enforced; any other constraint is
parsed and ignored. Segments mixing literal text and parameters (``{a}.{b}``) are refused.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar
from urllib.parse import unquote

_PARAMETER = re.compile(r"^\{(?P<body>[^{}]+)\}$")
T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RouteTemplateError(ValueError):
    """A route template the dev host cannot read."""


def _is_int(value: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", value) is not None


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# Why only these: they are the ones whose meaning cannot be mistaken; ASP.NET's range
# and length constraints are accepted but not enforced (documented in the README).
_ENFORCED_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _is_int,
    "long": _is_int,
    "alpha": lambda value: re.fullmatch(r"[A-Za-z]+", value) is not None,
    "guid": _is_guid,
    "bool": lambda value: value.lower() in {"true", "false"},
}


@dataclass(frozen=True)
class Literal:
    """A literal path segment."""

    text: str


@dataclass(frozen=True)
class Parameter:
    """A ``{...}`` path segment."""

    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[str, ...] = ()

    def accepts(self, value: str) -> bool:
        """Whether every enforced constraint accepts ``value``."""
        for constraint in self.constraints:
            check = _ENFORCED_CONSTRAINTS.get(constraint.split("(", 1)[0].lower())
            if check is not None and not check(value):
                return False
        return True


Segment = Literal | Parameter


def _parse_parameter(body: str, template: str) -> Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    if "=" in body:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraints = body.split(":")
    if not _NAME.match(name):
        raise RouteTemplateError(f"invalid parameter name {name!r} in route {template!r}")
    if optional and catch_all:
        raise RouteTemplateError(f"a catch-all cannot be optional in route {template!r}")
    return Parameter(
        name=name,
        optional=optional,
        catch_all=catch_all,
        default=default,
        constraints=tuple(c for c in constraints if c),
    )


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template (without the host's route prefix)."""

    text: str
    segments: tuple[Segment, ...]
    precedence: Decimal = field(compare=False)

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        """Parse ``template``; raise :class:`RouteTemplateError` if it is not supported."""
        stripped = template.strip("/")
        parts = stripped.split("/") if stripped else []
        segments: list[Segment] = []
        names: set[str] = set()
        for index, part in enumerate(parts):
            match = _PARAMETER.match(part)
            if match is None:
                if "{" in part or "}" in part:
                    raise RouteTemplateError(
                        f"complex segment {part!r} in route {template!r} is not supported"
                    )
                if not part:
                    raise RouteTemplateError(f"empty segment in route {template!r}")
                segments.append(Literal(part))
                continue
            parameter = _parse_parameter(match.group("body"), template)
            if parameter.name.lower() in names:
                raise RouteTemplateError(f"duplicate parameter {parameter.name!r} in {template!r}")
            names.add(parameter.name.lower())
            is_last = index == len(parts) - 1
            if parameter.catch_all and not is_last:
                raise RouteTemplateError(f"catch-all must be the last segment in {template!r}")
            segments.append(parameter)
        _check_optional_segments_trail(segments, template)
        return cls(text=template, segments=tuple(segments), precedence=_precedence(segments))

    def match(self, path_segments: Sequence[str]) -> dict[str, str] | None:
        """Route values for already-split, still percent-encoded path segments, or None.

        Values are URL-decoded once, as ASP.NET does; a catch-all keeps the ``/`` between
        the segments it swallows.
        """
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if isinstance(segment, Parameter) and segment.catch_all:
                rest = "/".join(unquote(part) for part in path_segments[index:])
                if not rest and segment.default is not None:
                    rest = segment.default
                if rest and not segment.accepts(rest):
                    return None
                if rest:
                    values[segment.name] = rest
                return values
            if index >= len(path_segments):
                if not isinstance(segment, Parameter):
                    return None
                if segment.default is not None:
                    values[segment.name] = segment.default
                elif not segment.optional:
                    return None
                continue
            value = unquote(path_segments[index])
            if isinstance(segment, Literal):
                if value.casefold() != segment.text.casefold():
                    return None
            elif not value or not segment.accepts(value):
                return None
            else:
                values[segment.name] = value
        if len(path_segments) > len(self.segments):
            return None
        return values


def _check_optional_segments_trail(segments: Sequence[Segment], template: str) -> None:
    seen_optional = False
    for segment in segments:
        omissible = isinstance(segment, Parameter) and (
            segment.optional or segment.default is not None or segment.catch_all
        )
        if seen_optional and not omissible:
            raise RouteTemplateError(
                f"an optional parameter may only be followed by optional ones in {template!r}"
            )
        seen_optional = seen_optional or omissible


def _segment_rank(segment: Segment) -> int:
    # ASP.NET Core RoutePrecedence.ComputeInbound digits: literal 1, complex 2,
    # constrained parameter 3, parameter 4, catch-all 5. Lower wins.
    if isinstance(segment, Literal):
        return 1
    if segment.catch_all:
        return 5
    return 3 if segment.constraints else 4


def _precedence(segments: Sequence[Segment]) -> Decimal:
    value = Decimal(0)
    for index, segment in enumerate(segments):
        value += Decimal(_segment_rank(segment)) / (Decimal(10) ** index)
    return value


def split_path(path: str) -> list[str]:
    """Split a raw (percent-encoded) path into segments, ignoring one trailing slash."""
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    """A route that matched a path, with its decoded route values."""

    target: T
    template: RouteTemplate
    values: dict[str, str]


class RouteTable(Generic[T]):
    """Templates with their targets; finds the best match in ASP.NET precedence order."""

    def __init__(self) -> None:
        self._routes: list[tuple[RouteTemplate, T]] = []

    def add(self, template: RouteTemplate, target: T) -> None:
        """Register ``target`` under ``template``."""
        self._routes.append((template, target))
        # Stable sort: equal precedence keeps registration order.
        self._routes.sort(key=lambda route: route[0].precedence)

    def matches(self, path_segments: Sequence[str]) -> list[RouteMatch[T]]:
        """Every route matching the path, best first."""
        found: list[RouteMatch[T]] = []
        for template, target in self._routes:
            values = template.match(path_segments)
            if values is not None:
                found.append(RouteMatch(target=target, template=template, values=values))
        return found
