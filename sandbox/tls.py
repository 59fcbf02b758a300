"""The sandbox's local certificate authority and its server certificate (made at start-up)."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServerTls:
    ca_path: Path
    ca_bundle_path: Path
    cert_path: Path
    key_path: Path


def create_server_tls(state_dir: Path, ca_path: Path, ca_bundle_path: Path) -> ServerTls:
    """Make a fresh CA and a leaf certificate for 127.0.0.1 / localhost / ::1.

    The CA is written where clients expect it; the combined bundle (system roots + sandbox CA)
    exists because `requests` (used by MSAL) lets REQUESTS_CA_BUNDLE override a session's
    `verify`, so a client whose environment points at the system bundle needs one file that
    trusts both.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Outlook Integration API sandbox")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")

    cert_path = state_dir / "server.pem"
    key_path = state_dir / "server-key.pem"
    leaf.private_key_pem.write_to_path(str(key_path))
    os.chmod(key_path, 0o600)
    leaf.cert_chain_pems[0].write_to_path(str(cert_path))
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_path), append=True)

    ca_pem = ca.cert_pem.bytes()
    _atomic_write(ca_path, ca_pem)
    system = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    system_pem = system.read_bytes() if system.is_file() else b""
    _atomic_write(ca_bundle_path, system_pem.rstrip(b"\n") + b"\n" + ca_pem)
    return ServerTls(ca_path, ca_bundle_path, cert_path, key_path)


def _atomic_write(path: Path, data: bytes) -> None:
    # Readers poll for these files while the sandbox starts: never let them see half a file.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
