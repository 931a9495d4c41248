"""Request and response models of the email templates API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.nurture.templates.service import TemplateContent, TemplateProblem

MAX_SUBJECT = 2_000
MAX_BODY = 500_000  # characters of an HTML or text part


class TemplateParts(BaseModel):
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT, description="Jinja2; rendered on one line")
    html: str = Field(min_length=1, max_length=MAX_BODY, description="Jinja2, autoescaped; CSS is inlined")
    text: str | None = Field(
        default=None, max_length=MAX_BODY, description="Jinja2; null or blank: derived from the rendered HTML"
    )
    sample_extra: dict[str, Any] | None = Field(
        default=None,
        description="The `extra` (a step's data) to validate against and preview with; default a sample cart",
    )

    def content(self) -> TemplateContent:
        return TemplateContent(subject=self.subject, html=self.html, text=self.text)


class TemplateCreate(TemplateParts):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2_000)
    kind: Literal["marketing", "transactional"] = Field(
        default="marketing", description="Marketing emails need consent; transactional ones answer an action"
    )
    topic: str | None = Field(
        default=None, min_length=1, max_length=200, description="Subscription topic for consent, if any"
    )
    note: str = Field(default="", max_length=2_000, description="What this version is about")


class TemplateUpdate(TemplateParts):
    note: str = Field(default="", max_length=2_000, description="What changed in this version")
    description: str | None = Field(default=None, max_length=2_000, description="New description; null keeps it")


class ProblemOut(BaseModel):
    part: Literal["subject", "html", "text"]
    line: int | None = Field(description="Line in that part, when known")
    message: str

    @classmethod
    def of(cls, problem: TemplateProblem) -> ProblemOut:
        return cls(part=problem.part, line=problem.line, message=problem.message)


class TemplateInvalid(BaseModel):
    """400: the template does not compile or does not render for the sample lead."""

    error: str
    field: str | None
    problems: list[ProblemOut]


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    kind: str
    topic: str | None
    current_version: int
    archived_at: datetime | None
    created_at: datetime


class VersionSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    note: str
    created_at: datetime


class VersionOut(VersionSummary):
    template_id: uuid.UUID
    subject: str
    html: str
    text: str | None
    sample_extra: dict[str, Any] | None


class TemplateDetail(TemplateOut):
    versions: list[VersionSummary] = Field(description="Newest first")


class PreviewRequest(BaseModel):
    user_id: str | None = Field(default=None, max_length=512, description="Lead to render for; default a sample")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Default the current version")
    extra: dict[str, Any] | None = Field(default=None, description="Default the version's `sample_extra`")


class Rendered(BaseModel):
    subject: str
    html: str = Field(description="CSS inlined")
    text: str


class PreviewOut(Rendered):
    version: int
    user_id: str | None = Field(description="The lead rendered for; null for the sample lead")


class ValidationOut(BaseModel):
    valid: bool
    problems: list[ProblemOut]
    preview: Rendered | None = Field(description="The sample lead's email when valid")
