"""Cold start: `import function_app` loads azure.functions, pydantic and the app's own
modules, nothing else. The SDKs (MSAL, httpx, the Azure SDK, cryptography, OpenTelemetry)
load when the container is built, on the first request that needs it.

Checked on `sys.modules` of a fresh interpreter, not by timing: what is imported is what a
new worker pays for (benchmarks/cold_start.py measures the time).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import requires

from tests.support.app import sample_settings
from tests.support.processes import ROOT

# Printed by the child: every module loaded, by top-level package.
_LOADED = "import sys; {import}; print(__import__('json').dumps(sorted(sys.modules)))"

# Loaded only once the container is built.
HEAVY = (
    "msal",
    "requests",
    "httpx",
    "azure.core",
    "azure.data.tables",
    "azure.storage.queue",
    "azure.identity",
    "azure.keyvault",
    "azure.monitor",
    "opentelemetry",
    "cryptography",
)


def loaded_after(statement: str) -> set[str]:
    env = {**sample_settings(), "CA_BUNDLE": "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _LOADED.replace("{import}", statement)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_importing_the_app_loads_no_sdk() -> None:
    loaded = loaded_after("import function_app")

    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


def dependencies_of(distribution: str) -> set[str]:
    """Import names of a distribution's required (not optional) dependencies."""
    names = set()
    for requirement in requires(distribution) or []:
        if "extra ==" not in requirement:
            names.add(re.split(r"[ ;<>=!~\[]", requirement)[0].replace("-", "_").lower())
    return names


def is_stdlib(name: str) -> bool:
    # sysconfig loads its platform data module under a generated name.
    return name in sys.stdlib_module_names or name.startswith("_sysconfigdata")


def test_importing_the_app_adds_only_its_own_modules_to_the_two_it_needs() -> None:
    baseline = top_level(loaded_after("import azure.functions, pydantic"))
    # pydantic loads some of its own dependencies lazily, when a model first needs them.
    allowed = baseline | dependencies_of("pydantic") | {"function_app", "shared"}

    added = top_level(loaded_after("import function_app")) - allowed
    assert {name for name in added if not is_stdlib(name)} == set()
