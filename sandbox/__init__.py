"""Local stand-in for Microsoft Entra ID and Microsoft Graph mail (see sandbox/README.md)."""
