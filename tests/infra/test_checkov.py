"""checkov over infra/: no failed check, every exception an inline, reasoned skip, and every
file that declares an Azure resource actually read by checkov.

checkov lives in its own venv (.venv/tools, from requirements-tools.txt; scripts/bootstrap.sh
installs it) because its pins clash with the app's. It runs offline (--skip-download).

checkov 3.3.30 pins pycep-parser 0.5.1, which cannot parse `extension` (the Microsoft Graph
Bicep extension in infra/modules/entra.bicep): checkov then leaves that file out, reporting it
only as a parsing error, and checks nothing in it. So the Graph objects live alone in that
file, and the tests below check that the files checkov could not read hold no Azure resource
and that checkov read every resource of every other file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra.conftest import INFRA, bicep_files, parsed

TOOLS_PYTHON = INFRA.parent / ".venv" / "tools" / "bin" / "python"
CHECKOV = INFRA.parent / ".venv" / "tools" / "bin" / "checkov"
SKIP = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+)(.*)")
GRAPH = "Microsoft.Graph/"

# Runs checkov's own Bicep parser (the one its runner uses) on each file checkov scans, and
# prints file → the symbolic names of the resources it read (null: it could not parse it).
CHECKOV_PARSE = """
import json, sys
from pathlib import Path
from checkov.bicep.parser import Parser
from checkov.bicep.utils import get_scannable_file_paths
out = {}
for path in sorted(get_scannable_file_paths(root_folder=sys.argv[1])):
    template, _ = Parser().parse(path)
    out[str(path.resolve())] = None if template is None else sorted(template.get("resources", {}))
print(json.dumps(out))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
    return env


@cache
def scan() -> dict[str, Any]:
    assert CHECKOV.is_file(), "checkov is missing: run `make bootstrap` (or `make test`)"
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "bicep",
            "--skip-download",
            "--directory",
            str(INFRA),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env=_env(),
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@cache
def checkov_parse() -> dict[str, list[str] | None]:
    result = subprocess.run(
        [str(TOOLS_PYTHON), "-c", CHECKOV_PARSE, str(INFRA)],
        capture_output=True,
        text=True,
        timeout=100,
        env=_env(),
        check=True,
    )
    files: dict[str, list[str] | None] = json.loads(result.stdout)
    return files


def azure_resources(path: Path) -> set[str]:
    """Symbolic names of the Azure (non-Graph) resources a file declares, as the newer
    pycep-parser reads it (it parses every file here, tests/infra/test_bicep.py)."""
    return {
        name
        for name, resource in parsed(path)["resources"].items()
        if not resource["type"].startswith(GRAPH)
    }


def test_checkov_finds_no_failed_check() -> None:
    report = scan()
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]

    assert failed == []
    assert report["summary"]["passed"] > 0
    assert report["summary"]["resource_count"] >= 40


def test_checkov_reads_every_file_that_declares_an_azure_resource() -> None:
    files = checkov_parse()

    assert set(files) == {str(p.resolve()) for p in bicep_files()}
    for path in bicep_files():
        read = files[str(path.resolve())]
        azure = azure_resources(path)
        if read is None:
            # Only the Graph extension module may be unreadable, and it holds no Azure resource.
            assert "extension microsoftGraphV1" in path.read_text(encoding="utf-8"), path.name
            assert azure == set(), f"checkov cannot read {path.name}, which declares {azure}"
            assert parsed(path)["resources"], path.name
        else:
            assert set(read) == set(parsed(path)["resources"]), path.name
    unreadable = {Path(p).name for p, read in files.items() if read is None}
    assert unreadable == {"entra.bicep"}
    # The report says the same: its only parsing error is that module.
    errors = {Path(p).resolve() for p in scan()["results"]["parsing_errors"]}
    assert errors == {(INFRA / "modules" / "entra.bicep").resolve()}
    assert scan()["summary"]["parsing_errors"] == 1


def test_every_azure_resource_type_is_in_a_file_checkov_reads() -> None:
    files = checkov_parse()
    unread_types = {
        resource["type"]
        for path in bicep_files()
        if files[str(path.resolve())] is None
        for resource in parsed(path)["resources"].values()
    }

    assert unread_types
    assert all(t.startswith(GRAPH) for t in unread_types), unread_types


def test_every_skip_is_inline_reasoned_and_used() -> None:
    declared: set[str] = set()
    for path in bicep_files():
        for match in SKIP.finditer(path.read_text(encoding="utf-8")):
            check_id, reason = match.groups()
            assert re.match(r":\s*\S.{20,}", reason), f"{check_id} in {path.name} has no reason"
            declared.add(check_id)
    used = {c["check_id"] for c in scan()["results"]["skipped_checks"]}

    # A skip that matches no finding hides nothing today but would hide a future one.
    assert declared == used
