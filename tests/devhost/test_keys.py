"""Host keys: sources, the keys file, and which key opens which auth level."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from devhost.keys import KeyRing, load_key_ring, presented_key
from devhost.server import DevHost
from tests.devhost import sample_app
from tests.devhost.conftest import base_env, write_host_json

RING = KeyRing(master_key="master", function_keys={"default": "function"})


def test_anonymous_level_needs_no_key() -> None:
    assert RING.authorizes("anonymous", None)


def test_function_level_accepts_function_or_master_key() -> None:
    assert RING.authorizes("function", "function")
    assert RING.authorizes("function", "master")


def test_function_level_refuses_missing_or_wrong_key() -> None:
    assert not RING.authorizes("function", None)
    assert not RING.authorizes("function", "wrong")


def test_admin_level_accepts_only_the_master_key() -> None:
    assert RING.authorizes("admin", "master")
    assert not RING.authorizes("admin", "function")


def test_header_key_is_preferred_over_code_parameter() -> None:
    assert presented_key({"x-functions-key": "h"}, {"code": "q"}) == "h"
    assert presented_key({}, {"code": "q"}) == "q"
    assert presented_key({}, {}) is None


def test_keys_from_environment_are_used_and_no_file_is_written(tmp_path: Path) -> None:
    env = {"DEVHOST_MASTER_KEY": "m", "DEVHOST_FUNCTION_KEY": "f"}

    ring, path = load_key_ring(tmp_path, env)

    assert (ring.master_key, dict(ring.function_keys)) == ("m", {"default": "f"})
    assert path is None
    assert not (tmp_path / ".devhost").exists()


def test_missing_keys_are_generated_into_an_owner_only_file(tmp_path: Path) -> None:
    ring, path = load_key_ring(tmp_path, {})

    assert path == tmp_path / ".devhost" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document == {
        "masterKey": ring.master_key,
        "functionKeys": {"default": ring.function_keys["default"]},
    }
    assert len(ring.master_key) >= 32 and ring.master_key != ring.function_keys["default"]


def test_generated_keys_are_reused_on_the_next_start(tmp_path: Path) -> None:
    first, _ = load_key_ring(tmp_path, {})

    second, _ = load_key_ring(tmp_path, {})

    assert second == first


def test_environment_key_overrides_the_file(tmp_path: Path) -> None:
    load_key_ring(tmp_path, {})

    ring, _ = load_key_ring(tmp_path, {"DEVHOST_MASTER_KEY": "from-env"})

    assert ring.master_key == "from-env"
    assert json.loads((tmp_path / ".devhost" / "keys.json").read_text())["masterKey"] != "from-env"


def test_banner_names_the_keys_file_but_never_a_key(tmp_path: Path) -> None:
    root = write_host_json(tmp_path)
    env = {k: v for k, v in base_env().items() if not k.startswith("DEVHOST_")}
    host = DevHost(sample_app.app, root=root, port=0, env=env)

    banner = host.banner()

    assert str(root / ".devhost" / "keys.json") in banner
    assert host.keys.master_key not in banner
    assert host.keys.function_keys["default"] not in banner
