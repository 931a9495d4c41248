"""Admin API of lead capture forms: definitions (versioned), the lead magnet file, submissions, embed code."""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.forms import optin, repository
from services.forms.repository import FormRow
from services.forms.schemas import Embed, FileOut, FormIn, FormList, FormOut, SubmissionList, SubmissionOut
from shared.settings import SettingsError

MAX_FILE_BYTES = 20 * 1024 * 1024
CONTENT_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


def edge_url(request: Request) -> str:
    """Where the public form lives: FUNNELSTREAM_PUBLIC_BASE_URL when this process has mail settings, else
    this server's own address (`funnelstream dev` serves both on one port)."""
    try:
        return optin.base_url(optin.nurture_settings(request.app.state))
    except SettingsError:
        return str(request.base_url).rstrip("/")


def embed_of(base: str, form_id: uuid.UUID) -> Embed:
    page_url = f"{base}/forms/{form_id}"
    src = html.escape(page_url, quote=True)
    return Embed(
        page_url=page_url,
        iframe=f'<iframe src="{src}" title="Sign-up form" style="width:100%;max-width:40rem;border:0;height:560px">'
        "</iframe>",
        script=f'<script async src="{src}.js"></script>',
        post_url=page_url,
    )


def form_out(row: FormRow, base: str, file: dict[str, Any] | None) -> FormOut:
    return FormOut(
        id=row.id,
        name=row.name,
        source_id=row.source_id,
        definition=row.definition,
        version=row.version,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        file=FileOut.model_validate(file) if file else None,
        embed=embed_of(base, row.id),
    )


def bad(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


async def check_refs(session: SessionDep, body: FormIn) -> None:
    if body.source_id is not None and not await repository.source_exists(session, body.source_id):
        raise bad("source_id", f"no source {body.source_id}")
    sequence_id = body.definition.sequence_id
    if sequence_id is not None and await repository.active_sequence_version(session, sequence_id) is None:
        raise bad("definition.sequence_id", f"no active sequence {sequence_id}")


def safe_filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip(" .")[:120]
    return cleaned or "download"


def forms_router() -> APIRouter:
    router = APIRouter(prefix="/api/forms", dependencies=[AdminDep], responses=ERRORS, tags=["forms"])

    async def found(session: SessionDep, form_id: uuid.UUID) -> FormRow:
        row = await repository.get_form(session, form_id)
        if row is None:
            raise HTTPException(404, f"no form {form_id}")
        return row

    async def out(session: SessionDep, request: Request, row: FormRow) -> FormOut:
        files = await repository.file_meta(session, [row.id])
        return form_out(row, edge_url(request), files.get(row.id))

    @router.post("", status_code=201, response_model=FormOut)
    async def create(body: FormIn, session: SessionDep, request: Request) -> FormOut:
        """Create a form; the answer carries its embed code (iframe, script tag, POST URL)."""
        await check_refs(session, body)
        row = await repository.create_form(session, uuid.uuid4(), body.name, body.source_id, body.definition)
        return await out(session, request, row)

    @router.get("", response_model=FormList)
    async def list_forms(session: SessionDep, request: Request) -> FormList:
        rows = await repository.list_forms(session)
        files = await repository.file_meta(session, [r.id for r in rows])
        base = edge_url(request)
        return FormList(forms=[form_out(r, base, files.get(r.id)) for r in rows])

    @router.get("/{form_id}", response_model=FormOut)
    async def get(form_id: uuid.UUID, session: SessionDep, request: Request) -> FormOut:
        return await out(session, request, await found(session, form_id))

    @router.put("/{form_id}", response_model=FormOut)
    async def edit(form_id: uuid.UUID, body: FormIn, session: SessionDep, request: Request) -> FormOut:
        """Replace the definition: a new version; pages shown before keep working with the new one."""
        await check_refs(session, body)
        row = await repository.update_form(session, form_id, body.name, body.source_id, body.definition)
        if row is None:
            raise HTTPException(404, f"no form {form_id}")
        return await out(session, request, row)

    async def set_status(form_id: uuid.UUID, status: str, session: SessionDep, request: Request) -> FormOut:
        row = await repository.set_status(session, form_id, status)
        if row is None:
            raise HTTPException(404, f"no form {form_id}")
        return await out(session, request, row)

    @router.post("/{form_id}/archive", response_model=FormOut)
    async def archive(form_id: uuid.UUID, session: SessionDep, request: Request) -> FormOut:
        """Take the form down: its page and POST target answer 404; confirmation links keep working."""
        return await set_status(form_id, "archived", session, request)

    @router.post("/{form_id}/activate", response_model=FormOut)
    async def activate(form_id: uuid.UUID, session: SessionDep, request: Request) -> FormOut:
        return await set_status(form_id, "active", session, request)

    @router.put(
        "/{form_id}/file",
        response_model=FileOut,
        openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
    )
    async def upload(
        form_id: uuid.UUID,
        request: Request,
        session: SessionDep,
        filename: Annotated[str, Query(min_length=1, max_length=200)],
    ) -> FileOut:
        """Upload the lead magnet (raw body, its Content-Type kept); it is mailed as a download link after
        confirmation. At most 20 MB."""
        await found(session, form_id)
        data = await request.body()
        if not data:
            raise HTTPException(400, "empty file")
        if len(data) > MAX_FILE_BYTES:
            raise HTTPException(413, f"file exceeds {MAX_FILE_BYTES // (1024 * 1024)} MB")
        content_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
        if not CONTENT_TYPE.match(content_type):
            content_type = "application/octet-stream"
        digest = hashlib.sha256(data).hexdigest()
        meta = await repository.put_file(session, form_id, safe_filename(filename), content_type, data, digest)
        return FileOut.model_validate(meta)

    @router.delete("/{form_id}/file", status_code=204)
    async def remove_file(form_id: uuid.UUID, session: SessionDep) -> None:
        if not await repository.delete_file(session, form_id):
            raise HTTPException(404, f"form {form_id} has no file")

    @router.get("/{form_id}/submissions", response_model=SubmissionList)
    async def submissions(
        form_id: uuid.UUID, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> SubmissionList:
        """Newest first: what was submitted, the consent text shown, and the confirmation (time, IP, lead)."""
        await found(session, form_id)
        rows = await repository.list_submissions(session, form_id, limit)
        return SubmissionList(submissions=[SubmissionOut.model_validate(r) for r in rows])

    return router
