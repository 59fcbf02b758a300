"""Credential encryption: key material (keys.py) and the two-layer envelope."""
