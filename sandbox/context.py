"""Everything the sandbox holds in memory, in one object that the routes share.

Each part is owned by one module: `directory` (sandbox/directory.py), `identity`
(sandbox/identity/: signing keys, codes, issued tokens, consent/error controls), `mail`
(sandbox/graph/store.py: mailboxes, messages, attachments, upload sessions, throttling),
`controls` (sandbox/controls.py: faults, latency, the request log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.directory import Directory, default_directory
from sandbox.settings import SandboxSettings

if TYPE_CHECKING:
    from sandbox.controls import Controls
    from sandbox.graph.store import MailStore
    from sandbox.identity.state import IdentityState


@dataclass
class SandboxContext:
    settings: SandboxSettings
    directory: Directory
    identity: IdentityState
    mail: MailStore
    controls: Controls

    @classmethod
    def create(cls, settings: SandboxSettings) -> SandboxContext:
        from sandbox.controls import Controls
        from sandbox.graph.seed import seed_default
        from sandbox.graph.store import MailStore
        from sandbox.identity.state import IdentityState

        directory = default_directory(settings.extra_redirect_uris)
        ctx = cls(
            settings=settings,
            directory=directory,
            identity=IdentityState(settings),
            mail=MailStore(settings, seed=seed_default),
            controls=Controls(),
        )
        ctx.mail.reset(directory)
        return ctx

    def reset(self) -> None:
        """`POST /_sandbox/reset`: back to the default seed, with no faults, latency or log.

        Signing keys survive a reset (clients cache JWKS); issued tokens and codes do not.
        """
        self.directory = default_directory(self.settings.extra_redirect_uris)
        self.identity.reset()
        self.mail.reset(self.directory)
        self.controls.reset()
