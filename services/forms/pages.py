"""The public form pages and the two emails, rendered on the server with every value escaped.

One sandboxed Jinja2 environment with autoescape and StrictUndefined, built once (shared/STYLE.md):
labels come from marketers, values from visitors; both are data, never markup.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from services.forms.schemas import FormDefinition

ENV = SandboxedEnvironment(
    loader=PackageLoader("services.forms", "pages"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
INPUT_TYPES = {"email": "email", "phone": "tel"}
# The one script of the form page, inline and allowed by its hash alone (CSP): it tells the embedding page
# (static/form.js) the form's height.
FRAME_SCRIPT = Markup(files("services.forms").joinpath("static/frame.js").read_text())  # noqa: S704 - our own file
FRAME_HASH = "sha256-" + base64.b64encode(hashlib.sha256(str(FRAME_SCRIPT).encode()).digest()).decode()
BASE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# Pages reached through a personal link: never indexed, never framed.
PRIVATE_HEADERS = {
    **BASE_HEADERS,
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}


def form_headers(definition: FormDefinition) -> dict[str, str]:
    """The form page may be framed by any website (the embed); its only script is frame.js (the height for
    the embedding page, allowed by its hash), and it posts only to this host (and follows the form's own
    success redirect, which browsers check against form-action)."""
    targets = "'self'"
    if definition.success_redirect:
        parts = urlsplit(definition.success_redirect)
        targets += f" {parts.scheme}://{parts.netloc}"
    csp = (
        f"default-src 'none'; script-src '{FRAME_HASH}'; style-src 'unsafe-inline'; form-action {targets}; "
        "frame-ancestors *"
    )
    return {**BASE_HEADERS, "Content-Security-Policy": csp}


def render(template: str, **values: Any) -> str:
    return ENV.get_template(template).render(**values)


def form_page(
    definition: FormDefinition,
    *,
    action: str,
    token: str,
    hidden: Mapping[str, str],
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    error: str | None = None,
) -> str:
    """The form, with the visitor's values kept and each error next to its field after a refused submit."""
    return render(
        "form.html",
        title=definition.title,
        description=definition.description,
        fields=definition.fields,
        consent_text=definition.consent_text,
        submit_label=definition.submit_label,
        action=action,
        token=token,
        hidden=dict(hidden),
        values=dict(values or {}),
        errors=dict(errors or {}),
        error=error,
        input_types=INPUT_TYPES,
        frame_script=FRAME_SCRIPT,
    )


def message_page(
    title: str, message: str, link: str | None = None, link_text: str = "", *, in_frame: bool = False
) -> str:
    frame_script = FRAME_SCRIPT if in_frame else None
    return render(
        "message.html", title=title, message=message, link=link, link_text=link_text, frame_script=frame_script
    )


def confirm_page(*, address: str, action: str) -> str:
    return render("confirm.html", title="Confirm your subscription", address=address, action=action, frame_script=None)


def confirmation_email(definition: FormDefinition, form_name: str, first_name: str, link: str) -> tuple[str, str, str]:
    """(subject, html, text) of the double opt-in email."""
    html = render(
        "email_confirm.html",
        form_name=form_name,
        first_name=first_name,
        link=link,
        consent_text=definition.consent_text,
    )
    greeting = f"Hello {first_name}," if first_name else "Hello,"
    text = (
        f"{greeting}\n\nyou signed up with this address on the form \u201c{form_name}\u201d. "
        f"Please confirm that you want to receive our emails:\n\n{link}\n\n"
        f"You agreed to: \u201c{definition.consent_text}\u201d. If you did not sign up, ignore this email: "
        "you will not hear from us again.\n"
    )
    return definition.confirm_subject, html, text


def lead_magnet_email(form_name: str, first_name: str, link: str, link_text: str) -> tuple[str, str, str]:
    """(subject, html, text) of the email that delivers the lead magnet after confirmation."""
    html = render("email_magnet.html", form_name=form_name, first_name=first_name, link=link, link_text=link_text)
    greeting = f"Hello {first_name}," if first_name else "Hello,"
    text = f"{greeting}\n\nthank you for confirming. Here is what you asked for on \u201c{form_name}\u201d:\n\n{link}\n"
    return f"Your download: {form_name}"[:200], html, text
