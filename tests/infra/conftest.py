"""Parsed Bicep templates for the infra tests (pycep-parser: the Bicep CLI is not available
offline, and checkov alone reports a parse error as a pass).

The newer pycep-parser (the app's dev venv) reads every file here, the Microsoft Graph
extension module included. It cannot read filtered loops (`[for x in xs: if (c) {...}]`,
pycep-parser 0.7.1 stops at the `{` after `if`), so the templates have none: optional parts
are conditional *modules* (network, private endpoints) whose loops are unfiltered."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"
MODULES = INFRA / "modules"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parsed(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


def module(name: str) -> dict[str, Any]:
    """infra/modules/<name>.bicep, parsed."""
    return parsed(MODULES / f"{name}.bicep")


@pytest.fixture(scope="session")
def main_template() -> dict[str, Any]:
    return parsed(INFRA / "main.bicep")


@pytest.fixture(scope="session")
def resources_template() -> dict[str, Any]:
    return module("resources")


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """Symbolic name → the resource's `config` (its body) for every resource of `type_`."""
    return {
        name: body(resource)
        for name, resource in template["resources"].items()
        if resource["type"] == type_
    }


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body; a conditional one (`= if (...) {...}`) or a loop (`[for ...]`) nests
    it once more."""
    config: dict[str, Any] = resource["config"]
    while "condition" in config or "loop_type" in config:
        config = config["config"]
    return config


def one(template: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources_of_type(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.values()))


def accessor(node: Any) -> list[str]:
    """`a.b.c` as pycep nests it → ["a", "b", "c"] (a plain string is a bare identifier; a
    function call such as `environment()` is its name followed by "()")."""
    if isinstance(node, str):
        return [node]
    if "function" in node:
        return [f"{node['function']['type']}()"]
    operands = node["operator"]["operands"]
    return [*accessor(operands["operand_1"]), *accessor(operands["operand_2"])]


def conditional(node: Any) -> tuple[Any, Any, Any]:
    """`c ? a : b` → (c, a, b)."""
    assert node["operator"]["type"] == "conditional", node
    operands = node["operator"]["operands"]
    return operands["condition"], operands["true_value"], operands["false_value"]
