"""The served OpenAPI spec says what the apps answer (funnelstream/openapi.py): no FastAPI 422 that the
validation handler turns into a 400, a 400 and a 404 where they can happen, pages' errors as pages."""

from __future__ import annotations

from typing import Any

from funnelstream.apps import create_app
from funnelstream.openapi import as_answered
from shared.settings import AdminSettings, IngestSettings

KW: dict[str, Any] = {"database_url": "postgresql://unused/unused", "kafka_bootstrap_servers": "unused:9092"}


def spec() -> dict[str, Any]:
    app = create_app(
        ingest=IngestSettings(**KW, secret_key="k"), admin=AdminSettings(**KW, secret_key="k", admin_token="t")
    )
    served: dict[str, Any] = app.openapi()
    return served


def operations(found: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in found["paths"].items() for method, op in item.items()]


def test_no_operation_documents_fastapis_422_and_each_with_input_documents_a_400() -> None:
    found = spec()
    assert "HTTPValidationError" not in str(found)
    for path, method, op in operations(found):
        takes_input = op.get("parameters") or op.get("requestBody")
        if takes_input:
            assert "400" in op["responses"], (method, path)
        if "{" in path:
            assert "404" in op["responses"], (method, path)


def test_a_routes_own_400_is_kept_and_may_also_be_the_validation_problem() -> None:
    responses = spec()["paths"]["/api/templates"]["post"]["responses"]
    schema = responses["400"]["content"]["application/json"]["schema"]
    assert schema == {
        "anyOf": [{"$ref": "#/components/schemas/TemplateInvalid"}, {"$ref": "#/components/schemas/Problem"}]
    }


def test_pages_document_their_errors_as_html_and_metrics_as_text() -> None:
    found = spec()
    page_400 = found["paths"]["/u/{token}"]["get"]["responses"]["400"]["content"]
    assert set(page_400) == {"text/html", "application/json"}
    assert set(found["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_the_rewrite_leaves_a_routes_own_422_alone() -> None:
    own = {"description": "form errors", "content": {"text/html": {"schema": {"type": "string"}}}}
    given = {"paths": {"/f/{id}": {"post": {"responses": {"200": {"description": "ok"}, "422": own}}}}}
    rewritten = as_answered(given)
    assert rewritten["paths"]["/f/{id}"]["post"]["responses"]["422"] == own
