"""Allowed redirect targets compared as parsed URLs: same scheme, host and port, and a path
that lies under the allowed path on a segment boundary.

Why not string prefixes: `https://app.contoso.com` is a prefix of
`https://app.contoso.com.evil.example/` and of `https://app.contoso.com@evil.example/`, and
`http://localhost` of `http://localhost.evil.example`. Parsing both sides first leaves no such
gap. Standard library only: the settings check uses this at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_DEFAULT_PORTS = {"https": 443, "http": 80}
# Characters a URL sent on as a `Location` must never hold (header splitting, and the `\`
# that browsers read as `/`).
_FORBIDDEN = frozenset("\\") | {chr(c) for c in range(0x21)} | {"\x7f"}


@dataclass(frozen=True)
class AllowedTarget:
    """One allow-list entry: an absolute origin with an optional path (`/` when none)."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, entry: str) -> AllowedTarget:
        """The entry as a target; `ValueError` (whose message never quotes the entry) unless
        it is `https://host[:port][/path]`, or `http://` on a loopback host."""
        parts = _split(entry)
        if parts is None or not parts.hostname:
            raise ValueError("each entry must be an absolute URL (scheme://host[:port][/path])")
        if parts.username is not None or parts.password is not None:
            raise ValueError("an entry must not hold user information ('user@')")
        if parts.query or parts.fragment or entry.endswith(("?", "#")):
            raise ValueError("an entry is an origin with an optional path: no query or fragment")
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
        ):
            raise ValueError("each entry must be an https URL (or http on loopback)")
        path = parts.path or "/"
        if _has_dot_segments(path):
            raise ValueError("an entry's path must not hold '.' or '..' segments")
        return cls(parts.scheme, parts.hostname, _port(parts), path)

    def allows(self, url: str) -> bool:
        """Does `url` lie under this target (same scheme, host and port; path on a segment
        boundary below ours)? Query strings are allowed; fragments and user info are not."""
        parts = _split(url)
        if parts is None or parts.fragment or "#" in url:
            return False
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            return False
        if (parts.scheme, parts.hostname, _port(parts)) != (self.scheme, self.host, self.port):
            return False
        path = parts.path or "/"
        if _has_dot_segments(path):
            return False  # `/app/../admin` must not climb out of an allowed `/app`
        if self.path.endswith("/"):
            return path.startswith(self.path)
        return path == self.path or path.startswith(self.path + "/")


def allowed(url: str, targets: list[AllowedTarget] | tuple[AllowedTarget, ...]) -> bool:
    """Is `url` under at least one of `targets`?"""
    return any(target.allows(url) for target in targets)


def _split(url: str) -> SplitResult | None:
    if not url or len(url) > 2048 or any(c in _FORBIDDEN for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return None
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port if parts.port is not None else _DEFAULT_PORTS[parts.scheme]


def _has_dot_segments(path: str) -> bool:
    return any(unquote(segment) in {".", ".."} for segment in path.split("/"))
