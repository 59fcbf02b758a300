"""Operator commands (`python -m shared.admin ...`): key rotation and local key versions."""
