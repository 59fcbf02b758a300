"""`python -m sandbox`: start the local Entra ID + Graph stand-in over HTTPS."""

from __future__ import annotations

from sandbox.server import main

if __name__ == "__main__":
    main()
