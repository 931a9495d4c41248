"""Admin API routes for email templates."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.api import ERRORS, AdminDep, SessionDep, VersionPath
from services.admin.schemas import Problem
from services.nurture.templates import repository, service
from services.nurture.templates.context import sample_context
from services.nurture.templates.schemas import (
    PreviewOut,
    PreviewRequest,
    ProblemOut,
    Rendered,
    TemplateCreate,
    TemplateDetail,
    TemplateInvalid,
    TemplateOut,
    TemplateParts,
    TemplateUpdate,
    ValidationOut,
    VersionOut,
    VersionSummary,
)
from shared.templates_models import EmailTemplate

INVALID: dict[int | str, dict[str, Any]] = {400: {"model": TemplateInvalid}, 409: {"model": Problem}}
RENDER_FAILED: dict[int | str, dict[str, Any]] = {400: {"model": TemplateInvalid}}


def invalid(problems: list[service.TemplateProblem]) -> JSONResponse:
    """400 with every problem found; `error` and `field` name the first, like other 400s of the API."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    body = TemplateInvalid(error=f"{first}{more}", field=first.part, problems=[ProblemOut.of(p) for p in problems])
    return JSONResponse(body.model_dump(), status_code=400)


def problems_of(parts: TemplateParts) -> list[service.TemplateProblem]:
    return service.problems(parts.content(), parts.sample_extra)


async def detail(session: AsyncSession, template: EmailTemplate) -> TemplateDetail:
    versions = [VersionSummary.model_validate(v) for v in await repository.list_versions(session, template.id)]
    return TemplateDetail.model_validate({**TemplateOut.model_validate(template).model_dump(), "versions": versions})


async def found(session: AsyncSession, template_id: uuid.UUID) -> EmailTemplate:
    template = await repository.get_template(session, template_id)
    if template is None:
        raise HTTPException(404, f"no template {template_id}")
    return template


def templates_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["templates"])

    @router.post("/templates", status_code=201, response_model=TemplateDetail, responses=INVALID)
    async def create_template(body: TemplateCreate, session: SessionDep) -> TemplateDetail | JSONResponse:
        """Create a template and its version 1, once it compiles and renders for the sample lead."""
        problems = problems_of(body)
        if problems:
            return invalid(problems)
        template = await repository.add_template(
            session,
            name=body.name,
            description=body.description,
            kind=body.kind,
            topic=body.topic,
            content=body.content(),
            sample_extra=body.sample_extra,
            note=body.note,
        )
        if template is None:
            raise HTTPException(409, f"a template named {body.name!r} exists (archived ones keep their name)")
        return await detail(session, template)

    @router.post("/templates/validate", response_model=ValidationOut)
    async def validate_template(body: TemplateParts) -> ValidationOut:
        """Check a template without saving it: its problems, or the sample lead's email."""
        problems = problems_of(body)
        preview = None
        if not problems:
            email = service.render(body.content(), sample_context(extra=body.sample_extra))
            preview = Rendered(subject=email.subject, html=email.html, text=email.text)
        return ValidationOut(valid=not problems, problems=[ProblemOut.of(p) for p in problems], preview=preview)

    @router.get("/templates", response_model=list[TemplateOut])
    async def list_templates(
        session: SessionDep,
        archived: Annotated[bool, Query(description="Include archived templates")] = False,
    ) -> list[TemplateOut]:
        """Templates by name."""
        return [TemplateOut.model_validate(t) for t in await repository.list_templates(session, archived=archived)]

    @router.get("/templates/{template_id}", response_model=TemplateDetail)
    async def get_template(template_id: uuid.UUID, session: SessionDep) -> TemplateDetail:
        """A template with its versions, newest first."""
        return await detail(session, await found(session, template_id))

    @router.get("/templates/{template_id}/versions/{version}", response_model=VersionOut)
    async def get_version(template_id: uuid.UUID, version: VersionPath, session: SessionDep) -> VersionOut:
        """One version's parts, as saved."""
        got = await repository.get_version(session, template_id, version)
        if got is None:
            raise HTTPException(404, f"no version {version} of template {template_id}")
        return VersionOut.model_validate(got, from_attributes=True)

    @router.put("/templates/{template_id}", response_model=TemplateDetail, responses=INVALID)
    async def update_template(
        template_id: uuid.UUID, body: TemplateUpdate, session: SessionDep
    ) -> TemplateDetail | JSONResponse:
        """Save new parts as the next version, validated like a new template. Earlier versions stay as
        they were: sequences keep sending the version a lead entered with."""
        template = await found(session, template_id)
        if template.archived_at is not None:
            raise HTTPException(409, f"template {template.name!r} is archived")
        problems = problems_of(body)
        if problems:
            return invalid(problems)
        version = await repository.add_version(
            session, template_id, body.content(), body.sample_extra, body.note, body.description
        )
        if version is None:
            raise HTTPException(409, f"template {template.name!r} is archived")
        return await detail(session, await found(session, template_id))

    @router.post("/templates/{template_id}/archive", response_model=TemplateOut)
    async def archive_template(template_id: uuid.UUID, session: SessionDep) -> TemplateOut:
        """Archive a template: it leaves the list and cannot be edited; pinned versions still render."""
        template = await repository.archive(session, template_id)
        if template is None:
            raise HTTPException(404, f"no template {template_id}")
        return TemplateOut.model_validate(template)

    @router.post("/templates/{template_id}/preview", response_model=PreviewOut, responses=RENDER_FAILED)
    async def preview_template(
        template_id: uuid.UUID,
        session: SessionDep,
        body: Annotated[PreviewRequest | None, Body()] = None,
    ) -> PreviewOut | JSONResponse:
        """Render a version (default the current one) for a lead (default the sample lead), with preview
        links in place of the real unsubscribe and preferences links."""
        body = body or PreviewRequest()
        got = await repository.get_version(session, template_id, body.version)
        if got is None:
            what = "template" if body.version is None else f"version {body.version} of template"
            raise HTTPException(404, f"no {what} {template_id}")
        lead = None
        if body.user_id is not None:
            lead = await repository.lead_for_preview(session, body.user_id)
            if lead is None:
                raise HTTPException(404, f"no lead with user id {body.user_id!r}")
        extra = body.extra if body.extra is not None else got.sample_extra
        try:
            email = service.render(got.content, sample_context(lead, extra, now=datetime.now(UTC)))
        except service.TemplateRenderError as exc:
            return invalid([exc.problem])
        return PreviewOut(version=got.version, user_id=body.user_id, **asdict(email))

    return router
