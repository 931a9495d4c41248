"""Every route of the product, enumerated from the app itself: admin routes refuse anyone without the admin
token (a write key included), routes with their own credential refuse anonymous callers, and only a short,
reasoned list is open. A route added later falls in the admin class unless it is listed here, so it cannot
slip through unauthenticated."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from funnelstream.apps import create_app
from shared.settings import AdminSettings, IngestSettings
from tests.helpers import basic
from tests.security.conftest import Edge

# Open to anyone, with the reason.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/"): "home page: links to docs and health only",
    ("GET", "/docs"): "API documentation",
    ("GET", "/docs/oauth2-redirect"): "API documentation",
    ("GET", "/redoc"): "API documentation",
    ("GET", "/openapi.json"): "API documentation",
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("GET", "/metrics"): "Prometheus scrape (counters only)",
    ("GET", "/t/fs.js"): "the tracking snippet websites load",
    ("GET", "/t/p.gif"): "pixel: always a GIF, publishes only with a valid write key",
    ("GET", "/t/o/{token}.gif"): "email open pixel: always a GIF, publishes only with a signed token",
    ("OPTIONS", "/t/{path:path}"): "CORS preflight of the tracking routes",
    ("GET", "/forms/{form_id}"): "a published form page",
    ("GET", "/forms/{form_id}.js"): "the script embedding a published form",
    ("POST", "/forms/{form_id}"): "a visitor submitting a form (rate limited per IP and form)",
    ("GET", "/dashboard/login"): "dashboard sign-in page",
    ("POST", "/dashboard/login"): "dashboard sign-in (checks the admin token)",
    ("POST", "/dashboard/logout"): "dashboard sign-out (drops the cookie)",
    ("GET", "/dashboard/static/{name}"): "dashboard CSS and JavaScript",
    ("GET", "/console/login"): "console sign-in page",
    ("POST", "/console/login"): "console sign-in (checks the user's password)",
    ("POST", "/console/logout"): "console sign-out",
    ("GET", "/console/static/{name}"): "console CSS and JavaScript",
}

# Routes with a credential of their own (write key, signature, signed token): an anonymous call is refused.
OWN_CREDENTIAL: dict[tuple[str, str], str] = {
    **{("POST", f"/v1/{t}"): "write key" for t in ("identify", "track", "page", "screen", "group", "alias", "batch")},
    ("POST", "/v1/email-feedback"): "email provider credentials",
    ("POST", "/v1/email-feedback/postmark"): "email provider credentials",
    ("POST", "/v1/email-feedback/sendgrid"): "email provider signature",
    ("POST", "/v1/email-feedback/ses"): "SNS signature",
    ("POST", "/webhooks/generic/{source_id}"): "FunnelStream-Signature of a source secret",
    ("POST", "/webhooks/shopify/{source_id}"): "X-Shopify-Hmac-Sha256 of a source secret",
    ("GET", "/t/c/{token}"): "signed click token",
    ("GET", "/u/{token}"): "signed unsubscribe token",
    ("POST", "/u/{token}"): "signed unsubscribe token",
    ("GET", "/p/{token}"): "signed preferences token",
    ("POST", "/p/{token}"): "signed preferences token",
    ("GET", "/forms/confirm/{token}"): "signed double opt-in token",
    ("POST", "/forms/confirm/{token}"): "signed double opt-in token",
    ("GET", "/forms/files/{token}"): "signed download token",
    ("GET", "/r/cart/{token}"): "signed cart recovery token",
    ("GET", "/console/invite/{token}"): "signed console invitation",
    ("POST", "/console/invite/{token}"): "signed console invitation",
}
# HTML pages behind a session cookie: refused means a redirect to their own sign-in page.
SIGN_IN = {"/dashboard": "/dashboard/login", "/console": "/console/login"}

PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # as declared, e.g. /api/sources/{source_id}/revoke

    def url(self) -> str:
        """The path with every parameter filled in: a well-formed id that names nothing."""
        return PARAM.sub(lambda m: "1" if m.group(1) == "version" else str(uuid.UUID(int=7)), self.path)

    @property
    def body(self) -> dict[str, object] | None:
        return {} if self.method in ("POST", "PUT", "PATCH") else None


def operations() -> list[Op]:
    """Every method of every route of the app serving both the edge and the admin API (`funnelstream dev`)."""
    kwargs = {"database_url": "postgresql://unused/unused", "kafka_bootstrap_servers": "unused:9092"}
    admin = AdminSettings(**kwargs, secret_key="k", admin_token="t")  # type: ignore[arg-type]
    app = create_app(ingest=IngestSettings(**kwargs, secret_key="k"), admin=admin)  # type: ignore[arg-type]
    ops = set()
    for route in iter_route_contexts(app.routes):
        assert route.path is not None
        for method in route.methods or ():
            if method != "HEAD":
                ops.add(Op(method, route.path))
    return sorted(ops, key=lambda o: (o.path, o.method))


OPERATIONS = operations()
ADMIN = [o for o in OPERATIONS if (o.method, o.path) not in PUBLIC and (o.method, o.path) not in OWN_CREDENTIAL]


def test_the_enumeration_sees_every_part_of_the_product() -> None:
    paths = {o.path for o in OPERATIONS}
    assert {"/api/sources", "/api/templates/validate", "/v1/track", "/t/c/{token}", "/u/{token}"} <= paths
    assert len(ADMIN) > 50
    # Lists naming routes that no longer exist would hide a renamed route's class.
    stale = (set(PUBLIC) | set(OWN_CREDENTIAL)) - {(o.method, o.path) for o in OPERATIONS}
    assert not stale, f"listed routes the app no longer has: {sorted(stale)}"


def sign_in_page(op: Op) -> str | None:
    return next((page for prefix, page in SIGN_IN.items() if op.path.split("/")[1] == prefix[1:]), None)


def refused(op: Op, response: httpx.Response) -> bool:
    page = sign_in_page(op)
    if page is not None:  # HTML pages: a redirect to the sign-in page, nothing else
        location = response.headers.get("location", "")
        return response.status_code == 303 and location.split("?")[0] == page
    return response.status_code in (401, 403)


async def call(edge: Edge, op: Op, headers: dict[str, str] | None = None) -> httpx.Response:
    return await edge.client.request(
        op.method, edge.base + op.url(), json=op.body, headers=headers or {}, follow_redirects=False
    )


async def test_every_admin_route_refuses_no_token_a_wrong_token_and_a_write_key(edge: Edge) -> None:
    leaks = []
    for op in ADMIN:
        for label, headers in (
            ("no credentials", {}),
            ("a wrong admin token", {"Authorization": "Bearer " + edge.stack.admin_token + "x"}),
            ("the write key as bearer token", {"Authorization": f"Bearer {edge.write_key}"}),
            ("the write key as Basic user", basic(edge.write_key)),
        ):
            response = await call(edge, op, headers)
            if not refused(op, response):
                leaks.append(f"{op.method} {op.path} with {label}: {response.status_code} {response.text[:120]}")
    assert not leaks, "admin routes answering without the admin token:\n" + "\n".join(leaks)


async def test_the_admin_token_passes_every_admin_route(edge: Edge) -> None:
    """The positive control: what refuses above is the token check, not a broken route."""
    async with httpx.AsyncClient(timeout=30) as browser:
        signed_in = await browser.post(f"{edge.base}/dashboard/login", data={"token": edge.stack.admin_token})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard"
        wrong = []
        for op in ADMIN:
            if op.path.startswith("/console"):
                continue  # people sign in to the console with their own accounts (tests/services/console)
            if op.path.startswith("/dashboard"):
                response = await browser.request(op.method, edge.base + op.url(), follow_redirects=False)
            else:
                response = await call(edge, op, edge.stack.admin)
            if refused(op, response):
                wrong.append(f"{op.method} {op.path}: {response.status_code}")
        assert not wrong, "admin routes refusing the admin token:\n" + "\n".join(wrong)


@pytest.mark.parametrize("op", [Op(m, p) for (m, p) in OWN_CREDENTIAL], ids=lambda o: f"{o.method} {o.path}")
async def test_routes_with_their_own_credential_refuse_anonymous_callers(edge: Edge, op: Op) -> None:
    response = await call(edge, op)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])


async def test_a_write_key_sends_events_and_nothing_else(edge: Edge) -> None:
    sent = await edge.client.post(
        f"{edge.base}/v1/track", json={"userId": "u", "event": "E"}, headers=basic(edge.write_key)
    )
    assert sent.status_code == 200
    in_body = await edge.client.post(
        f"{edge.base}/v1/track", json={"writeKey": edge.write_key, "userId": "u", "event": "E"}
    )
    assert in_body.status_code == 200
    # The admin token is not a write key either.
    as_admin = await edge.client.post(
        f"{edge.base}/v1/track", json={"userId": "u", "event": "E"}, headers=basic(edge.stack.admin_token)
    )
    assert as_admin.status_code == 401
