"""Pydantic models shared by every HTTP adapter: the base model and the problem document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base of request and response bodies: camelCase on the wire, unknown fields refused."""

    # defer_build: a model's validator is built when first used, not at import (cold start:
    # a worker pays for the models its requests use, not for every model of the API).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, defer_build=True)


class ProblemItem(ApiModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every 4xx/5xx answers (extensions allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the error code's documentation.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable error code (see docs/errors.md).")
    correlationId: str
    errors: list[ProblemItem] | None = None

    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
