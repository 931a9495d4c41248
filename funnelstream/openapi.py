"""The OpenAPI spec as the apps really answer.

FastAPI documents a 422 with its validation-error list on every operation that takes input, but the apps
answer bad input with a 400 naming the field (funnelstream/apps.py), and a path naming nothing with a 404.
Found by schemathesis (tests/fuzz): clients generated from the spec expected 422 and knew no 400 or 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

VALIDATION_REF = "#/components/schemas/HTTPValidationError"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "properties": {
        "error": {"type": "string", "title": "Error"},
        "field": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Field"},
    },
    "required": ["error"],
}
HTML = "text/html"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _error_content(responses: dict[str, Any]) -> dict[str, Any]:
    """The API answers errors as a JSON problem; pages answer their own errors as pages (and bad path
    parameters, caught before the page's code runs, as the JSON problem)."""
    problem = {"application/json": {"schema": PROBLEM_REF}}
    ok: dict[str, Any] = next((r for code, r in responses.items() if code.startswith("2")), {})
    if set(ok.get("content", {})) - {"application/json"}:
        return {HTML: {"schema": {"type": "string"}}, **problem}
    return problem


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == VALIDATION_REF)


def _or_problem(response: dict[str, Any]) -> None:
    """A route's own 400 (say, a template's problems) may also be the validation problem of its input."""
    json_body = response.get("content", {}).get("application/json")
    if json_body is None or json_body.get("schema") == PROBLEM_REF:
        return
    json_body["schema"] = {"anyOf": [json_body["schema"], PROBLEM_REF]}


def as_answered(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with FastAPI's 422 replaced by the 400 the apps send, and 404 on every path with parameters."""
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            responses: dict[str, Any] | None = operation.get("responses") if isinstance(operation, dict) else None
            if responses is None:
                continue
            content = _error_content(responses)
            if _is_fastapi_422(responses.get("422", {})):
                del responses["422"]
                if "400" in responses:
                    _or_problem(responses["400"])
                else:
                    responses["400"] = {"description": "Invalid input; `field` names it", "content": content}
            if "{" in path:
                responses.setdefault("404", {"description": "Nothing found at this path", "content": content})
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    if VALIDATION_REF not in str(spec.get("paths")):
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
    return spec


def openapi_as_answered(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi`: built once, like FastAPI's own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = as_answered(spec)
        return app.openapi_schema

    return openapi
