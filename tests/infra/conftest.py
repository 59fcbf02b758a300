"""Parsed Bicep templates for the infra tests (pycep-parser: the Bicep CLI is not available
offline, and checkov alone reports a parse error as a pass)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parsed(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


@pytest.fixture(scope="session")
def main_template() -> dict[str, Any]:
    return parsed(INFRA / "main.bicep")


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """Symbolic name → the resource's `config` (its body) for every resource of `type_`."""
    return {
        name: body(resource)
        for name, resource in template["resources"].items()
        if resource["type"] == type_
    }


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body; a conditional one (`= if (...) {...}`) nests it once more."""
    config: dict[str, Any] = resource["config"]
    return config["config"] if "condition" in config else config


def one(template: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources_of_type(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.values()))
