"""checkov over infra/: no failed check, and every exception is an inline, reasoned skip.

checkov lives in its own venv (.venv/tools, from requirements-tools.txt; scripts/bootstrap.sh
installs it) because its pins clash with the app's. It runs offline (--skip-download).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from typing import Any

from tests.infra.conftest import INFRA, bicep_files

CHECKOV = INFRA.parent / ".venv" / "tools" / "bin" / "checkov"
SKIP = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+)(.*)")


@cache
def scan() -> dict[str, Any]:
    assert CHECKOV.is_file(), "checkov is missing: run `make bootstrap` (or `make test`)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
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
        env=env,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_checkov_finds_no_failed_check_and_no_parse_error() -> None:
    report = scan()
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]

    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    assert report["summary"]["resource_count"] >= 15


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
