"""Request and response models of the forms admin API; `FormDefinition` is also what is stored."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.nurture.consent.schemas import TOPIC_PATTERN
from shared.tokens import check_url

FieldType = Literal[
    "email", "first_name", "last_name", "company", "job_title", "phone", "text", "textarea", "select", "checkbox",
    "hidden",
]  # fmt: skip
# Standard fields become these traits (scoring's fit rules read traits.title, the email).
TRAITS: dict[str, str] = {
    "email": "email",
    "first_name": "firstName",
    "last_name": "lastName",
    "company": "company",
    "job_title": "title",
    "phone": "phone",
}
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Names the page uses for its own inputs; a field may not take them.
RESERVED = frozenset({"fs_token", "fs_aid", "fs_hp", "fs_page", "website", "consent", *UTM_FIELDS})
MAX_PATTERN = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldDef(_Strict):
    """One input of the form, with its validation rules."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["email", "team_size"])
    type: FieldType
    label: str = Field(default="", max_length=200)
    required: bool = False
    max_length: int = Field(default=200, ge=1, le=5000)
    pattern: str | None = Field(default=None, max_length=MAX_PATTERN, description="Regular expression (full match)")
    choices: list[str] | None = Field(default=None, max_length=100, description="Allowed values (select)")
    placeholder: str = Field(default="", max_length=200)
    value: str = Field(default="", max_length=500, description="Fixed value of a hidden field")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> FieldDef:
        if self.name in RESERVED:
            raise ValueError(f"name {self.name!r} is reserved")
        if self.type == "select" and not self.choices:
            raise ValueError("a select field needs choices")
        if self.type != "select" and self.choices:
            raise ValueError("only a select field has choices")
        return self


class FormDefinition(_Strict):
    """Everything a form shows and does; stored as the form's definition (a new version per edit)."""

    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    fields: list[FieldDef] = Field(min_length=1, max_length=30)
    consent_text: str = Field(min_length=1, max_length=2000, description="The checkbox text; kept as proof")
    submit_label: str = Field(default="Subscribe", min_length=1, max_length=80)
    topic: str | None = Field(
        default=None, pattern=TOPIC_PATTERN, description="Consent topic (list) joined on confirmation; none: everything"
    )
    sequence_id: uuid.UUID | None = Field(default=None, description="Sequence the lead enters on confirmation")
    success_redirect: str | None = Field(default=None, description="Absolute http(s) URL shown after submitting")
    success_message: str = Field(default="Thank you! Please check your inbox to confirm.", max_length=1000)
    confirmed_message: str = Field(default="Thank you, your subscription is confirmed.", max_length=1000)
    lead_magnet_url: str | None = Field(default=None, description="Sent after confirmation (or upload a file)")
    confirm_subject: str = Field(default="Please confirm your subscription", max_length=200)

    @field_validator("success_redirect", "lead_magnet_url")
    @classmethod
    def _absolute(cls, url: str | None) -> str | None:
        if url is not None:
            check_url(url)  # an admin-set URL only: the request never chooses where to redirect
        return url

    @model_validator(mode="after")
    def _one_email(self) -> FormDefinition:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        emails = [f for f in self.fields if f.type == "email"]
        if len(emails) != 1 or not emails[0].required:
            raise ValueError("a form needs exactly one email field, required (double opt-in mails it)")
        return self


class FormIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    source_id: uuid.UUID | None = Field(default=None, description="The website's source; events are its events")
    definition: FormDefinition


class Embed(BaseModel):
    page_url: str
    iframe: str
    script: str
    post_url: str


class FileOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: datetime


class FormOut(BaseModel):
    id: uuid.UUID
    name: str
    source_id: uuid.UUID | None
    definition: FormDefinition
    version: int
    status: str
    created_at: datetime
    updated_at: datetime
    file: FileOut | None = None
    embed: Embed


class FormList(BaseModel):
    forms: list[FormOut]


class SubmissionOut(BaseModel):
    id: uuid.UUID
    form_version: int
    email: str
    anonymous_id: str
    values: dict[str, str]
    consent_text: str
    topic: str | None
    ip: str | None
    submitted_at: datetime
    status: str
    confirmed_at: datetime | None
    confirm_ip: str | None
    lead_id: uuid.UUID | None


class SubmissionList(BaseModel):
    submissions: list[SubmissionOut]
