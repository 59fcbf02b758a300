"""The custom connector: current with the route table, valid against Microsoft's schemas,
and following the connector conventions.

Whatever imports function_app runs in a subprocess (the generator, as `make connector` does):
function_app reads settings from the environment at import, and this test process must not
carry the sample's settings into later tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from scripts import generate_connector as gen

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = ROOT / "connector"
# Microsoft's schemas live beside the checkout; read in place, never copied.
SCHEMAS = ROOT / ".." / "shared" / "connector-schemas"


def strip_line_comments(text: str) -> str:
    """Drop `//` comments outside JSON strings (the paconn schemas carry some)."""
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def schema(name: str) -> dict[str, Any]:
    path = SCHEMAS / name
    if not path.is_file():
        pytest.fail(f"{path.resolve()} is missing (Microsoft's connector schemas)")
    return dict(json.loads(strip_line_comments(path.read_text(encoding="utf-8"))))


@cache
def definition() -> dict[str, Any]:
    return dict(json.loads((CONNECTOR / "apiDefinition.swagger.json").read_text("utf-8")))


@cache
def properties() -> dict[str, Any]:
    return dict(json.loads((CONNECTOR / "apiProperties.json").read_text("utf-8")))


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in definition()["paths"].items()
        for method, op in item.items()
    ]


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_connector.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@cache
def openapi_document() -> dict[str, Any]:
    code = (
        "import json; from scripts.generate_connector import load_openapi; "
        "print(json.dumps(load_openapi()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_checked_in_connector_matches_the_route_table() -> None:
    result = run_generator("--check")

    assert result.returncode == 0, result.stderr  # names the stale file: run `make connector`


def test_the_stale_check_notices_a_difference(tmp_path: Path) -> None:
    for name in ("apiDefinition.swagger.json", "apiProperties.json", "readme.md"):
        (tmp_path / name).write_text((CONNECTOR / name).read_text("utf-8"), "utf-8")
    (tmp_path / "apiProperties.json").write_text("{}\n", "utf-8")

    result = run_generator("--check", "--out", str(tmp_path))

    assert result.returncode == 1
    assert "apiProperties.json is stale" in result.stderr


def test_definition_validates_against_microsofts_schema() -> None:
    validator = jsonschema.Draft4Validator(schema("apiDefinition.swagger.schema.json"))

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(definition())]

    assert errors == []


def test_definition_is_valid_swagger_2() -> None:
    validate(definition())  # raises on any violation

    assert definition()["swagger"] == "2.0"


def with_per_connector_redirects(node: Any) -> Any:
    """The paconn schema predates `redirectMode: GlobalPerConnector` (every connector its own
    redirect URI, required by Power Platform since 2024) and allows only Global and Direct.
    The test adds that one value to its enum, in memory; the file stays Microsoft's."""
    if isinstance(node, dict):
        patched = {k: with_per_connector_redirects(v) for k, v in node.items()}
        mode = patched.get("redirectMode")
        if isinstance(mode, dict) and mode.get("enum") == ["Global", "Direct"]:
            patched["redirectMode"] = {**mode, "enum": ["Global", "Direct", "GlobalPerConnector"]}
        return patched
    if isinstance(node, list):
        return [with_per_connector_redirects(item) for item in node]
    return node


def test_properties_validate_against_the_paconn_schema() -> None:
    paconn = with_per_connector_redirects(schema("paconn-apiProperties.schema.json"))
    validator = jsonschema.validators.validator_for(paconn)(paconn)

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(properties())]

    assert errors == []


def test_exactly_the_bearer_operations_are_in_the_connector() -> None:
    openapi = openapi_document()
    bearer = {
        gen.pascal_case(op["operationId"])
        for item in openapi["paths"].values()
        for op in item.values()
        if {"bearer": []} in op.get("security", [])
    }

    assert {op["operationId"] for _, _, op in operations()} == bearer
    assert not any(path.startswith(("/auth", "/health", "/openapi")) for path, _, _ in operations())


def test_title_names_neither_api_nor_connector() -> None:
    title = definition()["info"]["title"]

    assert not re.search(r"\b(api|connector)\b", title, re.IGNORECASE)
    assert len(title) <= 30


def test_operations_follow_the_naming_and_text_conventions() -> None:
    for path, method, op in operations():
        where = f"{method.upper()} {path}"
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", op["operationId"]), where
        assert op["summary"] and len(op["summary"]) <= 80, where
        assert not op["summary"].endswith("."), where
        assert op["description"] and op["description"] != op["summary"], where


def test_every_parameter_has_a_summary_and_a_description() -> None:
    for path, method, op in operations():
        for param in op["parameters"]:
            where = f"{method.upper()} {path} {param['name']}"
            assert param.get("x-ms-summary"), where
            assert param.get("description"), where
            assert param.get("x-ms-visibility", "none") in {"none", "advanced", "important"}


def test_rarely_used_filters_are_advanced() -> None:
    for _, _, op in operations():
        for param in op["parameters"]:
            if param["name"] in gen.ADVANCED and not param["required"]:
                assert param["x-ms-visibility"] == "advanced", param["name"]


def test_every_connection_id_offers_the_connection_picker() -> None:
    list_id = gen.pascal_case(gen.LIST_CONNECTIONS)
    ids = {op["operationId"] for _, _, op in operations()}
    pickers = 0

    for _, _, op in operations():
        for param in op["parameters"]:
            if param["name"] == "connectionId":
                pickers += 1
                assert param["x-ms-dynamic-values"] == {
                    "operationId": list_id,
                    "value-collection": "value",
                    "value-path": "id",
                    "value-title": "mailbox",
                }

    assert list_id in ids
    assert pickers >= 2


def test_lists_page_by_next_link_or_keep_their_cursor_visible() -> None:
    for path, method, op in operations():
        success = op["responses"].get("200", {}).get("schema", {}).get("$ref", "")
        name = success.rsplit("/", 1)[-1]
        props = definition()["definitions"].get(name, {}).get("properties", {})
        if props.get("value", {}).get("type") != "array":
            continue
        cursor = [p for p in op["parameters"] if p["name"] == "cursor"]
        if "x-ms-pageable" in op:
            assert op["x-ms-pageable"]["nextLinkName"] in props, f"{method} {path}"
        else:
            # No URL to follow: the flow passes nextCursor back (docs/logic-apps.md), so the
            # parameter must stay in reach.
            assert all(p.get("x-ms-visibility") != "internal" for p in cursor), path


def test_a_list_with_a_next_link_becomes_pageable_and_routed() -> None:
    openapi = {
        "info": {"version": "1.0.0"},
        "paths": {
            "/things": {
                "get": {
                    "operationId": "things_list",
                    "summary": "List things.",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "Things",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ThingList"}
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "ThingList": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "array", "items": {"type": "string"}},
                        "nextLink": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                }
            }
        },
    }

    built = gen.build_definition(openapi, gen.PLACEHOLDER_HOST, gen.PLACEHOLDER_RESOURCE_URI)
    props = gen.build_properties(built, gen.PLACEHOLDER_RESOURCE_URI, gen.PLACEHOLDER_CLIENT_ID)

    assert built["paths"]["/things"]["get"]["x-ms-pageable"] == {"nextLinkName": "nextLink"}
    (policy,) = props["properties"]["policyTemplateInstances"]
    assert policy["templateId"] == "updatenextlink"
    assert policy["parameters"]["x-ms-apimTemplate-operationName"] == ["ThingsList"]
    validate(built)


def test_sign_in_is_entra_id_for_this_apis_resource() -> None:
    oauth = properties()["properties"]["connectionParameters"]["token"]["oAuthSettings"]
    security = definition()["securityDefinitions"][gen.SECURITY_NAME]

    assert oauth["identityProvider"] == "aad"
    assert oauth["customParameters"]["resourceUri"]["value"].startswith("api://")
    assert security["type"] == "oauth2" and security["flow"] == "accessCode"
    assert sorted(security["scopes"]) == sorted(oauth["scopes"])
    assert definition()["security"] == [{gen.SECURITY_NAME: []}]
    assert "clientSecret" not in oauth  # entered when the connector is created, never stored


def test_rendering_real_values_keeps_the_definition_valid(tmp_path: Path) -> None:
    result = run_generator(
        "--out",
        str(tmp_path),
        "--host",
        "func-abc.azurewebsites.net",
        "--resource-uri",
        "api://3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10",
        "--client-id",
        "11111111-2222-3333-4444-555555555555",
    )

    assert result.returncode == 0, result.stderr
    rendered = json.loads((tmp_path / "apiDefinition.swagger.json").read_text("utf-8"))
    assert rendered["host"] == "func-abc.azurewebsites.net"
    validate(rendered)


def test_readme_has_the_certification_sections() -> None:
    text = (CONNECTOR / "readme.md").read_text("utf-8")

    for heading in (
        "## Publisher",
        "## Prerequisites",
        "## Supported Operations",
        "## Obtaining Credentials",
        "## Getting Started",
        "## Known Issues and Limitations",
        "## Frequently Asked Questions",
        "## Deployment Instructions",
    ):
        assert heading in text, heading
    for _, _, op in operations():
        assert op["summary"] in text, op["operationId"]
