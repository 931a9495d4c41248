"""Response models of the webhook endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WebhookAccepted(BaseModel):
    success: Literal[True] = True
    events: int = Field(description="Events published (and acknowledged by the broker) for this delivery")
    ignored: str | None = Field(default=None, description="Why the delivery was accepted without effect")
